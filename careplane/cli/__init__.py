"""The ``careplane`` command line.

One module per command group (as kopf splits its CLI by concern); each adds
its commands to :data:`app` through :func:`careplane.cli.app.register`.
"""

from careplane.cli.app import app, main

__all__ = ["app", "main"]
