"""Where the shared evaluation data lives (``../shared/data`` beside the repository).

Benchmarks and tests read the NASA trace and the NAB corpus from there; one
lookup keeps them agreeing on it. ``CAREPLANE_SHARED_DATA`` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """``$CAREPLANE_SHARED_DATA``, else ``<repo>/../shared/data``, else ``./../shared/data``."""
    override = os.environ.get("CAREPLANE_SHARED_DATA")
    if override:
        return Path(override)
    for candidate in (REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.exists():
            return candidate
    return REPO_ROOT.parent / "shared" / "data"
