"""Throughput of ``facedet3d dataset`` (keys of ``facedet3d bench``).

Runs small real jobs on copies of one photo: fit-only with 1 and 2 worker processes (one
thread each, so "per core" means one core per worker), and one synthesized target (happy,
frontal) with 1 worker through the software raster at the photo's size; then one
synthesized target at ``--crop face --size 256`` per renderer (raster; Blender Cycles with
1 and 2 workers, one render thread per Blender process; Eevee with 1 worker on
``eevee_photos`` photos, as it takes seconds per frame on a software OpenGL). Rates are steady-state wall rates (first result to last: model
loading and worker start-up excluded, they are paid once per worker); ``*_cpu_ms_per_photo``
is the workers' CPU time per photo, which other load on a shared machine does not inflate.
AffectNet's 87,106 images are costed on paper from the CPU time per photo; the cost spreads linearly over a cluster's cores
as far as the measured 1 -> 2 scaling holds, each worker loading its models once (~5 s).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

AFFECTNET_IMAGES = 87_106


def dataset_bench(photo: str, n_photos: int = 8, size: int | None = None, addon: str | None = None,
                  renderers: tuple = ("raster", "cycles", "eevee"), eevee_photos: int = 3) -> dict:
    from facedet3d.dataset.runner import run_job
    from facedet3d.dataset.sample import JobOptions

    with tempfile.TemporaryDirectory() as td:
        src = Path(td) / "in"
        src.mkdir()
        ext = Path(photo).suffix or ".jpg"
        for i in range(n_photos):
            shutil.copy(photo, src / f"p{i:03d}{ext}")

        cpu, render = {}, {}

        def rate(name, opts, workers, n=n_photos):
            import numpy as np
            import pyarrow.parquet as pq

            with open(os.devnull, "w") as quiet:
                rep = run_job(str(src), str(Path(td) / name), opts, workers=workers, threads=1, shard_size=64,
                              stream=quiet, addon=addon, limit=n)
            if rep.counts["photos_ok"] != n or rep.counts["synth_failed"]:
                raise RuntimeError(f"{name}: {rep.counts['photos_ok']} of {n} photos fitted, "
                                   f"{rep.counts['synth_failed']} targets failed")
            rows = pq.read_table(Path(td) / name / "manifest.parquet").to_pylist()
            # core-ms per photo, targets included (the Blender processes' own CPU time too)
            cpu[name] = sum((r["cpu_ms"] or 0.0) + (r["render_cpu_ms"] or 0.0) for r in rows) / n
            synth = [r for r in rows if r["kind"] == "synth"]
            if synth and synth[0]["render_ms"] is not None:
                render[name] = (float(np.median([r["render_ms"] for r in synth])),
                                float(np.median([r["render_task_ms"] for r in synth])),
                                float(np.median([r["depth_vs_raster_mm"] for r in synth])))
            return rep.steady_photos_per_s

        fit1 = rate("fit1", JobOptions(size=size), 1)
        fit2 = rate("fit2", JobOptions(size=size), 2)
        syn1 = rate("syn1", JobOptions(size=size, expressions=("happy",), views=(0.0,), renderer="raster"), 1)
        extra = {}
        for r in renderers:
            face = dict(size=256, crop="face", expressions=("happy",), views=(0.0,), renderer=r)
            n = eevee_photos if r == "eevee" else n_photos
            one = rate(f"{r}1", JobOptions(**face), 1, n)
            extra[f"dataset_synth1_{r}_face256_photos_per_s_per_core"] = round(one, 3)
            extra[f"dataset_synth1_{r}_face256_cpu_ms_per_photo"] = round(cpu[f"{r}1"], 1)
            extra[f"dataset_affectnet_core_hours_synth1_{r}_face256"] = round(
                AFFECTNET_IMAGES * cpu[f"{r}1"] / 1000.0 / 3600.0, 1)
            if f"{r}1" in render:
                frame_ms, task_ms, dmm = render[f"{r}1"]
                extra[f"dataset_synth1_{r}_face256_render_s_per_frame"] = round(frame_ms / 1000.0, 3)
                extra[f"dataset_synth1_{r}_face256_blender_task_s_per_target"] = round(task_ms / 1000.0, 3)
                extra[f"dataset_synth1_{r}_depth_vs_raster_mm_median"] = round(dmm, 4)
            if r == "cycles":
                two = rate(f"{r}2", JobOptions(**face), 2, n)
                extra[f"dataset_synth1_{r}_face256_photos_per_s_2_workers"] = round(two, 3)
                extra[f"dataset_synth1_{r}_scaling_1_to_2_workers"] = round(two / one, 2)
    # On paper: CPU time per photo (one thread per worker), not the wall rate, which on a
    # shared machine also measures everyone else's load.
    core_h_fit = AFFECTNET_IMAGES * cpu["fit1"] / 1000.0 / 3600.0
    core_h_syn = AFFECTNET_IMAGES * cpu["syn1"] / 1000.0 / 3600.0
    return {
        "dataset_fit_cpu_ms_per_photo": round(cpu["fit1"], 1),
        "dataset_synth1_cpu_ms_per_photo": round(cpu["syn1"], 1),
        "dataset_photos": n_photos,
        "dataset_output_size": size or "photo",
        "dataset_fit_photos_per_s_per_core": round(fit1, 3),
        "dataset_fit_photos_per_s_2_workers": round(fit2, 3),
        "dataset_scaling_1_to_2_workers": round(fit2 / fit1, 2),
        "dataset_synth1_photos_per_s_per_core": round(syn1, 3),
        "dataset_affectnet_core_hours_fit": round(core_h_fit, 1),
        "dataset_affectnet_core_hours_synth1": round(core_h_syn, 1),
        "dataset_affectnet_hours_on_64_cores_fit": round(core_h_fit / 64, 2),
        **extra,
        "dataset_cpu_count": os.cpu_count(),
        "dataset_load_avg_1min": round(os.getloadavg()[0], 2),
    }
