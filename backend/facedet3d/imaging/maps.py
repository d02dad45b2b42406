"""Resampling of square UV maps and channel-planar images (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np


def resize_square(img: np.ndarray, size: int, enlarge: int = cv2.INTER_LINEAR) -> np.ndarray:
    """(S, S[, C]) map -> float32 (size, size[, C]) copy: area averaging when shrinking
    (no aliasing of fine relief), ``enlarge`` (an OpenCV interpolation flag) when growing;
    a plain float32 copy at the same size."""
    if img.shape[0] == size:
        return img.astype(np.float32)
    interp = cv2.INTER_AREA if img.shape[0] > size else enlarge
    return cv2.resize(img.astype(np.float32), (size, size), interpolation=interp)


def resize_planar(c: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    """Resize every channel of a channel-planar (C, H, W) image to ``size`` = (width,
    height) with the OpenCV interpolation ``interp``."""
    return np.stack([cv2.resize(ch, size, interpolation=interp) for ch in c])
