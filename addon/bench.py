"""Speed figures of the add-on (run by ``facedet3d.cli.render.bench_ui`` through batch.py).

ui_update_ms: AU property change -> detail map predicted and written into the image pixels
(median of warm changes, CPU). render_s_per_frame_eevee / _cycles: warm frames at 512x512.
backend_share: the share of a small batch job (fit, build, bake, render 4 Eevee frames) spent
in backend calls.
"""

from __future__ import annotations

import statistics
import time

import bpy
import numpy as np


def _render_s(context, engine: str, frames: int = 3, samples: int = 16) -> tuple[float, float]:
    from . import render

    scene = context.scene
    render.configure(scene, engine, samples)
    scene.render.resolution_x = scene.render.resolution_y = 512
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        bpy.ops.render.render(write_still=False)
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:]) if len(times) > 1 else times[0]


def bench_ui(photo: str) -> dict:
    from . import bake, build, client as client_mod, live, register, unregister
    from .adapters import animation

    bpy.ops.wm.read_factory_settings(use_empty=True)
    register()
    try:
        ctx = bpy.context
        client = client_mod.get_client("AUTO")
        t_all = time.perf_counter()
        t0 = time.perf_counter()
        face = client.fit(client_mod.T.FitCall(photo=photo))
        fit_s = time.perf_counter() - t0
        obj, _ = build.build_face(ctx, face)
        live.flush()
        ups = []
        rng = np.random.default_rng(0)
        for i in range(12):
            t0 = time.perf_counter()
            obj.facedet3d.au12 = float(rng.uniform(0.05, 1.0))
            live.flush()
            ups.append((time.perf_counter() - t0) * 1000.0)
        scene = ctx.scene
        scene.frame_start, scene.frame_end = 1, 4
        with live.quiet():
            animation.keyframe_aus(obj, [1, 4], np.stack([face.photo_aus, np.asarray(client.status().presets["happy"])]))
        t0 = time.perf_counter()
        bake.bake_details(ctx, obj, client, bpy.app.tempdir + "bench_details")
        bake_s = time.perf_counter() - t0
        first_e, eevee = _render_s(ctx, "eevee", frames=5)
        render_4 = first_e + 3 * eevee
        total = (time.perf_counter() - t_all)
        _, cycles = _render_s(ctx, "cycles", frames=3)
        return {
            "ui_update_ms": round(statistics.median(ups[2:]), 2),
            "ui_update_ms_p95": round(float(np.percentile(ups[2:], 95)), 2),
            "detail_source": face.detail_source,
            "render_s_per_frame_eevee": round(eevee, 3),
            "render_s_first_frame_eevee": round(first_e, 3),
            "render_s_per_frame_cycles": round(cycles, 3),
            "backend_share": round((fit_s + bake_s) / max(fit_s + bake_s + render_4, 1e-9), 3),
            "bench_batch_s": round(total, 2),
        }
    finally:
        unregister()
