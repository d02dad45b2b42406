"""sRGB <-> linear light on torch tensors (the constants of ``imaging.color``)."""

from __future__ import annotations

import torch

from facedet3d.imaging.color import (
    SRGB_ENCODED_KNEE,
    SRGB_GAMMA,
    SRGB_LINEAR_KNEE,
    SRGB_LINEAR_SLOPE,
    SRGB_OFFSET,
    SRGB_SCALE,
)


def to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Linear light -> sRGB, clamped to [0, 1] first (differentiable: the power's base is
    kept above 0 so its gradient stays finite)."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= SRGB_LINEAR_KNEE, SRGB_LINEAR_SLOPE * x,
                       SRGB_SCALE * x.clamp_min(1e-8) ** (1 / SRGB_GAMMA) - SRGB_OFFSET)


def to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB -> linear light (not clamped above: values over 1 extrapolate the power law)."""
    return torch.where(x <= SRGB_ENCODED_KNEE, x / SRGB_LINEAR_SLOPE,
                       ((x.clamp_min(0) + SRGB_OFFSET) / SRGB_SCALE) ** SRGB_GAMMA)
