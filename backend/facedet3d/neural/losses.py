"""Losses of the rendering network R (paper Eqs. 26-30), as plain functions.

Images are (B, 3, H, W) sRGB in [0, 1]; ``mask`` (B, 1, H, W) selects the pixels that count.
Outside the mask the prediction is replaced by the target before any pyramid, so the
background never contributes (and mask borders make no edges).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from facedet3d.detail.losses import laplacian_pyramid
from facedet3d.errors import FaceDet3DError
from facedet3d.imaging.color_torch import to_linear, to_srgb


@dataclass
class LossWeights:
    """Weight of every term; 0 switches it off (and its computation is skipped)."""

    mse: float = 1.0          # L_Photo: MSE(Î, I)
    l1: float = 1.0           # L_Photo: L1(Î, I)
    lap: float = 1.0          # L_Photo: LapLoss(Î, I)
    perceptual: float = 0.1   # L_Photo: VGG16 perceptual, only where the weights exist locally
    lr: float = 0.5           # L_Photo^LR on Î^LR (same terms, this overall weight; Eq. 27)
    augw: float = 1.0         # Augmented Wrinkle Loss (Eqs. 28-29)
    dsl: float = 0.5          # Detailed Shading Loss (Eq. 30)
    exp_adv: float = 0.0      # expression adversarial + AU losses (Eqs. 31-35): need an image
    au: float = 0.0           # corpus and an RGB AU discriminator; not trainable per subject
    lap_levels: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


def _fill(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return pred if mask is None else pred * mask + target * (1 - mask)


def _mean(err: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return err.mean()
    m = mask.expand_as(err)
    return (err * m).sum() / m.sum().clamp_min(1.0)


def lap_loss_img(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                 levels: int = 4) -> torch.Tensor:
    """Laplacian-pyramid L1 of (B, C, H, W) images (``detail.losses.laplacian_pyramid`` per
    channel): sum over levels of the mean absolute difference (so per pixel, coarser levels
    weigh more, as in Bojanowski et al.)."""
    assert pred.shape == target.shape and pred.ndim == 4
    p = _fill(pred, target, mask)
    B, C, H, W = p.shape
    pa = laplacian_pyramid(p.reshape(B * C, 1, H, W), levels)
    pb = laplacian_pyramid(target.reshape(B * C, 1, H, W), levels)
    return sum((x - y).abs().mean() for x, y in zip(pa, pb))


# -- perceptual -------------------------------------------------------------------------------
VGG_ENV = "FACEDET3D_VGG16_WEIGHTS"
_VGG_NAMES = ("vgg16-397923af.pth",)


def vgg_weights_path() -> Path | None:
    """Local VGG16 (torchvision ImageNet) weights: ``$FACEDET3D_VGG16_WEIGHTS``, then
    ``$FACEDET3D_CACHE/vgg16-397923af.pth``, then the torch hub cache. Never downloads."""
    cands = []
    if os.environ.get(VGG_ENV):  # named by the user: it must be there (an error, never a quiet skip)
        named = Path(os.environ[VGG_ENV]).expanduser()
        if not named.is_file():
            raise FaceDet3DError(f"{VGG_ENV} names {named}, which does not exist; point it at a local "
                                 "torchvision vgg16-397923af.pth or unset it")
        return named
    for root in (os.environ.get("FACEDET3D_CACHE"), os.environ.get("TORCH_HOME") and Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints",
                 Path.home() / ".cache" / "torch" / "hub" / "checkpoints"):
        if root:
            cands += [Path(root) / n for n in _VGG_NAMES]
    return next((p for p in cands if p.is_file()), None)


class VGGPerceptual(nn.Module):
    """Perceptual loss (Johnson et al. 2016): L1 between VGG16 relu1_2, relu2_2, relu3_3
    features of ImageNet-normalised images. Build with :func:`load_perceptual`."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.slices = nn.ModuleList([features[:4], features[4:9], features[9:16]])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h1, h2 = (_fill(pred, target, mask) - self.mean) / self.std, (target - self.mean) / self.std
        loss = pred.new_zeros(())
        for s in self.slices:
            h1, h2 = s(h1), s(h2)
            loss = loss + (h1 - h2).abs().mean()
        return loss


def load_perceptual(device: str | torch.device = "cpu") -> tuple[VGGPerceptual | None, str]:
    """(module or None, status line). None when no VGG16 weights are on this machine (the
    status line says the term is off; nothing is downloaded). Weights that were named or found
    but cannot be loaded are an error."""
    path = vgg_weights_path()
    if path is None:
        return None, (f"perceptual loss off: no VGG16 weights on this machine (set {VGG_ENV} to a local "
                      "torchvision vgg16-397923af.pth)")
    try:
        from torchvision.models import vgg16

        net = vgg16(weights=None)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure: say which file and why, in one line
        raise FaceDet3DError(f"VGG16 weights {path} cannot be loaded ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); replace the file or unset {VGG_ENV}") from None
    return VGGPerceptual(net.features.eval()).to(device), f"perceptual loss on: VGG16 from {path}"


# -- the paper's terms --------------------------------------------------------------------------
def photometric(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, w: LossWeights,
                vgg: VGGPerceptual | None = None) -> dict[str, torch.Tensor]:
    """L_Photo (Eq. 26) parts over the masked pixels: {"mse", "l1", "lap", "perceptual"}
    (only the switched-on, available ones)."""
    parts: dict[str, torch.Tensor] = {}
    if w.mse:
        parts["mse"] = _mean((pred - target) ** 2, mask)
    if w.l1:
        parts["l1"] = _mean((pred - target).abs(), mask)
    if w.lap:
        parts["lap"] = lap_loss_img(pred, target, mask, w.lap_levels)
    if w.perceptual and vgg is not None:
        parts["perceptual"] = vgg(pred, target, mask)
    return parts


def weighted(parts: dict[str, torch.Tensor], w: LossWeights) -> torch.Tensor:
    return sum(getattr(w, k) * v for k, v in parts.items())


def augmented_target(photo: torch.Tensor, shading: torch.Tensor, shading_fake: torch.Tensor) -> torch.Tensor:
    """I*_x = Shading*(I_x) x I_x / Shading(I_x) (Eq. 28), in linear light, back to sRGB.
    photo (B, 3, H, W) sRGB; shading, shading_fake (B, 1, H, W) SH shading of G_D and G*_D."""
    return to_srgb(to_linear(photo) * shading_fake / shading.clamp_min(1e-3))


def augw_loss(pred_fake: torch.Tensor, target_fake: torch.Tensor, mask: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """L_AugW = LapLoss(Î*_x, I*_x) (Eq. 29)."""
    return lap_loss_img(pred_fake, target_fake, mask, levels)


def dsl_loss(f_theta: nn.Module, render: torch.Tensor, shading: torch.Tensor, skin: torch.Tensor,
             levels: int = 4) -> torch.Tensor:
    """L_DSL = LapLoss(f_θ(Î), Shading) over the skin region (Eq. 30)."""
    return lap_loss_img(f_theta(render), shading, skin, levels)
