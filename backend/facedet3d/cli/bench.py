"""``facedet3d bench``: speed and memory figures (targets are checked here, not in tests).

fit_ms: median wall time of warm fits of one photo, all stages from reading the file to
the finished in-memory FaceAsset (writing the folder is reported apart as write_ms).
track_fps: frames per second of `facedet3d track` on a 512² clip (target 30).
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _resampled(photo: str, megapixels: float, tmp: Path) -> str:
    """Write ``photo`` resampled to about ``megapixels`` as a quality-92 JPEG."""
    import cv2

    from facedet3d.fit.photo import load_photo

    rgb = load_photo(photo).rgb
    h, w = rgb.shape[:2]
    s = (megapixels * 1e6 / (w * h)) ** 0.5
    big = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
    out = tmp / f"bench_{megapixels:g}mp.jpg"
    cv2.imwrite(str(out), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    return str(out)


def run_bench(photo: str, repeats: int = 7, megapixels: float | None = None,
              detail: bool = True, ui: bool = True, dataset: bool = True, addon: str | None = None) -> dict:
    """All figures: the fit (``fit_bench``), the detail network (``detail.bench_detail``),
    the dataset job's throughput (``dataset.bench.dataset_bench``) and the add-on (``render_job.bench_ui``, in a bpy subprocess). A part that cannot run
    reports ``"<part>_error"`` instead of numbers, never a made-up figure."""
    result = fit_bench(photo, repeats, megapixels)
    if detail:
        try:
            from facedet3d.detail import bench_detail

            result.update(bench_detail())
        except Exception as exc:  # noqa: BLE001 - reported in the JSON, not hidden
            result["detail_error"] = f"{type(exc).__name__}: {exc}"
    try:  # the expression tracker (facedet3d track), 512² video
        from facedet3d.expression.track import bench_track

        result.update(bench_track(photo=photo))
    except Exception as exc:  # noqa: BLE001
        result["track_error"] = f"{type(exc).__name__}: {exc}"
    if dataset:
        try:
            from facedet3d.dataset.bench import dataset_bench

            result.update(dataset_bench(photo, addon=addon))
        except Exception as exc:  # noqa: BLE001
            result["dataset_error"] = f"{type(exc).__name__}: {exc}"
    if ui:
        try:
            from facedet3d.cli.render import bench_ui

            result.update(bench_ui(photo, addon=addon))
        except Exception as exc:  # noqa: BLE001
            result["ui_error"] = f"{type(exc).__name__}: {exc}"
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    return result


def fit_bench(photo: str, repeats: int = 7, megapixels: float | None = None) -> dict:
    from facedet3d.fit.faceasset import write
    from facedet3d.fit.pipeline import Backend, FitRequest

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        if megapixels:
            photo = _resampled(photo, megapixels, tmp)
        backend = Backend()
        req = FitRequest(photo=photo)
        backend.fit(req)  # warm-up: caches, allocator, ONNX session
        totals, stages = [], []
        for _ in range(max(repeats, 1)):
            t0 = time.perf_counter()
            asset = backend.fit(req)
            totals.append((time.perf_counter() - t0) * 1000.0)
            stages.append(asset.meta.timings_ms)
        t0 = time.perf_counter()
        write(asset, tmp / "asset")
        write_ms = (time.perf_counter() - t0) * 1000.0
        w, h = asset.meta.image_size
    split = {f"{k}_ms": round(statistics.median(s[k] for s in stages), 1) for k in stages[0]}
    return {
        "photo": os.path.basename(photo),
        "megapixels": round(w * h / 1e6, 2),
        "fit_ms": round(statistics.median(totals), 1),
        "fit_ms_p95": round(float(np.percentile(totals, 95)), 1),
        "fit_target_ms": 1000,
        "stages": split,
        "write_ms": round(write_ms, 1),
        "threads": __import__("torch").get_num_threads(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
