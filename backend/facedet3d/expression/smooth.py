"""Temporal smoothing of tracked channels: the One-Euro filter (Casiez, Roussel, Vogel,
"1€ Filter", CHI 2012), causal and streaming (one frame of state per channel).

Per channel, an exponential low-pass whose cut-off rises with the channel's speed:
``fc = min_cutoff + beta * |dx/dt|`` (Hz), ``alpha = 1 / (1 + 1 / (2 pi fc dt))``, the speed
itself low-passed at ``d_cutoff`` Hz. A still face (small speed) gets a low cut-off and stops
twitching; a fast expression change raises the cut-off so the peak comes through with little
lag. Parameters (documented defaults, chosen on the LivePortrait clips of ../shared/data/faces
and checked by tests/test_track.py's synthetic step):

- blendshape scores (0..1): ``min_cutoff`` 1.0 Hz, ``beta`` 8.0 per (unit/s), ``d_cutoff`` 1 Hz;
- head angles (degrees) and translation (cm): ``min_cutoff`` 1.0 Hz, ``beta`` 0.05 per (deg/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    min_cutoff: float = 1.0  # Hz: cut-off when the channel is still
    beta: float = 8.0  # Hz per (channel unit / s): how fast the cut-off rises with speed
    d_cutoff: float = 1.0  # Hz: low-pass of the speed estimate


SCORE_PARAMS = OneEuroParams(1.0, 8.0, 1.0)
HEAD_PARAMS = OneEuroParams(1.0, 0.05, 1.0)


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    r = 2.0 * math.pi * np.asarray(cutoff, np.float64) * dt
    return r / (r + 1.0)


class OneEuro:
    """Vector One-Euro filter: ``filter(t, x)`` for x of a fixed length, times in seconds
    (strictly increasing). ``params`` is one OneEuroParams, or one per channel
    (a sequence the length of x). ``reset()`` forgets the state (after a long gap)."""

    def __init__(self, params):
        self._params = params
        self.reset()

    def reset(self) -> None:
        self._t = None
        self._x = None
        self._dx = None

    def _arrays(self, n: int):
        p = self._params
        if isinstance(p, OneEuroParams):
            p = [p] * n
        return (np.array([q.min_cutoff for q in p]), np.array([q.beta for q in p]),
                np.array([q.d_cutoff for q in p]))

    def filter(self, t: float, x) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None:
            self._mc, self._beta, self._dc = self._arrays(x.size)
            self._t, self._x, self._dx = t, x.copy(), np.zeros_like(x)
            return x.copy()
        dt = max(t - self._t, 1e-4)
        dx = (x - self._x) / dt
        a_d = _alpha(self._dc, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        a = _alpha(self._mc + self._beta * np.abs(self._dx), dt)
        self._x = a * x + (1.0 - a) * self._x
        self._t = t
        return self._x.copy()


def smooth_series(times, values, params=SCORE_PARAMS) -> np.ndarray:
    """(T, C) values filtered along time (convenience for tests and measurements)."""
    f = OneEuro(params)
    return np.stack([f.filter(float(t), v) for t, v in zip(times, np.asarray(values, np.float64))])


def jitter(values) -> float:
    """Mean absolute frame-to-frame change of a (T, C) series (units of the values)."""
    v = np.asarray(values, np.float64)
    return float(np.abs(np.diff(v, axis=0)).mean()) if len(v) > 1 else 0.0
