"""Animate from Video: a video, a Live Link Face CSV or a track JSON drives the face.

Tracking is a backend job (``facedet3d track`` on a backend thread: ``client.track_start``,
then ``client.track_state`` polled from the job's worker thread), through the add-on's one
backend client, in-process or the loopback server (``/track``, ``/track-state``): progress
in the status bar, Esc cancels the backend job. The add-on reads only the track JSON.

Applied on the main thread in one undo step:
- the 17 AU properties (``facedet3d.auNN``), keyed per track frame;
- the shape keys no AU drives, from their ARKit scores: eye look (8), jaw forward/left/right,
  mouth left/right, pucker and lip rolls;
- the head rotation on the object, relative to the performer's first tracked frame: with
  ``R(t)`` the performer's head rotation in their camera's frame (yaw, pitch, roll as
  ``Rz(roll) Ry(yaw) Rx(pitch)``, the backend's convention) and ``Q`` this face's camera
  rotation in the world, the object turns by ``Q R(t) R(0)^T Q^T``, so the face turns in its
  camera's view as the performer turned in theirs.
Timing: track time t lands on scene frame ``start + t * scene_fps / speed``. Frames without
a face get no keys (the curves hold the neighbours); interpolated ones are keyed.
"""

from __future__ import annotations

import json
import math
import os
import time

import bpy
import numpy as np
from mathutils import Matrix

from . import preferences
from .client import T
from .operators import _JobOperator, face_object
from .properties import AU_IDS

# Shape keys that no AU drives and the track reads (mouthClose is left out: alone it pushes
# the lips through each other; cheekPuff is a channel MediaPipe never moves).
FREE_KEYS = ("eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L",
             "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R", "jawForward", "jawLeft", "jawRight",
             "mouthLeft", "mouthRight", "mouthPucker", "mouthRollLower", "mouthRollUpper")
INPUT_GLOB = "*.mp4;*.mov;*.avi;*.mkv;*.webm;*.m4v;*.csv;*.json"


def arkit_name(key: str) -> str:
    """Shape key (``eyeLookIn_L``) -> ARKit score name (``eyeLookInLeft``)."""
    if key.endswith("_L"):
        return key[:-2] + "Left"
    if key.endswith("_R"):
        return key[:-2] + "Right"
    return key


def parse_track(text: str, name: str) -> dict:
    """Track JSON text -> dict, checked (fps, frames, at least one frame with a face)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RuntimeError(f"{name}: not a track JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or not data.get("fps"):
        raise RuntimeError(f"{name}: not a track JSON (no fps/frames)")
    if not any("aus" in f for f in data["frames"]):
        raise RuntimeError(f"{name}: the track has no frame with a face")
    return data


def load_track(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{os.path.basename(path)}: not a track JSON ({exc})") from None
    return parse_track(text, os.path.basename(path))


def track_work(path: str, client, frames: int = 0, poll_s: float = 0.2):
    """``work(progress, cancelled)`` for ``jobs.Job``: the track dict of ``path`` (a video,
    a Live Link Face .csv, or a track .json read as is); None when cancelled. ``client``: a
    backend client, or a no-argument callable returning one (called in the worker, since
    starting a server takes seconds)."""

    def work(progress, cancelled):
        if path.lower().endswith(".json"):
            return load_track(path)
        c = client() if callable(client) else client
        name = os.path.basename(path)
        st = c.track_start(T.TrackCall(source=path, frames=int(frames)))
        said = -1
        while st.state == "running":
            if cancelled():
                st = c.track_state(T.TrackPoll(st.job, cancel=True))
                while st.state == "running":  # until the backend has stopped (one frame)
                    time.sleep(poll_s)
                    st = c.track_state(T.TrackPoll(st.job))
                return None
            time.sleep(poll_s)
            st = c.track_state(T.TrackPoll(st.job))
            if st.frames // 50 != said:  # the status bar and batch logs, every 50 frames
                said = st.frames // 50
                progress(f"tracking {name} ({st.frames} frames)")
        if st.state == "failed":
            raise RuntimeError(st.message or f"tracking {name} failed")
        if st.state == "cancelled":
            return None
        return parse_track(st.track_json, name)

    return work


def _rot(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return rz @ ry @ rx


def apply_track(context, obj, track: dict, start: float = 1.0, speed: float = 1.0, head: bool = True,
                max_frames: int = 0) -> dict:
    """Key ``obj`` from a track dict (see the module docstring). Returns counts."""
    from .adapters import animation

    scene = context.scene
    fps = scene.render.fps / scene.render.fps_base
    rows = [f for f in track["frames"] if "aus" in f]
    if max_frames > 0:
        rows = [f for f in rows if f["time"] * float(track["fps"]) < max_frames - 0.5]
    if not rows:
        raise RuntimeError("the track has no frame with a face")
    frames = np.array([start + f["time"] * fps / max(speed, 1e-6) for f in rows], np.float32)
    aus = np.array([[float(f["aus"].get(str(a), 0.0)) for a in AU_IDS] for f in rows], np.float32)
    animation.keyframe_aus(obj, frames, aus)
    key = obj.data.shape_keys
    names = [k for k in FREE_KEYS if key is not None and k in key.key_blocks]
    if names:
        fcs, _ = animation._fcurves(key, f"{obj.name} shape keys")
        for k in names:
            vals = [float(f.get("blendshapes", {}).get(arkit_name(k), 0.0)) for f in rows]
            animation.set_keys(fcs, f'key_blocks["{k}"].value', frames, np.clip(vals, 0, 1), group="")
    n_head = 0
    if head and all("head" in f for f in rows):
        cam = obj.facedet3d.camera or scene.camera
        q = np.array(cam.matrix_world.to_3x3()) if cam is not None else np.eye(3)
        h0 = rows[0]["head"]
        r0 = _rot(h0["yaw"], h0["pitch"], h0["roll"])
        eul, prev = [], None
        for f in rows:
            h = f["head"]
            w = q @ _rot(h["yaw"], h["pitch"], h["roll"]) @ r0.T @ q.T
            e = Matrix(w.tolist()).to_euler("XYZ", prev) if prev is not None else Matrix(w.tolist()).to_euler("XYZ")
            eul.append(tuple(e))
            prev = e
        obj.rotation_mode = "XYZ"
        fcs, _ = animation._fcurves(obj, f"{obj.name} AUs")
        e = np.asarray(eul, np.float32)
        for i in range(3):
            animation.set_keys(fcs, "rotation_euler", frames, e[:, i], index=i)
        n_head = len(rows)
    last = int(math.ceil(frames[-1]))
    if scene.frame_end < last:
        scene.frame_end = last
    return {"keyed_frames": len(rows), "first": float(frames[0]), "last": float(frames[-1]),
            "shape_keys": len(names), "head_keys": n_head}


class FACEDET3D_OT_animate_from_video(_JobOperator, bpy.types.Operator):
    """Track a video (or read a Live Link Face CSV) and keyframe the face's AUs, eye look,
    jaw/mouth sideways shape keys and head rotation"""

    bl_idname = "facedet3d.animate_from_video"
    bl_label = "Animate from Video"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: bpy.props.StringProperty(default=INPUT_GLOB, options={"HIDDEN"})
    start_frame: bpy.props.IntProperty(name="Start frame", default=-1,
                                       description="scene frame of the video's first frame (-1: the current frame)")
    speed: bpy.props.FloatProperty(name="Speed", default=1.0, min=0.05, max=20.0,
                                   description="playback speed: 2 plays the performance twice as fast")
    head_rotation: bpy.props.BoolProperty(name="Head rotation", default=True,
                                          description="also key the object's rotation from the performer's head")

    def invoke(self, context, event):
        return self.pick_file_then_execute(context)

    def execute(self, context):
        obj = face_object(context)
        if obj is None:
            self.report({"ERROR"}, "Import a photo first: there is no face to animate")
            return {"CANCELLED"}
        path = bpy.path.abspath(self.filepath)
        if not os.path.isfile(path):
            self.report({"ERROR"}, f"No such file: {self.filepath}")
            return {"CANCELLED"}
        self._face_name = obj.name
        client = None if path.lower().endswith(".json") else preferences.client_factory(context)
        return self.run_job(context, "Animate from Video", track_work(path, client))

    def _apply(self, context, result):
        from . import live

        obj = context.scene.objects.get(getattr(self, "_face_name", ""))
        if obj is None:
            self.report({"ERROR"}, "The face was removed while tracking")
            return {"CANCELLED"}
        start = context.scene.frame_current if self.start_frame < 0 else self.start_frame
        try:
            with live.quiet():
                info = apply_track(context, obj, result, float(start), self.speed, self.head_rotation)
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            self.report({"ERROR"}, f"Could not apply the track: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Animated {obj.name}: {info['keyed_frames']} frames "
                              f"({info['first']:.0f}-{info['last']:.0f})")
        return {"FINISHED"}


classes = (FACEDET3D_OT_animate_from_video,)


def copy_head_rotation(scene, src, dst, frames) -> bool:
    """Key ``dst``'s rotation with ``src``'s evaluated rotation at ``frames`` (the export copy
    drops the face's own action: exporters then still get the head motion). False when
    ``src`` has no rotation animation."""
    from .adapters import animation

    ad = src.animation_data
    if ad is None or ad.action is None:
        return False
    fcs, _ = animation._fcurves(src, f"{src.name} AUs")
    if fcs.find("rotation_euler", index=0) is None:
        return False
    keep, rows = scene.frame_current, []
    for f in frames:
        scene.frame_set(int(f))
        rows.append(tuple(src.rotation_euler))
    scene.frame_set(keep)
    dst.rotation_mode = "XYZ"
    dfc, _ = animation._fcurves(dst, f"{dst.name} head")
    e = np.asarray(rows, np.float32)
    for i in range(3):
        animation.set_keys(dfc, "rotation_euler", np.asarray(frames), e[:, i], index=i, group="", interpolation="LINEAR")
    return True
