"""Discriminators of DetP's training (paper Sec. 3.2.1; supplementary Sec. 2).

All take a detail map (B, 1, 256, 256) in METRES (scaled internally like DetP) and return
raw logits / regressions (no sigmoid):

- ``DExp``: a U-Net discriminator (Schönfeld et al. 2020): the encoder ends in a global
  realism logit, an AU head (17) and an alpha_e head (53) (Eq. 6); the decoder gives a
  per-texel realism logit map (at 128², half the map's resolution, to keep it cheap).
- ``DFace``: realism logit + FaceID head (512): predicts the identity embedding from the map
  (Eq. 12).
- ``DAge``: realism logit + age head (8): predicts the age features from the map (Eq. 15).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from facedet3d.detail.nets import AGE_DIM, DETAIL_SCALE_M, ID_DIM, N_ALPHA, N_AU, coord_channels


def _act():
    return nn.LeakyReLU(0.2, inplace=True)


def _down(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 4, 2, 1), _act())


class _Encoder(nn.Module):
    """[map, u, v] 256² -> features at 128², 64², 32², 16² (c, 2c, 4c, 4c)."""

    def __init__(self, c: int, size: int):
        super().__init__()
        self.size = size
        self.register_buffer("coords", coord_channels(1, size), persistent=False)
        self.l1, self.l2, self.l3, self.l4 = _down(3, c), _down(c, 2 * c), _down(2 * c, 4 * c), _down(4 * c, 4 * c)

    def forward(self, d):
        B, _, H, W = d.shape
        assert (H, W) == (self.size, self.size), f"map must be {self.size}², got {H}x{W}"
        h1 = self.l1(torch.cat([d / DETAIL_SCALE_M, self.coords.expand(B, 2, H, W)], 1))
        h2 = self.l2(h1)
        h3 = self.l3(h2)
        return h1, h2, h3, self.l4(h3)


class DExp(nn.Module):
    def __init__(
        self,
        channels: int = 16,   # encoder width at 128² (x2 at 64², x4 at 32² and 16²)
        size: int = 256,      # map side
    ):
        super().__init__()
        c = channels
        self.enc = _Encoder(c, size)
        self.pool = nn.Sequential(nn.Flatten(), nn.Linear(4 * c * (size // 16) ** 2 // 16, 128), _act())
        self.head_r = nn.Linear(128, 1)
        self.head_au = nn.Linear(128, N_AU)
        self.head_alpha = nn.Linear(128, N_ALPHA)
        self.u3 = nn.Sequential(nn.Conv2d(4 * c + 4 * c, 2 * c, 3, 1, 1), _act())
        self.u2 = nn.Sequential(nn.Conv2d(2 * c + 2 * c, c, 3, 1, 1), _act())
        self.u1 = nn.Sequential(nn.Conv2d(c + c, c, 3, 1, 1), _act())
        self.head_pix = nn.Conv2d(c, 1, 1)

    def forward(self, d):
        """Returns dict: ``r`` (B,) global realism logit, ``r_pix`` (B, 1, 128, 128) per-texel
        realism logits, ``au`` (B, 17), ``alpha`` (B, 53)."""
        h1, h2, h3, h4 = self.enc(d)
        g = self.pool(F.avg_pool2d(h4, 4))
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
        u = self.u3(torch.cat([up(h4), h3], 1))
        u = self.u2(torch.cat([up(u), h2], 1))
        u = self.u1(torch.cat([up(u), h1], 1))
        return {"r": self.head_r(g)[:, 0], "r_pix": self.head_pix(u), "au": self.head_au(g),
                "alpha": self.head_alpha(g)}


class _HeadDisc(nn.Module):
    def __init__(self, channels: int, size: int, out_dim: int):
        super().__init__()
        c = channels
        self.enc = _Encoder(c, size)
        self.pool = nn.Sequential(nn.Flatten(), nn.Linear(4 * c * (size // 16) ** 2 // 16, 128), _act())
        self.head_r = nn.Linear(128, 1)
        self.head_v = nn.Linear(128, out_dim)

    def forward(self, d):
        g = self.pool(F.avg_pool2d(self.enc(d)[-1], 4))
        return {"r": self.head_r(g)[:, 0], "v": self.head_v(g)}


class DFace(_HeadDisc):
    """Realism + FaceID: ``{"r": (B,), "v": (B, 512)}``."""

    def __init__(
        self,
        channels: int = 12,  # encoder width at 128²
        size: int = 256,     # map side
    ):
        super().__init__(channels, size, ID_DIM)


class DAge(_HeadDisc):
    """Realism + age features: ``{"r": (B,), "v": (B, 8)}``."""

    def __init__(
        self,
        channels: int = 12,  # encoder width at 128²
        size: int = 256,     # map side
    ):
        super().__init__(channels, size, AGE_DIM)
