"""Learn Folds from Video: the person's own expression folds, learnt from a video of them.

A population network cannot place one person's folds; their own video can (the backend's
``facedet3d folds``, ``detail.personal``). Learning is a backend job (``client.folds_start``,
then ``client.folds_state`` polled from the task's worker thread), through the add-on's one
backend client, in-process or the loopback server (``/folds``, ``/folds-state``): progress in
the status bar and the panel, Esc cancels the backend job (nothing is written). The folds are
stored in the face's FaceAsset folder and added by the backend to every detail map of the face.

Applied on the main thread when the job is done: the face object's custom property
``facedet3d_folds`` (JSON: source video name, frames used, split-check r, active AUs, the
scan settings) and the live detail map, predicted again for the face's current AUs. Remove
Learnt Folds deletes them (file, property) and refreshes the map the same way. Neither is an
undo step: the folds file on disk would not follow an undo.
"""

from __future__ import annotations

import json
import os
import time

import bpy

from . import live, preferences
from .client import T
from .jobs import Background
from .operators import _JobOperator

PROP = "facedet3d_folds"  # custom property on the face object (JSON string)
VIDEO_GLOB = "*.mp4;*.mov;*.avi;*.mkv;*.webm"  # what the backend's frame reader takes
WEAK_R = 0.05  # split-check r below this: the video's folds did not repeat (personal.SELF_CHECK_MIN_R)


def learn(client, call: T.FoldsCall, progress, cancelled, poll_s: float = 0.2) -> T.FoldsState | None:
    """Run a folds job to its end (worker thread, no bpy): its final state once done; None when
    ``cancelled()`` stopped it (after the backend confirmed, so nothing is written later).
    ``progress(message, fraction)`` gets the scanned-frame count."""
    name = os.path.basename(call.video)
    st = client.folds_start(call)
    said = None
    while st.state == "running":
        if cancelled():
            st = client.folds_state(T.FoldsPoll(st.job, cancel=True))
            while st.state == "running":  # until the backend has stopped (one frame)
                time.sleep(poll_s)
                st = client.folds_state(T.FoldsPoll(st.job))
            return None if st.state == "cancelled" else st
        time.sleep(poll_s)
        st = client.folds_state(T.FoldsPoll(st.job))
        if st.state == "running" and (st.frames_done, st.frames_total) != said:
            said = (st.frames_done, st.frames_total)
            what = "fitting the folds" if st.frames_total and st.frames_done >= st.frames_total \
                else f"frame {st.frames_done}/{st.frames_total or '?'}"
            progress(f"learning folds from {name} ({what})", 0.05 + 0.9 * st.frames_done / max(st.frames_total, 1))
    if st.state == "failed":
        raise RuntimeError(st.message or f"learning folds from {name} failed")
    return None if st.state == "cancelled" else st


def record(st: T.FoldsState, max_frames: int, stride: int) -> str:
    """The ``facedet3d_folds`` property's JSON for a finished job."""
    return json.dumps({"source": st.source, "frames": int(st.frames), "split_check_r": st.split_check_r,
                       "active_aus": [int(a) for a in st.active_aus], "max_frames": int(max_frames), "stride": int(stride)})


def refresh_steps(name: str):
    """Predict the face's live detail map again for its current AUs (its folds changed) and
    apply it (main thread; the prediction runs in a worker). A face that is not live (live
    updates off, or baked) keeps its maps: Bake Details again to get the folds in a bake."""
    face = bpy.data.objects.get(name)
    if face is None or not live.is_live(face):
        return False
    if live.request_update(face, force=True):
        yield Background("predicting the face's detail with its folds", live.wait_all, 0.97)
    live.apply_ready()
    return True


def summary_line(name: str, st: T.FoldsState, refreshed: bool) -> tuple[bool, str]:
    """(weak, one line for the report): weak when the split check is missing or below ``WEAK_R``."""
    r = st.split_check_r
    weak = r is None or r < WEAK_R
    line = (f"Learnt folds of {name} from {st.source}: {st.frames} frames, AUs {', '.join(map(str, st.active_aus))}; "
            f"split check r = {'n/a' if r is None else f'{r:.3f}'}")
    if weak:
        line += " (the folds did not repeat between the video's halves: they may be noise; film neutral -> " \
                "smile -> brow raise, twice, in good light)"
    if not refreshed:
        line += "; live detail is off or baked: the map changes on the next update or bake"
    return weak, line


class FACEDET3D_OT_learn_folds(_JobOperator, bpy.types.Operator):
    """Learn the person's own expression folds from a video of them (neutral, smile, brow raise,
    frown; a few seconds) and add them to the face's detail"""

    bl_idname = "facedet3d.learn_folds"
    bl_label = "Learn Folds from Video"

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: bpy.props.StringProperty(default=VIDEO_GLOB, options={"HIDDEN"})
    max_frames: bpy.props.IntProperty(name="Frames", default=120, min=8, max=2000,
                                      description="scan at most this many frames, spread over the video")
    stride: bpy.props.IntProperty(name="Stride", default=2, min=1, max=30,
                                  description="fit every N-th frame")

    def invoke(self, context, event):
        return self.pick_file_then_execute(context)

    def execute(self, context):
        found = self.face_and_asset(context, "Import a photo of the person first: there is no face to learn folds for")
        if found is None:
            return {"CANCELLED"}
        obj, folder = found
        video = bpy.path.abspath(self.filepath)
        if not os.path.isfile(video):
            self.report({"ERROR"}, f"No such video: {self.filepath}")
            return {"CANCELLED"}
        call = T.FoldsCall(asset_dir=folder, video=video, max_frames=int(self.max_frames), stride=int(self.stride))
        factory, name = preferences.client_factory(context), obj.name

        def steps(task):
            client = yield Background("starting the backend", factory, 0.02)
            st = yield Background(f"learning folds from {os.path.basename(video)}",
                                  lambda: learn(client, call, task.report, task.cancelled), 0.05)
            if st is None:
                raise RuntimeError("Learn Folds cancelled")
            face = bpy.data.objects.get(name)
            if face is None:
                raise RuntimeError("The face was removed while its folds were learnt (they are stored in its asset folder)")
            face[PROP] = record(st, call.max_frames, call.stride)
            refreshed = yield from refresh_steps(name)
            return summary_line(name, st, refreshed)

        return self.run_task(context, "Learn Folds", steps)

    def _finish(self, task):
        if task.state == "done" and isinstance(task.result, tuple):
            weak, line = task.result
            self.report({"WARNING"} if weak else {"INFO"}, line)
            return {"FINISHED"}
        return super()._finish(task)


class FACEDET3D_OT_remove_folds(_JobOperator, bpy.types.Operator):
    """Remove the learnt folds from the face (its detail goes back to the detail network's alone)"""

    bl_idname = "facedet3d.remove_folds"
    bl_label = "Remove Learnt Folds"

    def execute(self, context):
        found = self.face_and_asset(context)
        if found is None:
            return {"CANCELLED"}
        obj, folder = found
        factory, name = preferences.client_factory(context), obj.name

        def steps(task):
            client = yield Background("starting the backend", factory, 0.02)
            st = yield Background("removing the learnt folds",
                                  lambda: client.folds_start(T.FoldsCall(asset_dir=folder, remove=True)), 0.3)
            face = bpy.data.objects.get(name)
            if face is not None and PROP in face:
                del face[PROP]
            yield from refresh_steps(name)
            return st.message or f"Removed the learnt folds of {name}"

        return self.run_task(context, "Remove Folds", steps)


def summary(obj) -> str:
    """The panel's line for a face with learnt folds ("" without)."""
    try:
        info = json.loads(obj.get(PROP, "") or "{}")
    except ValueError:
        return "Learnt folds: unreadable record"
    if not info:
        return ""
    r = info.get("split_check_r")
    return f"Folds: {info.get('source', '?')}, {info.get('frames', 0)} frames, r = {'n/a' if r is None else f'{r:.2f}'}"


classes = (FACEDET3D_OT_learn_folds, FACEDET3D_OT_remove_folds)
