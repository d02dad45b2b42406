"""Expression-dependent detail prediction (FaceDet3D Sec. 3.2): DetP, its discriminators and
losses, the RCAN-style super-resolution, the procedural wrinkle corpus, training and the
inference API (``infer.DetailPredictor``). Modules import torch lazily where they can."""


def bench_detail(*args, **kwargs) -> dict:
    """See ``benchmark.bench_detail`` (detail_ms_p50/p95, sr1024_ms, sr4096_ms, peak_rss_mb)."""
    from facedet3d.detail.benchmark import bench_detail as _bench

    return _bench(*args, **kwargs)
