"""Synthesized targets rendered by Blender (``--renderer cycles|eevee``), as separate tasks.

The fit worker poses the subject and predicts its wrinkles (``synth.target_geometry``) and
hands over a ``Pending`` job per photo: the mesh of every target in the dataset's camera
frame, the photo texture, DetP's detail maps and the raster's depth and mask of the same
target (for the check below). A render task (``render_pending``: in the driver, a thread of
the local pool, or a Ray task) writes the job to a temporary folder and runs the add-on's
``dataset_render.py`` in a Blender process (the bpy module beside this Python, or a Blender
binary with ``--blender``), which renders each target's RGB, Depth, Normal and coverage
(see that script for the scene). The task reads the files back and encodes the samples.

What a Blender target stores: RGB, depth, normals and mask all from the one render (the
detailed geometry: the mesh displaced by DetP's map at its vertices, plus the material's bump
in the normals), in the sample layout of ``sample``. Its row carries ``renderer``, ``render_ms`` (the
frame), ``render_task_ms`` and ``render_cpu_ms`` (the Blender process's wall and CPU time,
start-up included, shared out over the photo's targets) and the comparison with the software raster's maps of the same target:
``depth_vs_raster_mm`` (median |difference| over pixels both cover, millimetres),
``depth_vs_raster_p95_mm`` and ``mask_iou_vs_raster``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facedet3d.errors import FaceDet3DError

SCRIPT = "dataset_render.py"
TIMEOUT_S_PER_TARGET = 600  # a Blender process stuck this long per target is killed and recorded


class BlenderUnavailable(FaceDet3DError):
    """No add-on folder with the render script, or no Blender to run it."""


@dataclass
class Pending:
    """One photo's targets waiting for Blender. ``scene``: faces, uv, texture, size,
    s_px_per_m, distance_m. ``targets``: dicts with key, row, info, verts (N, 3) camera
    frame metres, detail (S, S) metres, raster_depth, raster_mask."""

    scene: dict
    targets: list = field(default_factory=list)


@dataclass(frozen=True)
class BlenderConfig:
    """How to start Blender: the add-on folder holding ``dataset_render.py``; ``blender``
    a Blender binary (None: the bpy module importable by this Python)."""

    engine: str
    samples: int
    addon: str
    blender: str | None = None
    threads: int = 0  # render threads per Blender process (0: one per core)


def find_script(addon: str | None) -> Path:
    src = addon or os.environ.get("FACEDET3D_ADDON_DIR")
    if not src:
        raise BlenderUnavailable("--renderer cycles|eevee needs the Blender add-on folder: pass --addon DIR "
                                 "or set FACEDET3D_ADDON_DIR")
    p = Path(src).expanduser().resolve() / SCRIPT
    if not p.is_file():
        raise BlenderUnavailable(f"the add-on's {SCRIPT} is not in {p.parent}; pass --addon DIR or set FACEDET3D_ADDON_DIR")
    return p


def check_blender(cfg: BlenderConfig) -> None:
    """Fail the job up front (one line) when Blender cannot run here."""
    find_script(cfg.addon)
    if cfg.blender:
        if shutil.which(cfg.blender) is None:
            raise BlenderUnavailable(f"--blender {cfg.blender}: no such executable")
        return
    import importlib.util

    if importlib.util.find_spec("bpy") is None:
        raise BlenderUnavailable("--renderer cycles|eevee needs the bpy module in this Python (scripts/setup.sh "
                                 "installs it) or --blender PATH")


def command(cfg: BlenderConfig, spec: Path, out: Path) -> list[str]:
    script = find_script(cfg.addon)
    args = ["--", str(spec), str(out), "--engine", cfg.engine, "--samples", str(cfg.samples),
            "--threads", str(cfg.threads)]
    if cfg.blender:
        return [cfg.blender, "--background", "--factory-startup", "--python-exit-code", "1", "--python", str(script), *args]
    return [sys.executable, str(script), *args]


def read_exr(path: Path) -> dict[str, np.ndarray]:
    """Channels of a multilayer EXR by short name ("Depth.Z", "Normal.X", "Combined.A")."""
    import OpenEXR

    f = OpenEXR.File(str(path), separate_channels=True)
    out = {}
    for part in f.parts:
        for name, ch in part.channels.items():
            out[".".join(name.split(".")[-2:])] = np.asarray(ch.pixels, np.float32)
    return out


def read_target(folder: Path, i: int, distance_m: float) -> dict:
    """rgb (H, W, 3) uint8, depth (H, W) float32 m, normals (H, W, 3) float32 unit in the
    dataset's camera frame, mask (H, W) bool, from one rendered target's files."""
    import cv2

    bgr = cv2.imread(str(folder / f"target_{i}.png"), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError(f"Blender wrote no readable target_{i}.png")
    ch = read_exr(folder / f"target_{i}.exr")
    missing = [c for c in ("Depth.Z", "Normal.X", "Normal.Y", "Normal.Z", "Combined.A") if c not in ch]
    if missing:
        raise RuntimeError(f"Blender's target_{i}.exr lacks the passes {', '.join(missing)}")
    z = ch["Depth.Z"]
    # Blender world axes (x, y, z) = camera frame (x, -z, y): back to x right, y up, z to camera
    n = np.stack([ch["Normal.X"], ch["Normal.Z"], -ch["Normal.Y"]], -1)
    ln = np.linalg.norm(n, axis=-1)
    mask = (ch["Combined.A"] > 0.5) & np.isfinite(z) & (z < distance_m + 1.0) & (ln > 1e-6)
    depth = np.where(mask, z, 0.0).astype(np.float32)
    normals = np.where(mask[..., None], n / np.maximum(ln, 1e-6)[..., None], 0.0).astype(np.float32)
    rgb = np.where(mask[..., None], bgr[..., ::-1], 0).astype(np.uint8)
    return {"rgb": rgb, "depth": depth, "normals": normals, "mask": mask}


def compare(depth: np.ndarray, mask: np.ndarray, raster_depth: np.ndarray, raster_mask: np.ndarray) -> dict:
    """Blender's depth against the raster's for one target (millimetres; mask IoU)."""
    both = mask & raster_mask
    union = mask | raster_mask
    d = np.abs(depth[both].astype(np.float64) - raster_depth[both]) * 1000.0
    return {"depth_vs_raster_mm": round(float(np.median(d)), 4) if d.size else None,
            "depth_vs_raster_p95_mm": round(float(np.percentile(d, 95)), 4) if d.size else None,
            "mask_iou_vs_raster": round(float(both.sum() / max(union.sum(), 1)), 4)}


def render_pending(pending: Pending, cfg: BlenderConfig, jpeg_quality: int) -> list[tuple[dict, list]]:
    """Render one photo's targets in one Blender process; returns (row, members) per target.
    A Blender failure becomes failed rows with its one-line reason (the run goes on)."""
    from facedet3d.dataset.sample import encode_target

    t0 = time.perf_counter()
    sc = pending.scene
    with tempfile.TemporaryDirectory(prefix="facedet3d-blender-") as td:
        spec, out = Path(td) / "spec.npz", Path(td) / "out"
        arrays = {"faces": sc["faces"].astype(np.int32), "uv": sc["uv"].astype(np.float32), "texture": sc["texture"],
                  "size": np.asarray(sc["size"], np.int32), "s_px_per_m": np.float64(sc["s_px_per_m"]),
                  "distance_m": np.float64(sc["distance_m"]), "n_targets": np.int32(len(pending.targets))}
        for i, t in enumerate(pending.targets):
            arrays[f"verts_{i}"] = t["verts"].astype(np.float32)
            arrays[f"detail_{i}"] = t["detail"].astype(np.float32)
        np.savez(spec, **arrays)
        try:
            r = subprocess.run(command(cfg, spec, out), capture_output=True, text=True,
                               timeout=TIMEOUT_S_PER_TARGET * max(1, len(pending.targets)))
            err = None if r.returncode == 0 and (out / "done.json").is_file() else (
                (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1][:300])
        except subprocess.TimeoutExpired:
            err = "Blender timed out"
        if err is not None:
            return [({**t["row"], "status": "failed", "reason": f"{cfg.engine} render failed: {err}",
                      "renderer": cfg.engine}, []) for t in pending.targets]
        done = json.loads((out / "done.json").read_text(encoding="utf-8"))
        wall_ms = (time.perf_counter() - t0) * 1000.0
        results = []
        for i, t in enumerate(pending.targets):
            img = read_target(out, i, float(sc["distance_m"]))
            cmp = compare(img["depth"], img["mask"], t["raster_depth"], t["raster_mask"])
            row = {**t["row"], **cmp, "renderer": cfg.engine, "mask_fraction": round(float(img["mask"].mean()), 6),
                   "render_ms": round(done["render_s"][i] * 1000.0, 1),
                   # this photo's Blender process (start-up, scene, all its targets), shared out per target
                   "render_task_ms": round(wall_ms / len(pending.targets), 1),
                   "render_cpu_ms": round(done["cpu_s"] * 1000.0 / len(pending.targets), 1)}
            info = {**t["info"], "rgb": f"Blender {done['blender']} {done['engine']}: the subject's textured mesh, "
                                       "displaced by DetP's wrinkles, key light and grey world",
                    "geometry": f"{cfg.engine} passes (depth, normals with bump, coverage) of the same render",
                    "vs_raster": cmp}
            results.append((row, encode_target(t["key"], img, info, jpeg_quality)))
        return results
