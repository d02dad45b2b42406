"""Per-subject fitting of the neural pass on its own photo (paper Sec. 3.3.1).

One view (the photo's); each step renders a batch of two through Tex2Im: row 0 the real
detailed geometry G_D = {D(I_x)} against the photo (L_Photo, and L_Photo^LR on Î^LR), row 1
a 'fake' detailed geometry G*_D = {D(I*_z)} (a random procedural-corpus map) against the
photo re-shaded by the shading ratio (L_AugW, Eqs. 28-29). f_θ predicts both rows' detailed
shading over the skin (L_DSL, Eq. 30). Random crops of the view keep it from memorising
absolute image position. The geometry (rasters, shadings, targets) is computed once.
"""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import torch

from facedet3d.detail import corpus
from facedet3d.neural import geometry as geo
from facedet3d.neural import losses as L
from facedet3d.neural.model import NeuralConfig, NeuralPass, save
from facedet3d.neural.scene import Scene, SubjectData, default_device, load_scene, to_torch, view_inputs


def fake_bank(n: int, size: int, gain: float, seed: int) -> list[np.ndarray]:
    """``n`` random 'fake' detail maps D(I*_z) ((size, size) metres): procedural-corpus
    identities under random AUs (``detail.corpus``), scaled by ``gain``."""
    rng = np.random.default_rng(seed + 7919)
    maps = []
    for _ in range(n):
        ident = corpus.make_identity(int(rng.integers(1 << 30)))
        # Denser than corpus.random_aus alone, so most maps carry visible folds.
        aus = np.maximum(corpus.random_aus(rng), rng.uniform(0.3, 1.0) * (rng.random(corpus.N_AU) < 0.35))
        maps.append(corpus.render(ident, aus.astype(np.float32), size=size) * gain)
    return maps


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), np.ones((2 * px + 1,) * 2, np.uint8)).astype(bool)


class FitData:
    """Everything a fit step needs, as tensors on ``device`` (the scene's input view only)."""

    def __init__(self, scene: Scene, cfg: NeuralConfig, device):
        subject, vr, geometry = scene.subject, scene.raster, scene.geometry
        self.subject: SubjectData = subject
        self.vr: geo.ViewRaster = vr
        self.geometry: geo.UVGeometry = geometry
        fakes = fake_bank(cfg.fake_maps, subject.uv_size, cfg.fake_gain, cfg.seed) if cfg.fake_maps else []
        inp = view_inputs(subject, vr, geometry, [subject.detail] + fakes)
        t = to_torch(inp, device)
        self.real = {k: v[:1] for k, v in t.items()}
        self.shading_fake = t["shading_d"][1:]
        self.photo = torch.from_numpy(scene.crop.transpose(2, 0, 1)[None].copy()).to(device)
        self.fake_targets = L.augmented_target(self.photo.expand(len(fakes), -1, -1, -1), t["shading_d"][:1],
                                               self.shading_fake) if fakes else None
        m = _erode(vr.mask, 2)
        self.loss_mask = torch.from_numpy(m[None, None].astype(np.float32)).to(device)
        skin = (vr.sample(subject.skin_uv.astype(np.float32)) > 0.5) & m
        self.skin = torch.from_numpy(skin[None, None].astype(np.float32)).to(device)
        self.texture = torch.from_numpy(subject.texture.transpose(2, 0, 1)[None].copy()).to(device)

    def batch(self, k: int | None, crop: int, rng: np.random.Generator):
        """(inputs, photo, fake target, loss mask, skin mask, shading targets) cropped."""
        H, W = self.photo.shape[-2:]
        y0 = x0 = 0
        h, w = H, W
        if crop and crop < min(H, W):
            h = w = crop
            y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        sl = (slice(None), slice(None), slice(y0, y0 + h), slice(x0, x0 + w))

        def rows(key):
            v = self.real[key]
            if k is not None and key == "shading_d":
                v = torch.cat([v, self.shading_fake[k:k + 1]], 0)
            elif k is not None:
                v = torch.cat([v, v], 0)
            return v[:, y0:y0 + h, x0:x0 + w] if key == "grid" else v[sl]

        inputs = {key: rows(key) for key in self.real}
        fake_t = self.fake_targets[k:k + 1][sl] if k is not None else None
        return inputs, self.photo[sl], fake_t, self.loss_mask[sl], self.skin[sl]


def step_losses(net: NeuralPass, data: FitData, cfg: NeuralConfig, k: int | None, rng, vgg=None):
    """Total loss and its named parts (floats) for one random crop; ``k`` the fake map."""
    w = cfg.losses
    use_fake = k is not None and (w.augw or w.dsl)
    inputs, photo, fake_t, mask, skin = data.batch(k if use_fake else None, cfg.crop, rng)
    out, lr, _ = net(data.texture, inputs)
    parts = L.photometric(out[:1], photo, mask, w, vgg)
    total = L.weighted(parts, w)
    if w.lr:
        lr_parts = L.photometric(lr[:1], photo, mask, w, vgg)
        total = total + w.lr * L.weighted(lr_parts, w)
        parts.update({f"lr_{n}": v for n, v in lr_parts.items()})
    if use_fake and w.augw:
        parts["augw"] = L.augw_loss(out[1:2], fake_t, mask, w.lap_levels)
        total = total + w.augw * parts["augw"]
    if use_fake and w.dsl:
        parts["dsl"] = L.dsl_loss(net.f_theta, out, inputs["shading_d"], skin.expand(out.shape[0], -1, -1, -1),
                                  w.lap_levels)
        total = total + w.dsl * parts["dsl"]
    return total, {n: float(v.detach()) for n, v in parts.items()}


@torch.no_grad()
def full_view_photo_loss(net: NeuralPass, data: FitData, cfg: NeuralConfig) -> float:
    """Weighted L_Photo of the whole input view (no crop), the figure a fit must lower."""
    was = net.training
    net.eval()
    out, _, _ = net(data.texture, data.real)
    v = float(L.weighted(L.photometric(out, data.photo, data.loss_mask, cfg.losses), cfg.losses))
    net.train(was)
    return v


def train(net: NeuralPass, data: FitData, cfg: NeuralConfig, progress=None, vgg=None) -> list[dict]:
    """Adam with cosine decay over ``cfg.steps``; returns a loss log (every ~5 % of steps)."""
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.steps, 1), eta_min=cfg.lr * 0.05)
    n_fake = 0 if data.fake_targets is None else data.fake_targets.shape[0]
    log, every, t0 = [], max(1, cfg.steps // 20), time.perf_counter()
    # Keep the weights with the lowest whole-view photometric loss (checked every ~5 %), so
    # an unstable stretch of the optimisation can never leave a worse pass than it started.
    best = (full_view_photo_loss(net, data, cfg), {k: v.detach().clone() for k, v in net.state_dict().items()})
    net.train()
    for step in range(cfg.steps):
        k = int(rng.integers(n_fake)) if n_fake else None
        total, parts = step_losses(net, data, cfg, k, rng, vgg)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sched.step()
        if step % every == 0 or step == cfg.steps - 1:
            full = full_view_photo_loss(net, data, cfg)
            if full < best[0]:
                best = (full, {k: v.detach().clone() for k, v in net.state_dict().items()})
            rec = {"step": step, "total": float(total.detach()), **parts, "full_view_photo": full,
                   "s": round(time.perf_counter() - t0, 1)}
            log.append(rec)
            if progress:
                progress(rec)
    net.load_state_dict(best[1])
    net.eval()
    return log


def fit_subject(asset_dir, cfg: NeuralConfig | None = None, photo=None, device=None, progress=None,
                write: bool = True) -> tuple[NeuralPass, SubjectData, dict]:
    """Fit R to the subject's photo and (``write``) store it in the FaceAsset folder.
    Returns (net, subject data, report: losses, metrics at the input view, timings)."""

    cfg = cfg or NeuralConfig()
    if cfg.size % 16 or (cfg.crop and cfg.crop % 16) or cfg.uv_size % 8:
        raise ValueError("size and crop must be multiples of 16, uv_size of 8")
    device = torch.device(device) if device else default_device()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or cpu_threads())
    try:
        return _fit(asset_dir, cfg, photo, device, progress, write)
    finally:
        torch.set_num_threads(threads_before)


def cpu_threads() -> int:
    """Torch CPU threads for small convolutions: half the cores, at most 4 (on a shared
    2-core machine a second thread makes them ~10-40x slower, not faster)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def _fit(asset_dir, cfg, photo, device, progress, write):
    from facedet3d.neural.render import evaluate_input_view

    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    scene = load_scene(asset_dir, cfg.size, cfg.uv_size, photo)
    subject = scene.subject
    vgg, vgg_status = L.load_perceptual(device) if cfg.losses.perceptual else (None, "perceptual loss switched off")
    data = FitData(scene, cfg, device)
    t_prep = time.perf_counter() - t0
    net = NeuralPass(cfg).to(device)
    before = full_view_photo_loss(net, data, cfg), evaluate_input_view(net, data)["render"]
    log = train(net, data, cfg, progress, vgg)
    t_train = time.perf_counter() - t0 - t_prep
    metrics = evaluate_input_view(net, data)
    metrics["initial_render"] = before[1]
    metrics["photo_loss"] = {"before": round(before[0], 6), "after": round(full_view_photo_loss(net, data, cfg), 6)}
    report = {"photo": scene.photo_name, "device": str(device), "perceptual": vgg_status,
              "sh": [round(float(v), 5) for v in subject.sh], "metrics": metrics, "log": log,
              "detailed_geometry": "bump mapping in UV space (normals of P + D n), proxy raster",
              "timings_s": {"prepare": round(t_prep, 2), "train": round(t_train, 2)},
              "expression_adversarial": "off: needs an RGB expression discriminator trained on an image corpus"}
    if write:
        save(asset_dir, net, subject, report)
    return net, subject, report
