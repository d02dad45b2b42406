"""The background half of ``offload``: in a second Blender, on the saved copy of the scene,
render frames or export the face as the job file says, printing protocol lines
(``[facedet3d-job] progress FRACTION SPAN MESSAGE`` / ``result JSON`` / ``error LINE``).

    blender --background --factory-startup --python offload_child.py -- JOB/job.json
    python offload_child.py JOB/job.json      (the bpy module)

Either way it opens JOB/scene.blend itself, after registering the add-on.

It registers FaceDet3D from this folder (the shape-key drivers read its properties) with its
live detail handlers off: it never calls the backend (the add-on sent the detail maps).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "[facedet3d-job] "


def say(kind: str, text: str) -> None:
    print(f"{PREFIX}{kind} {text}", flush=True)


def load_addon():
    """The add-on package from this folder (``batch.load_addon``: the one loader)."""
    spec = importlib.util.spec_from_file_location("facedet3d_batch", os.path.join(HERE, "batch.py"))
    batch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(batch)
    return batch.load_addon()


def run(job: dict) -> dict | str:
    import bpy
    import numpy as np

    addon = load_addon()
    if addon.__name__ == "facedet3d_addon" and not hasattr(bpy.types.Object, "facedet3d"):
        addon.register()
    from facedet3d_addon import export, jobs, live, render  # noqa: PLC0415

    live.unregister_handlers()  # frame changes ask the backend nothing here
    # opened after registering: a driver or F-curve whose path (facedet3d.auNN) does not
    # resolve when the file loads is flagged invalid and never evaluates again
    bpy.ops.wm.open_mainfile(filepath=os.path.join(job["jobdir"], "scene.blend"))
    ctx = bpy.context
    if job["kind"] == "render":
        maps = {name: np.load(path, mmap_mode="r", allow_pickle=False) for name, path in job["details"].items()}
        n = max(len(job["frames"]), 1)
        steps = render.render_steps(ctx, job["out_dir"], job["frames"], job["passes"], detail_maps=maps)
        span = 1.0 / n  # one frame's share of the bar (Cycles' sample lines fill it)
    elif job["kind"] == "export":
        obj = bpy.data.objects.get(job["object"])
        if obj is None:
            raise RuntimeError(f"no object {job['object']!r} in the saved copy")
        steps = export.export_steps(ctx, obj, job["filepath"], job["format"], details=False)
        span = 0.0
    else:
        raise RuntimeError(f"unknown job kind {job['kind']!r}")
    task = jobs.Task(job["kind"], steps, on_progress=lambda msg: say("progress", f"{task.fraction:.4f} {span:.4f} {msg}"))
    task.run_blocking()
    if task.state != "done":
        raise RuntimeError(task.error or f"{job['kind']} {task.state}")
    return task.result


def main(argv) -> int:
    try:
        with open(argv[-1], encoding="utf-8") as fh:
            job = json.load(fh)
        say("result", json.dumps(run(job)))
        return 0
    except Exception as exc:  # noqa: BLE001 - one line for the add-on's report
        text = str(exc).strip()
        say("error", text.splitlines()[0] if text else type(exc).__name__)
        return 1


if __name__ == "__main__":
    code = main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no teardown: nothing to save, and the bpy 4.2 module crashes in it
