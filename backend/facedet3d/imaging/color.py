"""sRGB <-> linear light (IEC 61966-2-1), numpy; ``imaging.color_torch`` holds the torch
variant with the same constants.

Colour images in this project are 8-bit sRGB (or float sRGB in [0, 1]); shading, albedo
and luminance are computed in linear light and converted back for display.
"""

from __future__ import annotations

import numpy as np

# The piecewise sRGB transfer function: a linear segment near black, a 2.4 power above.
SRGB_ENCODED_KNEE = 0.04045    # encoded value where the power segment starts
SRGB_LINEAR_KNEE = 0.0031308   # the same point in linear light
SRGB_LINEAR_SLOPE = 12.92      # slope of the linear segment (encoded / linear)
SRGB_OFFSET = 0.055            # a in ((x + a) / (1 + a)) ** 2.4
SRGB_SCALE = 1.055             # 1 + a
SRGB_GAMMA = 2.4
# Rec. 709 / sRGB primaries: relative luminance Y of linear (R, G, B).
REC709_LUMA = (0.2126, 0.7152, 0.0722)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """float sRGB in [0, 1] (clipped) -> float32 linear light in [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= SRGB_ENCODED_KNEE, x / SRGB_LINEAR_SLOPE,
                    ((x + SRGB_OFFSET) / SRGB_SCALE) ** SRGB_GAMMA).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """float linear light in [0, 1] (clipped) -> float32 sRGB in [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= SRGB_LINEAR_KNEE, SRGB_LINEAR_SLOPE * x,
                    SRGB_SCALE * np.power(x, 1 / SRGB_GAMMA) - SRGB_OFFSET).astype(np.float32)


# (256,) float32 linear value of every 8-bit sRGB code (a lookup table for uint8 images).
SRGB8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0)
