"""``python -m careplane``: the same CLI as the ``careplane`` console script."""

from careplane.cli import main

main()
