"""Detail-stage figures for ``facedet3d bench`` (wired in by bench.py; targets checked there,
not in tests): DetP latency at 256² (warm, batch 1), SR to 1024² and to 4096², peak RSS."""

from __future__ import annotations

import resource
import statistics
import time

import numpy as np


def bench_detail(detail_input: np.ndarray | None = None, repeats: int = 30, backend: str = "auto",
                 threads: int | None = None) -> dict:
    """Returns ``detail_ms_p50``, ``detail_ms_p95`` (256², warm, batch 1, whole ``__call__``
    including input resampling), ``sr1024_ms`` (256² -> 1024², median of 5), ``sr4096_ms``
    (256² -> 4096², two passes, the second tiled; median of 2), ``peak_rss_mb`` (process
    peak), and the backend used. ``detail_input``: a FaceAsset's D(I_x) (any S²); default a
    corpus map."""
    from facedet3d.rig.facs import preset_aus
    from facedet3d.detail.infer import DetailPredictor

    if detail_input is None:
        from facedet3d.detail import corpus

        detail_input = corpus.render(corpus.make_identity(2024, age=45), np.zeros(17), 1024)
    pred = DetailPredictor(backend=backend, threads=threads)
    x, y = np.zeros(17, np.float32), preset_aus("happy")
    for _ in range(3):
        d256 = pred(detail_input, x, y)
    ts = []
    for _ in range(max(repeats, 5)):
        t0 = time.perf_counter()
        d256 = pred(detail_input, x, y)
        ts.append((time.perf_counter() - t0) * 1000.0)
    pred.super_resolve(d256, 1024)  # warm-up
    sr1 = []
    for _ in range(5):
        t0 = time.perf_counter()
        pred.super_resolve(d256, 1024)
        sr1.append((time.perf_counter() - t0) * 1000.0)
    sr4 = []
    for _ in range(2):
        t0 = time.perf_counter()
        d4 = pred.super_resolve(d256, 4096)
        sr4.append((time.perf_counter() - t0) * 1000.0)
    assert d4.shape == (4096, 4096)
    return {
        "detail_ms_p50": round(float(np.percentile(ts, 50)), 2),
        "detail_ms_p95": round(float(np.percentile(ts, 95)), 2),
        "sr1024_ms": round(statistics.median(sr1), 1),
        "sr4096_ms": round(statistics.median(sr4), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "detail_backend": pred.backend,
        "detail_targets": {"detail_ms_p95": 30, "sr1024_ms": 300},
    }
