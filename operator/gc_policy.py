"""Keep CPython's cyclic garbage collector off the long-lived model state.

Why: 1,000 policies hold about 2 GB of Python objects (forecasters, detectors,
their histories) that live as long as their policy. A full (generation-2)
collection walks every tracked object, so with that heap one collection stalls
kopf's event loop, and every reconcile in flight waits for it (the benchmark
records these pauses: ``gc_full_pause_max_seconds`` in benchmarks/operator.py).
Measured with ``benchmarks/operator.py --policies 1000`` on a quiet machine:
reconcile p99 1.73 s without the freeze, 0.63 s with it.

``gc.freeze()`` moves every object alive now into a permanent generation that
collections skip; reference counting still frees a frozen object the moment it
is dropped. What a frozen heap cannot free is *cyclic* garbage among frozen
objects, so a policy's deletion unfreezes everything (the next full collection
sees it all once) and the next rebuild freezes again.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """After a model rebuild: what exists now lives long; keep full collections off it."""
    gc.freeze()


def release_frozen() -> None:
    """After a policy is dropped: let the next full collection find its cyclic garbage."""
    gc.unfreeze()
