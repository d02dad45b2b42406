"""The neural pass fed by a renderer's passes instead of the backend's own rasteriser.

At render time the add-on renders, per frame and with one camera, Cycles' UV, Normal and
alpha passes twice: with the details on (the Displace modifier and the material's bump: the
detailed geometry G_D) and off (the proxy geometry). This module reads those files and turns
them into the same Tex2Im inputs ``scene.view_inputs`` builds from the software raster, so
one network serves both (``render.run_network``).

Pass conventions (Blender/Cycles, multilayer EXR as ``addon/render.py`` writes it):
- ``UV.U``, ``UV.V``: the face's UV map at the pixel centre (one sample, no pixel filter:
  values are exact, not averaged across edges); v = 1 at the top of the texture;
- ``Normal.X/Y/Z``: world-space unit shading normals (bump included);
- ``Combined.A``: coverage (film transparent), > 0.5 = the face;
- ``FaceDet3DCavity.X`` (``api.types.CAVITY_PASS``, optional): the face material's cavity
  exponent, log units (0 where no material writes it). When the detailed passes carry it, the
  detailed frame is darkened by exp() of it in linear light (``render.apply_cavity``), as the
  material darkens the albedo in the Cycles frame; without it the frame has no cavity term
  (faces built before the term, or another renderer).
- EXR rows run top to bottom, like every image here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedet3d.api.types import CAVITY_PASS
from facedet3d.neural import geometry as geo
from facedet3d.neural.scene import NeuralInputError, SubjectData

_CHANNELS = {"uv": ("UV.U", "UV.V"), "normal": ("Normal.X", "Normal.Y", "Normal.Z"), "alpha": ("Combined.A",)}


@dataclass
class PassFrame:
    """One render's passes. uv (H, W, 2) float32 [0, 1]; normal (H, W, 3) float32 unit,
    world space; mask (H, W) bool; cavity (H, W) float32 log units, or None when the file has
    no cavity pass."""

    uv: np.ndarray
    normal: np.ndarray
    mask: np.ndarray
    cavity: np.ndarray | None = None


def read_passes(path) -> PassFrame:
    """UV, normal and coverage from a multilayer EXR (any layer name prefix)."""
    import OpenEXR

    p = Path(path)
    if p.suffix.lower() != ".exr" or not p.is_file():
        raise NeuralInputError(f"{p}: no such multilayer .exr passes file")
    try:
        f = OpenEXR.File(str(p), separate_channels=True)
        chans = {}
        for part in f.parts:
            for name, ch in part.channels.items():
                short = ".".join(name.split(".")[-2:])  # "ViewLayer.UV.U" -> "UV.U"
                chans[short] = np.asarray(ch.pixels, np.float32)
    except Exception as exc:  # noqa: BLE001 - a broken file is bad input, one line
        raise NeuralInputError(f"{p.name}: cannot read the EXR passes ({exc})") from None
    missing = [c for cs in _CHANNELS.values() for c in cs if c not in chans]
    if missing:
        raise NeuralInputError(f"{p.name} lacks the passes {', '.join(missing)} (render with Cycles, UV and Normal passes on, "
                               "film transparent)")
    uv = np.stack([chans[c] for c in _CHANNELS["uv"]], -1)
    n = np.stack([chans[c] for c in _CHANNELS["normal"]], -1)
    mask = chans["Combined.A"] > 0.5
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-8)
    cav = chans.get(f"{CAVITY_PASS}.X")
    if cav is not None:
        cav = np.where(np.isfinite(cav), cav, 0.0).astype(np.float32)
    return PassFrame(uv, n.astype(np.float32), mask & np.isfinite(uv).all(-1) & np.isfinite(n).all(-1), cav)


def pass_inputs(subject: SubjectData, detailed: PassFrame, proxy: PassFrame, world_to_camera: np.ndarray,
                sh: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Tex2Im inputs (as ``scene.view_inputs``) for two rows: 0 the detailed geometry, 1 the
    proxy (shading_d = shading_p). The raster (UV lookup and mask) is the proxy's, as in
    ``geometry``: details move the silhouette by far less than a pixel."""
    H, W = proxy.mask.shape
    if detailed.mask.shape != (H, W):
        raise NeuralInputError(f"detailed and proxy passes differ in size: {detailed.mask.shape} vs {(H, W)}")
    if H % 16 or W % 16:
        raise NeuralInputError(f"passes must be a multiple of 16 pixels on each side, got {W}x{H}")
    r = np.asarray(world_to_camera, np.float32)
    if r.shape != (3, 3) or not np.isfinite(r).all():
        raise NeuralInputError("world_to_camera must be a finite 3x3 rotation")
    sh = subject.sh if sh is None or len(sh) == 0 else np.asarray(sh, np.float32)
    if sh.shape != (9,):
        raise NeuralInputError(f"lighting must be 9 SH coefficients, got shape {sh.shape}")
    mask = proxy.mask
    uv = np.where(mask[..., None], proxy.uv, 0.0)  # off the face uv = (0, 0), as the raster's
    grid = np.stack([2 * uv[..., 0] - 1, 1 - 2 * uv[..., 1]], -1).astype(np.float32)
    vr = geo.ViewRaster(grid, mask, r)
    albedo = vr.sample(subject.albedo).transpose(2, 0, 1)

    def shade(n_world):
        return np.where(mask, geo.sh_shading(n_world @ r.T, sh), 1.0).astype(np.float32)

    sp, sd = shade(proxy.normal), shade(detailed.normal)
    return {"grid": np.repeat(grid[None], 2, 0), "mask": np.repeat(mask[None, None].astype(np.float32), 2, 0),
            "albedo": np.repeat(albedo[None], 2, 0), "shading_p": np.repeat(sp[None, None], 2, 0),
            "shading_d": np.stack([sd, sp])[:, None]}


def render_from_passes(asset_dir, detailed_exr, proxy_exr, world_to_camera, sh=None, device=None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(with details, without details): two (H, W, 3) uint8 sRGB neural frames of a fitted
    subject from the renderer's passes files (see the module docstring; the detailed frame
    carries the cavity term when its passes do)."""
    from facedet3d.neural.render import apply_cavity, composite, load_cached, run_network

    net, subject, _, _, _ = load_cached(asset_dir, device)
    d, p = read_passes(detailed_exr), read_passes(proxy_exr)
    inp = pass_inputs(subject, d, p, world_to_camera, sh)
    images = run_network(net, subject, inp)
    detailed = images[0] if d.cavity is None else apply_cavity(images[0], np.where(p.mask, d.cavity, 0.0))
    return composite(detailed, p.mask), composite(images[1], p.mask)
