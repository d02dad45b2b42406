"""The fitted neural pass of one subject: config, the networks, storage in the FaceAsset.

Files in the FaceAsset folder (both written atomically: temp name + rename, json last):
- ``neural.safetensors``: tensors ``ntex.*``, ``tex2im.*``, ``f_theta.*`` (network weights),
  ``albedo`` (S,S,3) linear de-lit albedo, ``texture`` (S,S,3) T(I_x) at S², ``sh`` (9,).
- ``neural.json``: ``format``, ``config`` (NeuralConfig), ``report`` (losses, metrics, timings).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from facedet3d.neural.losses import LossWeights
from facedet3d.neural.nets import NTex, ShadingCNN, Tex2Im
from facedet3d.neural.scene import NeuralInputError, SubjectData

WEIGHTS_FILE, META_FILE = "neural.safetensors", "neural.json"
FORMAT = 1


@dataclass
class NeuralConfig:
    size: int = 256            # training / default render resolution (square crop), pixels
    uv_size: int = 256         # S of the neural texture, albedo and detail maps
    ntm_channels: int = 16     # F
    ntex_base: int = 8
    lr_base: int = 32
    lr_factor: int = 2
    detail_base: int = 16
    skip: bool = True          # g_θ / g_ω start from the low- / high-pass of the shaded albedo
    dsl_hidden: int = 16
    steps: int = 400
    lr: float = 1e-3
    crop: int = 128            # random training crop (pixels, multiple of 16; 0 = whole image)
    fake_maps: int = 12        # bank of random 'fake' detail maps for AugW/DSL (corpus identities)
    fake_gain: float = 1.5     # amplitude multiplier of the fake maps
    seed: int = 0
    threads: int = 0           # torch CPU threads during the fit (0 = half the cores, at most 4)
    losses: LossWeights = field(default_factory=LossWeights)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NeuralConfig":
        d = dict(d)
        w = LossWeights(**d.pop("losses", {}))
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known, losses=w)


class NeuralPass(nn.Module):
    """R = Tex2Im ∘ (NTex, rasters) plus f_θ; see ``nets``."""

    def __init__(self, cfg: NeuralConfig):
        super().__init__()
        self.cfg = cfg
        self.ntex = NTex(cfg.ntm_channels, cfg.ntex_base, 3)
        self.tex2im = Tex2Im(cfg.ntm_channels, cfg.lr_base, cfg.lr_factor, cfg.detail_base, cfg.skip)
        self.f_theta = ShadingCNN(cfg.dsl_hidden)

    def neural_texture(self, texture: torch.Tensor) -> torch.Tensor:
        return self.ntex(texture)

    def forward(self, texture: torch.Tensor, inputs: dict):
        """(Î, Î^LR, Î^D) for T(I_x) (1,3,S,S) and view inputs (see ``Tex2Im.forward``)."""
        return self.tex2im(self.ntex(texture), inputs)


def save(asset_dir, net: NeuralPass, subject: SubjectData, report: dict) -> Path:
    from safetensors.torch import save_file

    d = Path(asset_dir)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tensors["albedo"] = torch.from_numpy(subject.albedo.copy())
    tensors["texture"] = torch.from_numpy(subject.texture.astype(np.float32).copy())
    tensors["sh"] = torch.from_numpy(subject.sh.astype(np.float32).copy())
    tensors["skin_uv"] = torch.from_numpy(subject.skin_uv.astype(np.float32))
    tmp_w, tmp_m = d / f".{WEIGHTS_FILE}.tmp-{os.getpid()}", d / f".{META_FILE}.tmp-{os.getpid()}"
    try:
        save_file(tensors, str(tmp_w), metadata={"format": str(FORMAT)})
        tmp_m.write_text(json.dumps({"format": FORMAT, "config": net.cfg.to_dict(), "report": report}, indent=1),
                         encoding="utf-8")
        os.replace(tmp_w, d / WEIGHTS_FILE)
        os.replace(tmp_m, d / META_FILE)
    finally:
        for t in (tmp_w, tmp_m):
            t.unlink(missing_ok=True)
    return d / WEIGHTS_FILE


def read_meta(asset_dir) -> dict:
    """``neural.json`` of a fitted pass (config, report), without loading the networks."""
    d = Path(asset_dir)
    if not (d / WEIGHTS_FILE).is_file() or not (d / META_FILE).is_file():
        raise NeuralInputError(f"{d} has no fitted neural pass ({WEIGHTS_FILE}); run `facedet3d neural-fit {d}` first")
    meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise NeuralInputError(f"{d / META_FILE}: format {meta.get('format')} is not {FORMAT}; run neural-fit again")
    return meta


def load(asset_dir, device="cpu") -> tuple[NeuralPass, SubjectData, dict]:
    """(net in eval mode, the stored SubjectData (detail = zeros), neural.json contents)."""
    from safetensors.torch import load_file

    d = Path(asset_dir)
    meta = read_meta(d)
    cfg = NeuralConfig.from_dict(meta["config"])
    tensors = load_file(str(d / WEIGHTS_FILE))
    extra = {k: tensors.pop(k).numpy() for k in ("albedo", "texture", "sh", "skin_uv")}
    net = NeuralPass(cfg)
    net.load_state_dict(tensors, strict=True)
    S = extra["albedo"].shape[0]
    subject = SubjectData(S, extra["texture"], extra["albedo"], extra["skin_uv"] > 0.5, extra["sh"],
                          np.zeros((S, S), np.float32))
    return net.to(device).eval(), subject, meta
