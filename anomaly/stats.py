"""Small pure-Python statistics shared by the detectors.

Why pure Python and not numpy: detectors run one sample at a time; a numpy call
costs a microsecond or more of overhead per call, more than the arithmetic
itself, and the issue's budget is 20,000 samples/s per core for ``auto``.
"""

from __future__ import annotations

import math

_SQRT2 = math.sqrt(2.0)


def two_sided(z: float) -> float:
    """P(|Z| < z) for a standard normal Z: 0 at z = 0, -> 1 as z grows (a surprise in [0, 1])."""
    return math.erf(abs(z) / _SQRT2)


def upper_tail(z: float) -> float:
    """P(Z > z) for a standard normal Z (the Q function)."""
    return 0.5 * math.erfc(z / _SQRT2)


def clip01(x: float) -> float:
    """``x`` clipped into [0, 1]; NaN becomes 0 (a score is never NaN)."""
    if x != x:  # NaN
        return 0.0
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def surprise(z: float, free: float = 2.0, scale: float = 3.0) -> float:
    """Map a z-score to [0, 1]: 0 within ``free`` sigmas, then 1 - exp(-(|z| - free) / scale).

    Why not P(|Z| < z): that is uniform under normal noise (mean 0.5) and saturates
    at 1.0 by 8 sigma, so a lone spike barely moves a short-term average and big
    and huge surprises tie. This is ~0 for ordinary samples and keeps ranking
    surprises far into the tail.
    """
    excess = abs(z) - free
    return 1.0 - math.exp(-excess / scale) if excess > 0.0 else 0.0


def surprise_probability(score: float, free: float = 2.0, scale: float = 3.0) -> float:
    """The two-sided normal probability P(|Z| < z) of the z-score behind a :func:`surprise` score
    (inverts it), so surprise-scored detectors can speak in probabilities too."""
    if score <= 0.0:
        return two_sided(free)  # anything within `free` sigmas: at most this
    if score >= 1.0:
        return 1.0
    return two_sided(free - scale * math.log(1.0 - score))
