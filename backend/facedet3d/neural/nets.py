"""The rendering network R (paper Sec. 3.3, Fig. 3): NTex, Tex2Im = g_θ + g_ω, and f_θ.

Tensors are NCHW float32. Images are sRGB in [0, 1]; UV maps have row 0 = v = 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from facedet3d.imaging.color_torch import to_srgb


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


class UNet(nn.Module):
    """Small U-Net: stride-2 encoder, bilinear-upsampling decoder with skip concatenation."""

    def __init__(self,
                 in_channels: int,       # input feature channels
                 out_channels: int,      # output channels (linear output layer)
                 base: int = 16,         # channels at full resolution (x2 per level, capped)
                 depth: int = 3,         # number of stride-2 levels; H and W must divide 2**depth
                 max_channels: int = 64,  # channel cap of the deepest levels
                 zero_init: bool = False,  # zero the output layer (branch starts as 0)
                 ):
        super().__init__()
        self.depth = depth
        ch = [min(base * 2 ** i, max_channels) for i in range(depth + 1)]
        self.inp = nn.Sequential(_conv(in_channels, ch[0]), _conv(ch[0], ch[0]))
        self.down = nn.ModuleList([nn.Sequential(_conv(ch[i], ch[i + 1], 2), _conv(ch[i + 1], ch[i + 1]))
                                   for i in range(depth)])
        self.up = nn.ModuleList([nn.Sequential(_conv(ch[i + 1] + ch[i], ch[i]), _conv(ch[i], ch[i]))
                                 for i in range(depth)])
        self.out = nn.Conv2d(ch[0], out_channels, 1)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = 2 ** self.depth
        assert x.ndim == 4 and x.shape[2] % m == 0 and x.shape[3] % m == 0, f"UNet input {tuple(x.shape)}: H, W must divide {m}"
        skips = [self.inp(x)]
        for d in self.down:
            skips.append(d(skips[-1]))
        h = skips.pop()
        for i in reversed(range(self.depth)):
            s = skips.pop()
            h = F.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False)
            h = self.up[i](torch.cat([h, s], 1))
        return self.out(h)


class NTex(nn.Module):
    """NTex_φ (Eq. 21): texture map T(I_x) (B, 3, S, S) -> neural texture NTM (B, F, S, S)."""

    def __init__(self,
                 channels: int = 16,  # F, channels of the neural texture map
                 base: int = 16,      # U-Net width at full resolution
                 depth: int = 3,      # U-Net levels
                 ):
        super().__init__()
        self.channels = channels
        self.net = UNet(3, channels, base, depth)

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        assert texture.ndim == 4 and texture.shape[1] == 3, f"texture {tuple(texture.shape)} is not (B, 3, S, S)"
        return self.net(texture - 0.5)


def sample_ntm(ntm: torch.Tensor, grid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sample(NTM, UV-Raster): (B, F, S, S) at (B, H, W, 2) grid -> (B, F, H, W), 0 off-mesh."""
    assert ntm.shape[0] == grid.shape[0] and grid.shape[-1] == 2
    out = F.grid_sample(ntm, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out * mask


class LowResRenderer(nn.Module):
    """g_θ (Eq. 22): neural texture sampled through the proxy geometry G_P's raster plus the
    shaded albedo of G_P -> the detail-invariant image Î^LR. Runs at 1/``factor`` resolution
    and is upsampled, so it cannot carry texel-scale detail; predicts a correction to the
    (low-passed) shaded albedo."""

    def __init__(self,
                 ntm_channels: int = 16,  # F of the neural texture
                 base: int = 32,          # U-Net width at its (reduced) resolution
                 depth: int = 3,          # U-Net levels
                 factor: int = 2,         # resolution reduction of this branch
                 ):
        super().__init__()
        self.factor = factor
        self.net = UNet(ntm_channels + 3 + 1, 3, base, depth, max_channels=96, zero_init=True)

    def forward(self, ntm_px: torch.Tensor, shaded_albedo: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, _, H, W = ntm_px.shape
        assert shaded_albedo.shape == (B, 3, H, W) and mask.shape == (B, 1, H, W)
        x = torch.cat([ntm_px, shaded_albedo - 0.5, mask], 1)
        if self.factor > 1:
            x = F.avg_pool2d(x, self.factor)
        y = F.avg_pool2d(shaded_albedo, self.factor) + self.net(x) if self.factor > 1 else shaded_albedo + self.net(x)
        return F.interpolate(y, size=(H, W), mode="bilinear", align_corners=False) if self.factor > 1 else y


class DetailRenderer(nn.Module):
    """g_ω (Eq. 23): neural texture sampled through the detailed geometry G_D's raster, the
    shaded albedo of G_D and G_D's shading -> the detail image Î^D (added to Î^LR, Eq. 24).
    Full resolution, shallow (its receptive field stays local). With ``skip_factor`` > 1 it
    predicts a correction to the high-pass (what a 1/skip_factor image lacks) of the
    detailed shaded albedo, so at initialisation Î^LR + Î^D is the shaded mesh."""

    def __init__(self,
                 ntm_channels: int = 16,  # F of the neural texture
                 base: int = 24,          # U-Net width at full resolution
                 depth: int = 2,          # U-Net levels
                 skip_factor: int = 2,    # high-pass skip of the shaded albedo (0/1 = none)
                 ):
        super().__init__()
        self.skip_factor = skip_factor
        self.net = UNet(ntm_channels + 3 + 1 + 1, 3, base, depth, zero_init=True)

    def forward(self, ntm_px: torch.Tensor, shaded_albedo: torch.Tensor, shading: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        B, _, H, W = ntm_px.shape
        assert shaded_albedo.shape == (B, 3, H, W) and shading.shape == (B, 1, H, W) and mask.shape == (B, 1, H, W)
        out = self.net(torch.cat([ntm_px, shaded_albedo - 0.5, shading - 1.0, mask], 1))
        if self.skip_factor > 1:
            low = F.interpolate(F.avg_pool2d(shaded_albedo, self.skip_factor), size=(H, W), mode="bilinear",
                                align_corners=False)
            out = out + shaded_albedo - low
        return out * mask


class Tex2Im(nn.Module):
    """Tex2Im: both branches. ``forward`` returns (Î = Î^LR + Î^D, Î^LR, Î^D)."""

    def __init__(self,
                 ntm_channels: int = 16,  # F of the neural texture
                 lr_base: int = 32,       # g_θ width
                 lr_factor: int = 2,      # g_θ resolution reduction
                 detail_base: int = 24,   # g_ω width
                 skip: bool = True,       # g_ω adds the high-pass of the detailed shaded albedo
                 ):
        super().__init__()
        self.g_theta = LowResRenderer(ntm_channels, lr_base, 3, lr_factor)
        self.g_omega = DetailRenderer(ntm_channels, detail_base, 2, lr_factor if skip else 0)

    def forward(self, ntm: torch.Tensor, inputs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``inputs``: grid (B,H,W,2), mask (B,1,H,W), albedo (B,3,H,W) sRGB-linear albedo
        sampled per pixel, shading_p / shading_d (B,1,H,W) proxy / detailed SH shading.
        Shaded albedo = sRGB(albedo x shading)."""
        grid, mask = inputs["grid"], inputs["mask"]
        B = grid.shape[0]
        assert ntm.shape[0] in (1, B) and mask.shape[0] == B
        if ntm.shape[0] != B:
            ntm = ntm.expand(B, -1, -1, -1)
        feat = sample_ntm(ntm, grid, mask)  # the rasters of G_P and G_D coincide (see geometry)
        sa_p = to_srgb(inputs["albedo"] * inputs["shading_p"]) * mask
        sa_d = to_srgb(inputs["albedo"] * inputs["shading_d"]) * mask
        lr = self.g_theta(feat, sa_p, mask)
        det = self.g_omega(feat, sa_d, inputs["shading_d"], mask)
        return lr + det, lr, det


class ShadingCNN(nn.Module):
    """f_θ of the Detailed Shading Loss (Eq. 30): two conv layers, image -> shading."""

    def __init__(self,
                 hidden: int = 16,  # channels of the single hidden layer
                 ):
        super().__init__()
        self.c1 = nn.Conv2d(3, hidden, 3, 1, 1)
        self.c2 = nn.Conv2d(hidden, 1, 3, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        assert image.ndim == 4 and image.shape[1] == 3
        return 1.0 + self.c2(F.leaky_relu(self.c1(image - 0.5), 0.2))
