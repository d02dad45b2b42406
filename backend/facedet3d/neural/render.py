"""Rendering with a fitted neural pass, and its measurements.

``neural_render(asset_dir, vertices_m, detail, view, size)`` renders through the backend's
own rasteriser (``facedet3d neural-render``, the tests); the add-on's ``render --neural``
job feeds Blender's passes through ``passes.render_from_passes``; both run ``run_network``:
    view = view_projection(asset.meta.pose.projection, asset.meta.box, 256, yaw_deg=30)
    rgb = neural_render("subject/", posed_vertices_m, detail_map_m, view, 256)
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import torch

from facedet3d.imaging.color import linear_to_srgb, srgb_to_linear
from facedet3d.imaging.color_torch import to_srgb
from facedet3d.neural import geometry as geo
from facedet3d.neural.model import WEIGHTS_FILE, NeuralPass, load
from facedet3d.neural.scene import (NeuralInputError, SubjectData, default_device, read_asset, to_torch,
                                    view_inputs)

BACKGROUND = 0.16  # sRGB grey outside the face


@functools.lru_cache(maxsize=4)
def _loaded(asset_dir: str, mtime_ns: int, device: str):
    net, subject, meta = load(asset_dir, device)
    asset = read_asset(asset_dir)
    return net, subject, meta, asset.faces, asset.uv


def load_cached(asset_dir, device: str | None = None):
    """(net, subject, neural.json, faces, uv), cached per folder and weights file version."""
    p = Path(asset_dir).resolve()
    w = p / WEIGHTS_FILE
    mt = w.stat().st_mtime_ns if w.is_file() else 0
    return _loaded(str(p), mt, str(device or default_device()))


def apply_cavity(image_srgb: np.ndarray, log_factor: np.ndarray) -> np.ndarray:
    """(H, W, 3) sRGB [0, 1] image darkened by exp(log_factor) (H, W) in linear light: the
    cavity term multiplies the albedo, and a diffuse surface's radiance scales with its albedo,
    so this is the frame the network would give for the darker colour."""
    lin = srgb_to_linear(np.clip(image_srgb, 0, 1)) * np.exp(np.asarray(log_factor, np.float32))[..., None]
    return np.clip(linear_to_srgb(lin), 0, 1).astype(np.float32)


@torch.no_grad()
def render_arrays(net: NeuralPass, subject: SubjectData, faces, uv, vertices_m: np.ndarray,
                  details: list[np.ndarray | None], view: np.ndarray, size, sh=None,
                  rest: np.ndarray | None = None, cavity: float = 1.0) -> dict[str, np.ndarray]:
    """Float renders of one posed mesh under several detail maps (batch rows):
    image / lr / det (B, H, W, 3) sRGB, mask (H, W) bool, shading_p (H, W), shading_d (B, H, W).
    With ``rest`` (the map the face was built with, metres) and ``cavity`` > 0, each row's
    ``image`` carries the material's cavity term for its map (``geometry.cavity_log``);
    ``lr`` and ``det`` stay the network's own branches."""
    H, W = (size, size) if np.isscalar(size) else map(int, size)
    v = np.asarray(vertices_m, np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] != len(uv) or not np.isfinite(v).all():
        raise NeuralInputError(f"vertices must be finite ({len(uv)}, 3) metres, got shape {v.shape}")
    view = np.asarray(view, np.float64)
    if view.shape != (3, 4):
        raise NeuralInputError(f"view must be a 3x4 projection, got shape {view.shape}")
    for d in details:
        if d is not None and (np.ndim(d) != 2 or d.shape[0] != d.shape[1] or not np.isfinite(d).all()):
            raise NeuralInputError(f"detail must be a finite square (S, S) map in metres, got shape {np.shape(d)}")
    if H % 16 or W % 16:
        raise NeuralInputError(f"render size must be a multiple of 16, got {H}x{W}")
    vr = geo.view_raster(geo.units_from_metres(v), faces, uv, view, H, W)
    g = geo.uv_geometry(v, faces, subject.uv_size)
    inp = view_inputs(subject, vr, g, list(details), sh)
    image, lr, det = run_network(net, subject, inp, parts=True)
    if rest is not None and cavity > 0:
        rest = np.asarray(rest, np.float32)
        if rest.ndim != 2 or rest.shape[0] != rest.shape[1] or not np.isfinite(rest).all():
            raise NeuralInputError(f"rest must be a finite square (S, S) map in metres, got shape {np.shape(rest)}")
        for i, d in enumerate(details):
            if d is not None:
                image[i] = apply_cavity(image[i], vr.sample(geo.cavity_log(d, rest, cavity)))
    return {"image": image, "lr": lr, "det": det, "mask": vr.mask,
            "shading_p": inp["shading_p"][0, 0], "shading_d": inp["shading_d"][:, 0]}


@torch.no_grad()
def run_network(net: NeuralPass, subject: SubjectData, inputs: dict[str, np.ndarray], parts: bool = False):
    """Tex2Im on numpy inputs (``scene.view_inputs`` or ``passes.pass_inputs``, B rows):
    (B, H, W, 3) float sRGB renders clamped to [0, 1], or with ``parts`` also Î^LR and the
    (unclamped) detail branch Î^D."""
    dev = next(net.parameters()).device
    inp = to_torch(inputs, dev)
    tex = torch.from_numpy(subject.texture.transpose(2, 0, 1)[None].copy()).to(dev)
    out, lr, det = net(tex, inp)

    def to_np(t, clamp=True):
        return (t.clamp(0, 1) if clamp else t).permute(0, 2, 3, 1).cpu().numpy()

    return (to_np(out), to_np(lr), to_np(det, False)) if parts else to_np(out)


def composite(image: np.ndarray, mask: np.ndarray, background=BACKGROUND) -> np.ndarray:
    """(H, W, 3) uint8: the render inside the mask over ``background`` (a grey level or an
    (H, W, 3) float image), edges softened by one pixel."""
    a = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0.7)[..., None] * mask[..., None]
    bg = np.broadcast_to(np.asarray(background, np.float32), image.shape)
    return (np.clip(image * a + bg * (1 - a), 0, 1) * 255 + 0.5).astype(np.uint8)


def neural_render(asset_dir, vertices_m: np.ndarray, detail: np.ndarray | None, view: np.ndarray, size,
                  sh: np.ndarray | None = None, device: str | None = None, rest: np.ndarray | None = None,
                  cavity: float = 1.0) -> np.ndarray:
    """Neural frame of a fitted subject.

    asset_dir:  FaceAsset folder holding ``neural.safetensors`` (``facedet3d neural-fit``).
    vertices_m: (N, 3) posed mesh, metres, model space (the asset's topology).
    detail:     (S, S) displacement in metres along the normal (any S, UV layout, row 0 =
                v = 1), or None for the proxy geometry without details.
    view:       3x4 projection, BFM units -> output pixels [x right, y down, z toward the
                camera] (``geometry.view_projection`` builds one around the face box).
    size:       output side (int) or (H, W); multiples of 16.
    sh:         optional (9,) SH lighting (the pass's parameter; default: the photo's).
    rest:       optional (S, S) map the face was built with (metres; DetP at the photo's own
                AUs): with it the frame carries the material's cavity term, ``cavity`` x
                (detail - rest) / 1 mm in log luminance, as the add-on's frames do.
    Returns (H, W, 3) uint8 sRGB, the face over a dark grey background.
    """
    net, subject, _, faces, uv = load_cached(asset_dir, device)
    r = render_arrays(net, subject, faces, uv, vertices_m, [detail], view, size, sh, rest, cavity)
    return composite(r["image"][0], r["mask"])


# -- measurements ------------------------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    mse = float(np.mean((a[mask] - b[mask]) ** 2))
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (Gaussian window sigma 1.5, per channel, [0, 1] images) over ``mask``."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    a, b = a.astype(np.float32), b.astype(np.float32)
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s.mean(-1)[mask].mean())


@torch.no_grad()
def evaluate_input_view(net: NeuralPass, data) -> dict:
    """PSNR / SSIM inside the (2-px eroded) face mask at the photo's view, for R's render,
    its low-res branch and the plain textured mesh (shaded albedo) as a reference."""
    net.eval()
    out, lr, _ = net(data.texture, data.real)
    photo = data.photo[0].permute(1, 2, 0).cpu().numpy()
    m = data.loss_mask[0, 0].cpu().numpy() > 0.5
    res = {}
    base = to_srgb(data.real["albedo"] * data.real["shading_d"])
    for name, t in (("render", out), ("lr_branch", lr), ("textured_mesh", base)):
        img = t[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        res[name] = {"psnr": round(psnr(img, photo, m), 2), "ssim": round(ssim(img, photo, m), 4)}
    return res


def detail_response(r: dict, row_with: int = 1, row_without: int = 0, quantile: float = 0.85) -> dict:
    """How the rendered difference with vs without details follows the geometry.

    From ``render_arrays`` with rows (without, with): diff = mean |Î_with - Î_without| over
    colour; change = |Shading_with / Shading_without - 1| (what the detail map does to the
    shading). Region W = masked pixels with change above its ``quantile`` (the detail map's
    footprint). Returns ``ratio`` = mean diff in W / mean diff elsewhere in the mask (> 1:
    concentrated where the details are), ``gain`` = mean diff in W / mean |I* - Î| in W
    (share of the shading-ratio change that is rendered), ``corr`` Pearson diff vs change."""
    m = r["mask"] & (cv2.erode(r["mask"].astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    diff = np.abs(r["image"][row_with] - r["image"][row_without]).mean(-1)
    sd, sp = r["shading_d"][row_with], r["shading_d"][row_without]
    change = np.abs(sd / np.maximum(sp, 1e-3) - 1.0)
    thr = max(float(np.quantile(change[m], quantile)), 1e-4)
    w = m & (change > thr)
    rest = m & ~w
    ratio = float(diff[w].mean() / max(diff[rest].mean(), 1e-9)) if w.any() and rest.any() else 0.0
    base = r["image"][row_without]
    expect = np.abs(linear_to_srgb(srgb_to_linear(base) * (sd / np.maximum(sp, 1e-3))[..., None]) - base).mean(-1)
    gain = float(diff[w].mean() / max(expect[w].mean(), 1e-9)) if w.any() else 0.0
    corr = float(np.corrcoef(diff[m], change[m])[0, 1]) if m.sum() > 2 else 0.0
    return {"ratio": round(ratio, 3), "gain": round(gain, 3), "corr": round(corr, 3)}
