"""Super-resolution of detail maps: an RCAN-style x4 network (Zhang et al. 2018; paper Eqs. 19-20).

Residual groups of residual channel-attention blocks (RCAB: conv-act-conv, channel attention,
skip), a long skip over all groups, and a sub-pixel (pixel-shuffle) x4 tail added to a bicubic
upsampling of the input (so the network predicts the missing high frequencies).

One deliberate difference from RCAN: the channel-attention descriptor is a LOCAL mean (a
15x15 separable box filter) instead of the global average pool. With a global pool every
output texel depends on the whole map, so a map cannot be processed in tiles with the same
result; with local statistics the receptive field is finite (``RECEPTIVE_RADIUS`` input
texels), so ``upscale_tiled`` with a margin of at least that radius equals the untiled result
and 4096² outputs are produced in bounded memory.

Maps are (B, 1, H, W) in METRES, scaled internally by DETAIL_SCALE_M.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from facedet3d.detail.nets import DETAIL_SCALE_M

SCALE = 4
POOL = 15


class LocalChannelAttention(nn.Module):
    """Squeeze (local POOL x POOL mean) - excite (1x1 convs, sigmoid) channel gating."""

    def __init__(self, ch: int, reduction: int = 4):
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d(ch, max(ch // reduction, 2), 1), nn.ReLU(inplace=True),
                                nn.Conv2d(max(ch // reduction, 2), ch, 1), nn.Sigmoid())

    def forward(self, h):
        p = POOL // 2
        m = F.avg_pool2d(h, (1, POOL), 1, (0, p), count_include_pad=False)
        m = F.avg_pool2d(m, (POOL, 1), 1, (p, 0), count_include_pad=False)
        return h * self.fc(m)


class RCAB(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(ch, ch, 3, 1, 1), LocalChannelAttention(ch))

    def forward(self, h):
        return h + self.body(h)


class ResidualGroup(nn.Module):
    def __init__(self, ch: int, blocks: int):
        super().__init__()
        self.body = nn.Sequential(*[RCAB(ch) for _ in range(blocks)], nn.Conv2d(ch, ch, 3, 1, 1))

    def forward(self, h):
        return h + self.body(h)


class RCAN(nn.Module):
    def __init__(
        self,
        channels: int = 16,  # feature channels throughout
        groups: int = 2,     # residual groups
        blocks: int = 2,     # RCABs per group
    ):
        super().__init__()
        self.head = nn.Conv2d(1, channels, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualGroup(channels, blocks) for _ in range(groups)],
                                  nn.Conv2d(channels, channels, 3, 1, 1))
        self.tail = nn.Conv2d(channels, SCALE * SCALE, 3, 1, 1)
        with torch.no_grad():
            self.tail.weight.mul_(0.1)
            self.tail.bias.zero_()
        self.radius = 1 + groups * (blocks * (2 + POOL // 2) + 1) + 1 + 1 + 2  # + bicubic support

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        assert lr.dim() == 4 and lr.shape[1] == 1, f"lr must be (B, 1, H, W), got {tuple(lr.shape)}"
        x = lr / DETAIL_SCALE_M
        h = self.head(x)
        h = h + self.body(h)
        hi = F.pixel_shuffle(self.tail(h), SCALE)
        base = F.interpolate(x, scale_factor=float(SCALE), mode="bicubic", align_corners=False)
        return (base + hi) * DETAIL_SCALE_M


def upscale_tiled(fn, lr: np.ndarray, tile: int = 256, margin: int = 48) -> np.ndarray:
    """x4 upscale of an (H, W) float32 map through ``fn`` ((1, 1, h, w) array -> (1, 1, 4h, 4w)
    array) in tiles of ``tile``² input texels, each read with ``margin`` texels of context
    (>= the network's receptive radius for an exact match with the untiled result).
    Memory stays bounded by one tile's activations plus the output."""
    H, W = lr.shape
    out = np.empty((H * SCALE, W * SCALE), np.float32)
    for r0 in range(0, H, tile):
        for c0 in range(0, W, tile):
            r1, c1 = min(r0 + tile, H), min(c0 + tile, W)
            a0, b0 = max(r0 - margin, 0), max(c0 - margin, 0)
            a1, b1 = min(r1 + margin, H), min(c1 + margin, W)
            y = fn(np.ascontiguousarray(lr[a0:a1, b0:b1])[None, None])[0, 0]
            out[r0 * SCALE:r1 * SCALE, c0 * SCALE:c1 * SCALE] = \
                y[(r0 - a0) * SCALE:(r1 - a0) * SCALE, (c0 - b0) * SCALE:(c1 - b0) * SCALE]
    return out


def patch_pair(hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) training pair from an HR patch: LR = area average over 4x4 texels (what a
    4x coarser map of the same surface holds)."""
    h, w = hr.shape
    lr = hr.reshape(h // SCALE, SCALE, w // SCALE, SCALE).mean((1, 3))
    return lr.astype(np.float32), hr.astype(np.float32)
