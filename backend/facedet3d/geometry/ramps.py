"""Smooth ramps shared by the stages (visibility weights, fades, fall-offs)."""

from __future__ import annotations

import numpy as np


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Cubic Hermite ramp: 0 for x <= lo, 1 for x >= hi, 3t^2 - 2t^3 with
    t = (x - lo) / (hi - lo) in between (zero slope at both ends). x, lo, hi in any one
    unit (cosines, micrometres, luminance...)."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
