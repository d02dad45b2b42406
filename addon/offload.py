"""Render and export in a background Blender, so the UI never waits on them.

A rendered frame (2-7 s) or the FBX exporter call (~2 s for 250 frames) blocks the thread it
runs on, and in Blender that thread is the UI. So in the UI the add-on saves a copy of the
scene (main thread, tens of milliseconds), runs the same render/export code in a second
Blender (``blender --background --factory-startup --python offload_child.py``; with
the bpy module, this Python running the script with ``import bpy``) and waits for it in a
worker thread: the timer keeps ticking, progress comes from the child's output, Esc kills
the child. Outputs appear only complete: frames are written under a temporary name and
renamed when whole, exports go to a hidden folder beside the target and are moved there on
success. The child never calls the backend: live faces' detail maps of every frame are
predicted here first (in a worker) and handed over as ``.npy`` files.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import bpy

from . import live

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "[facedet3d-job] "  # the child's protocol lines: progress / result / error
_SAMPLE = re.compile(r"Sample (\d+)/(\d+)")  # Cycles' own progress line in --background
_children: set = set()  # running child processes (killed on unregister)


def wanted() -> bool:
    """Offload in the UI; a --background run (batch jobs) has no UI to keep free."""
    return not bpy.app.background


def child_command(spec_path: str, binary: str | None = None) -> list[str]:
    """The background Blender: this Blender's binary, or with the bpy module (no binary) this
    Python. ``--factory-startup``: no other add-ons or start-up scripts; the child registers
    FaceDet3D from this folder itself (its drivers need its properties), then opens the copy."""
    script = os.path.join(HERE, "offload_child.py")
    binary = bpy.app.binary_path if binary is None else binary
    if binary:
        return [binary, "--background", "--factory-startup", "--python-exit-code", "1",
                "--python", script, "--", spec_path]
    return [sys.executable, script, spec_path]


def save_copy(jobdir: str) -> str:
    """A copy of the open scene for the child (the open file, its name and its unsaved state
    stay as they are; relative paths are remapped to the copy's folder)."""
    path = os.path.join(jobdir, "scene.blend")
    # uncompressed: Blender 5.0 compresses by default, 1.5 s instead of 0.3 s for a 50 MB face
    bpy.ops.wm.save_as_mainfile(filepath=path, copy=True, check_existing=False, relative_remap=True, compress=False)
    return path


def run_child(argv, log_path: str, report, cancelled, poll_s: float = 0.05):
    """Run the child to the end (worker thread, no bpy). Its progress lines go to
    ``report(message, fraction)``; returns its result dict, or None when ``cancelled()``
    became true (the child is killed). Raises RuntimeError with one line when it fails."""
    tail = collections.deque(maxlen=20)
    got = {"result": None, "error": None}
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                encoding="utf-8", errors="replace",  # Blender's output, any platform
                                env=env, start_new_session=True)  # Ctrl-C in Blender's terminal stays here
    except OSError as exc:
        raise RuntimeError(f"could not start the background Blender {argv[0]}: {exc}") from None
    _children.add(proc)
    state = {"base": 0.0, "span": 1.0, "message": "", "said": 0.0}

    def read():
        with open(log_path, "w", encoding="utf-8") as log:
            for line in proc.stdout:
                log.write(line)
                line = line.rstrip("\n")
                if line.strip():
                    tail.append(line.strip())
                if line.startswith(PREFIX):
                    kind, _, rest = line[len(PREFIX):].partition(" ")
                    if kind == "progress":  # "progress FRACTION SPAN MESSAGE"
                        frac, span, msg = rest.split(" ", 2)
                        state.update(base=float(frac), span=float(span), message=msg)
                        report(msg, float(frac))
                    elif kind == "result":
                        got["result"] = json.loads(rest)
                    elif kind == "error":
                        got["error"] = rest
                elif state["message"] and (m := _SAMPLE.search(line)) and time.monotonic() - state["said"] > 0.25:
                    state["said"] = time.monotonic()  # within a frame, a few times a second
                    done = int(m.group(1)) / max(int(m.group(2)), 1)
                    report(f"{state['message']}, sample {m.group(1)}/{m.group(2)}", state["base"] + done * state["span"])

    reader = threading.Thread(target=read, daemon=True, name="facedet3d-child-output")
    reader.start()
    try:
        while proc.poll() is None:
            if cancelled():
                proc.kill()
                proc.wait()
                reader.join(10.0)  # the log is closed before the job folder goes
                return None
            time.sleep(poll_s)
        reader.join(10.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _children.discard(proc)
    if proc.returncode != 0 or got["result"] is None:
        why = got["error"] or (tail[-1] if tail else "no output")
        code = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        raise RuntimeError(f"the background Blender failed ({code}): {why} (log: {log_path})")
    return got["result"]


def child_steps(task, spec: dict, message: str, fraction: float = 0.0):
    """Steps: save a copy, run the child on ``spec`` (written as JSON beside it) in a worker.
    Returns the child's result (None when cancelled). The caller owns ``spec["jobdir"]``."""
    from .jobs import Background

    jobdir = spec["jobdir"]
    if live.busy():  # else the save's own flush (live.py's save_pre) would wait on it here
        yield Background("finishing live details", live.wait_all, fraction)
    live.apply_ready()
    yield ("saving a copy for the background Blender", fraction)
    save_copy(jobdir)
    spec_path = os.path.join(jobdir, "job.json")
    with open(spec_path, "w", encoding="utf-8") as fh:
        json.dump(spec, fh)
    argv = child_command(spec_path)

    def report(msg, frac):  # the child's 0..1 mapped onto what is left of this task's bar
        task.report(msg, fraction + (1.0 - fraction) * frac)

    return (yield Background(message, lambda: run_child(argv, os.path.join(jobdir, "child.log"), report,
                                                        task.cancelled), fraction))


def new_jobdir() -> str:
    return tempfile.mkdtemp(prefix="facedet3d_job_", dir=bpy.app.tempdir or None)


def end_job(jobdir: str, failed: bool) -> None:
    """Remove the job folder; after a failure keep its log (the error names it)."""
    for name in os.listdir(jobdir) if os.path.isdir(jobdir) else ():
        if failed and name == "child.log":
            continue
        path = os.path.join(jobdir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    if not failed:
        shutil.rmtree(jobdir, ignore_errors=True)


def render_steps(context, out_dir: str, task, client, frames=None, passes: bool = False):
    """Render Frames in a background Blender (same frames, files and result as
    ``render.render_steps``). ``client``: the backend or a callable returning one, asked only
    when a face has live details."""
    import numpy as np

    from . import bake, render
    from .jobs import Background

    scene = context.scene
    frames = [int(f) for f in (frames or range(scene.frame_start, scene.frame_end + 1))]
    faces = [o.name for o in scene.objects if live.is_live(o)]
    jobdir, failed = new_jobdir(), True
    try:
        details = {}
        for k, name in enumerate(faces):  # each frame's own map, as the live updater would give
            obj = bpy.data.objects[name]
            rows = yield from bake.read_rows_steps(scene, obj, frames, 0.05)
            base = live.make_request(obj, None)
            if callable(client):
                client = yield Background("starting the backend", client, 0.05)
            path = details[name] = os.path.join(jobdir, f"details_{k}.npy")

            def predict(base=base, rows=rows, path=path, c=client):
                maps = bake.predict_rows(c, base, rows, cancelled=task.cancelled)
                if maps is not None:
                    np.save(path, maps)

            yield Background(f"predicting the detail maps of {name}", predict, 0.1)
        spec = {"kind": "render", "jobdir": jobdir, "out_dir": os.path.abspath(out_dir), "frames": frames,
                "passes": bool(passes), "details": details}
        out = yield from child_steps(task, spec, f"rendering {len(frames)} frame(s) in a background Blender", 0.15)
        failed = out is None
        return out
    finally:
        render.remove_partials(out_dir)
        end_job(jobdir, failed and not task.cancelled())


def export_steps(context, obj, filepath: str, task, fmt: str = "FBX"):
    """Export Face in a background Blender: the child writes into a hidden folder beside
    ``filepath``; every file is moved into place (renamed, so it appears whole) on success."""
    from . import export
    from .jobs import Background

    filepath = os.path.abspath(bpy.path.abspath(filepath))
    folder = os.path.dirname(filepath)
    os.makedirs(folder, exist_ok=True)
    staging = os.path.join(folder, f".facedet3d-export-{uuid.uuid4().hex[:8]}")
    details = export.baked_details(obj)
    jobdir, failed = new_jobdir(), True
    try:
        spec = {"kind": "export", "jobdir": jobdir, "object": obj.name, "format": fmt,
                "filepath": os.path.join(staging, os.path.basename(filepath))}
        out = yield from child_steps(task, spec, f"exporting {os.path.basename(filepath)} in a background Blender")
        if out is None:
            return None
        failed = False
        yield Background("moving the export into place", lambda: _move_tree(staging, folder), 0.95)
        if details:
            yield Background("copying the baked detail maps", lambda: export.copy_details(details, filepath), 0.97)
        return filepath
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        end_job(jobdir, failed and not task.cancelled())


def _move_tree(src: str, dest: str) -> None:
    """Move every file under ``src`` to the same place under ``dest`` (same file system:
    each rename is atomic, so no reader sees a half-written file)."""
    for root, _dirs, files in os.walk(src):
        target = os.path.join(dest, os.path.relpath(root, src))
        os.makedirs(target, exist_ok=True)
        for name in files:
            os.replace(os.path.join(root, name), os.path.join(target, name))


def kill_all() -> int:
    """Kill running children (add-on unregistered, Blender quitting)."""
    n = 0
    for proc in list(_children):
        if proc.poll() is None:
            proc.kill()
            n += 1
    return n
