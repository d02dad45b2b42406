"""Thin operators: read properties, build a request, run it as a ``jobs.Task`` and report
errors with ``self.report`` and CANCELLED. In the UI every task runs modal (a timer ticks
it: progress in the status bar and the panel, Esc or the panel's X cancels); under
--background the same steps run to the end inline."""

from __future__ import annotations

import os
import uuid

import bpy

from . import jobs, live, offload, preferences
from ._api import expressions as X
from .client import T
from .jobs import Background

IMPORT_FRAMES = 48  # Import Photo's frame range (2 s at 24 fps) when the scene has Blender's default one
FACE_RENDER_PX = 512  # Import Photo's render size (square, framing the face)


def face_object(context):
    obj = context.active_object
    if obj is not None and getattr(obj, "facedet3d", None) and obj.facedet3d.is_face:
        return obj
    return next((o for o in context.scene.objects if o.facedet3d.is_face), None)


def _asset_dir(photo: str, context=None) -> str:
    """``facedet3d_assets/<photo>-<id>`` beside the .blend (``preferences.output_base``)."""
    stem = os.path.splitext(os.path.basename(photo))[0] or "face"
    return preferences.resolve(f"//facedet3d_assets/{stem}-{uuid.uuid4().hex[:6]}", context)


class _JobOperator(jobs.TaskOperator):
    """A task operator on the scene's face (``face_object``), reporting errors in one line."""

    def face_and_asset(self, context, missing: str = "No FaceDet3D face in the scene; use Import Photo first"):
        """(face object, its FaceAsset folder), or None after reporting why there is none."""
        from . import neural

        obj = face_object(context)
        if obj is None:
            self.report({"ERROR"}, missing)
            return None
        try:
            return obj, neural.asset_dir(obj)
        except RuntimeError as exc:
            self.report({"ERROR"}, str(exc))
            return None

    def pick_file_then_execute(self, context):
        """``invoke`` of an operator with a ``filepath``: the file browser unless one is given."""
        if not self.filepath:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self.execute(context)


def _default_range(scene) -> bool:
    others = [o for o in scene.objects if o.animation_data is not None and o.animation_data.action is not None]
    return (scene.frame_start, scene.frame_end) == (1, 250) and not others


def import_steps(filepath: str, photo: str, asset_dir: str, texture_size: int, client, task=None):
    """Import Photo's steps: backend (worker) -> face, camera, light (main thread)."""
    from . import build, render

    call = T.FitCall(photo=photo, out_dir=asset_dir, texture_size=int(texture_size))
    if callable(client):  # starting a server takes seconds: in a worker
        client = yield Background("starting the backend", client, 0.02)
    face = yield Background("fitting the photo", lambda: client.fit(call), 0.05)
    if face.detail_source == "detp":  # else said in the report and the panel: no wrinkles without DetP
        req = T.DetailRequest(face.subject_id, face.asset_dir, face.photo_aus[None], 0.0, 256)
        detail = yield Background("predicting details", lambda: client.detail(req).maps[0], 0.7)
    else:
        detail = face.detail
    context = bpy.context
    try:  # in steps (mesh, shape keys, drivers, parts): the UI is never busy for long
        prepared = yield Background("preparing the face", lambda: build.prepare(face), 0.85)
        yield ("building the face", 0.9)
        obj, cam = yield from build.build_steps(context, face, detail, prepared=prepared,
                                                light=context.scene.facedet3d.light)
    except Exception as exc:  # noqa: BLE001 - nothing is left half-built
        raise RuntimeError(f"Could not build the face: {exc}") from None
    context.scene.facedet3d.photo = filepath
    obj.facedet3d.photo = photo  # the neural pass fits on it
    from .adapters import camera

    # the first render shows the face, square, as the headless job's default --framing face
    # (the photo's own camera stays in the scene)
    face_cam = camera.frame_face(context.scene, cam, FACE_RENDER_PX)
    hidden = render.clear_view(context, obj, face_cam)
    if _default_range(context.scene):
        context.scene.frame_start, context.scene.frame_end = 1, IMPORT_FRAMES
    gl = "" if bpy.app.background else render.gl_renderer()
    if gl and context.scene.facedet3d.engine == "BLENDER_EEVEE" and render.fast_engine(gl) == "CYCLES":
        context.scene.facedet3d.engine = "CYCLES"
        engine_note = f"; Render Frames uses Cycles (OpenGL here is software: {gl})"
    else:
        engine_note = ""
    note = "" if face.detail_source == "detp" else " (detail network unavailable: the photo's own detail " \
        "only, no expression wrinkles; see Backend status)"
    if hidden:
        note += f"; hid {', '.join(hidden)} (it blocked the camera)"
    for warning in face.warnings:  # the fit's own notes: a small face, an unusable colour profile
        note += f"; {warning}"
    return f"Imported {obj.name}{note}{engine_note}"


class FACEDET3D_OT_import_photo(_JobOperator, bpy.types.Operator):
    """Fit the face in a photo and build an animatable face object with its camera"""

    bl_idname = "facedet3d.import_photo"
    bl_label = "Import Photo"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: bpy.props.StringProperty(default="*.jpg;*.jpeg;*.png;*.webp;*.tif;*.tiff", options={"HIDDEN"})

    def invoke(self, context, event):
        if not self.filepath and context.scene.facedet3d.photo:
            self.filepath = context.scene.facedet3d.photo
        return self.pick_file_then_execute(context)

    def execute(self, context):
        if not self.filepath:
            self.report({"ERROR"}, "Choose a photo of a face first")
            return {"CANCELLED"}
        photo = bpy.path.abspath(self.filepath)
        if not os.path.isfile(photo):
            self.report({"ERROR"}, f"No such photo: {self.filepath}")
            return {"CANCELLED"}
        try:
            asset_dir = _asset_dir(photo, context)
        except preferences.NeedsSave as exc:
            return self.needs_save(context, exc)
        factory = preferences.client_factory(context)
        size, path = int(context.scene.facedet3d.texture_size), self.filepath
        return self.run_task(context, "Import Photo", lambda task: import_steps(path, photo, asset_dir, size, factory, task))


class FACEDET3D_OT_neural_fit(_JobOperator, bpy.types.Operator):
    """Fit the neural render pass to the face's own photo (minutes on a CPU; once per subject)"""

    bl_idname = "facedet3d.neural_fit"
    bl_label = "Fit Neural Pass"

    def execute(self, context):
        from . import neural

        found = self.face_and_asset(context)
        if found is None:
            return {"CANCELLED"}
        obj, folder = found
        try:
            photo = neural.photo_path(obj)
        except Exception as exc:  # noqa: BLE001 - no photo path recorded
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        factory, name = preferences.client_factory(context), obj.name

        def steps(task):
            client = yield Background("starting the backend", factory)
            info = yield Background("fitting the neural pass (minutes on a CPU)",
                                    lambda: neural.fit(client, folder, photo))
            line = (f"PSNR {info.psnr_db:.1f} dB, SSIM {info.ssim:.3f}; "
                    + ("perceptual term used" if info.perceptual_used else (info.perceptual or "perceptual term off")))
            face = bpy.data.objects.get(name)
            if face is not None:
                face.facedet3d.neural_status = line  # the panel shows it under the neural pass
            return f"Neural pass of {name} ready: {line}"

        return self.run_task(context, "Fit Neural Pass", steps)


class FACEDET3D_OT_cancel(bpy.types.Operator):
    """Cancel the running FaceDet3D job"""

    bl_idname = "facedet3d.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        n = jobs.cancel_all()
        self.report({"INFO"}, f"Cancelling {n} job(s)" if n else "Nothing to cancel")
        return {"FINISHED"}


def status_steps(factory):
    """Check Backend's steps: start/connect in a worker, then show the answer."""
    from . import client as client_mod

    try:
        client = yield Background("starting the backend", factory)
        st = yield Background("asking the backend", client.status)
    except client_mod.BackendError as exc:
        bpy.context.scene.facedet3d.status = f"unavailable: {exc}"
        raise
    bpy.context.scene.facedet3d.status = f"{st.mode}, {st.detail_source}: {st.message}"
    bpy.context.scene.facedet3d.detail_error = st.detail_error
    return None


class FACEDET3D_OT_backend_status(_JobOperator, bpy.types.Operator):
    """Check the backend and show whether the detail network is available"""

    bl_idname = "facedet3d.backend_status"
    bl_label = "Check Backend"

    def execute(self, context):
        return self.run_task(context, "Check Backend", status_steps(preferences.client_factory(context)))


class FACEDET3D_OT_apply_preset(_JobOperator, bpy.types.Operator):
    """Set the AUs of the face to an EMFACS emotion preset"""

    bl_idname = "facedet3d.apply_preset"
    bl_label = "Apply Preset"
    bl_options = {"REGISTER", "UNDO"}

    preset: bpy.props.StringProperty(name="Preset")

    def execute(self, context):
        from . import build

        obj = face_object(context)
        if obj is None:
            self.report({"ERROR"}, "No FaceDet3D face in the scene; use Import Photo first")
            return {"CANCELLED"}
        name = self.preset or context.scene.facedet3d.preset
        if name not in X.PRESETS:
            self.report({"ERROR"}, f"Unknown preset {name!r}; choose from {', '.join(X.PRESETS)}")
            return {"CANCELLED"}
        build.set_aus(obj, X.preset_aus(name), sides=X.preset_sides(name))
        live.request_update(obj)
        return {"FINISHED"}


class FACEDET3D_OT_bake(_JobOperator, bpy.types.Operator):
    """Predict the detail map of every frame, smooth it over time and save it as an image sequence"""

    bl_idname = "facedet3d.bake_details"
    bl_label = "Bake Details"
    bl_options = {"REGISTER", "UNDO"}

    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})
    keyframe_shape_keys: bpy.props.BoolProperty(
        name="Key shape keys (plays without the add-on)", default=False,
        description="Also key every shape key at every frame and mute the AU drivers, so the .blend "
                    "plays on a render farm or a Blender without FaceDet3D (Clear Bake undoes it)")

    def execute(self, context):
        from . import bake

        obj = face_object(context)
        if obj is None:
            self.report({"ERROR"}, "No FaceDet3D face in the scene; use Import Photo first")
            return {"CANCELLED"}
        try:
            folder = preferences.resolve(self.directory or f"//{bpy.path.clean_name(obj.name)}_details", context)
        except preferences.NeedsSave as exc:
            return self.needs_save(context, exc)
        factory, name, keys = preferences.client_factory(context), obj.name, self.keyframe_shape_keys

        def steps(task):
            if live.busy():
                yield Background("finishing live details", live.wait_all)
            live.apply_ready()
            face = bpy.data.objects[name]
            paths = yield from bake.bake_steps(bpy.context, face, factory, folder, keyframe_shape_keys=keys, task=task)
            return f"Baked {len(paths)} detail maps into {folder}" + (" and keyed the shape keys" if keys else "")

        return self.run_task(context, "Bake Details", steps)


class FACEDET3D_OT_clear_bake(bpy.types.Operator):
    """Go back to live detail updates (baked files stay on disk)"""

    bl_idname = "facedet3d.clear_bake"
    bl_label = "Clear Bake"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from . import bake

        obj = face_object(context)
        if obj is None or not obj.facedet3d.baked_dir:
            self.report({"ERROR"}, "No baked face")
            return {"CANCELLED"}
        bake.unbake(obj)
        live.request_update(obj, force=True)
        return {"FINISHED"}


class FACEDET3D_OT_render(_JobOperator, bpy.types.Operator):
    """Render the frame range to PNG frames (and Cycles passes as multilayer EXR); Esc stops between frames"""

    bl_idname = "facedet3d.render"
    bl_label = "Render Frames"

    samples: bpy.props.IntProperty(name="Samples", min=0, default=0, options={"SKIP_SAVE"},
                                   description="0: a fast default (Cycles 64 adaptive + denoised, Eevee 32), "
                                               "not the scene's own (Cycles 4096)")

    def execute(self, context):
        from . import render

        s = context.scene.facedet3d
        obj = face_object(context) if s.neural else None
        if s.neural and obj is None:
            self.report({"ERROR"}, "The neural pass needs a FaceDet3D face; use Import Photo first")
            return {"CANCELLED"}
        try:
            out_dir = preferences.resolve(s.output_dir, context)
        except preferences.NeedsSave as exc:
            return self.needs_save(context, exc)
        if obj is not None:
            from . import neural

            try:
                folder = neural.asset_dir(obj)  # fail before anything renders
            except Exception as exc:  # noqa: BLE001
                self.report({"ERROR"}, f"Render failed: {exc}")
                return {"CANCELLED"}
            if not bpy.app.background and not neural.is_fitted(folder):
                self.report({"ERROR"}, "The neural pass is not fitted yet: use Fit Neural Pass first "
                                       "(it runs in the background)")
                return {"CANCELLED"}
        render.configure(context.scene, s.engine, self.samples or None, s.passes)
        factory, name, passes = preferences.client_factory(context), obj.name if obj else "", s.passes

        def steps(task):  # in the UI the frames render in a background Blender (offload)
            out = yield from (offload.render_steps(bpy.context, out_dir, task, factory, passes=passes)
                              if offload.wanted() else render.render_steps(bpy.context, out_dir, passes=passes))
            extra = ""
            if name:
                from . import neural

                client = yield Background("starting the backend", factory)
                yield "neural frames"
                neural.render_frames(bpy.context, bpy.data.objects[name], client, out_dir)
                extra = " (and neural/, neural_proxy/)"
            return f"Rendered {len(out['frames'])} frames into {out_dir}{extra} ({out['s_per_frame']:.1f} s/frame)"

        return self.run_task(context, "Render Frames", steps)


class FACEDET3D_OT_export(_JobOperator, bpy.types.Operator):
    """Export the face with shape keys and AU animation (FBX or glTF)"""

    bl_idname = "facedet3d.export"
    bl_label = "Export Face"

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    format: bpy.props.EnumProperty(items=(("FBX", "FBX", ""), ("GLTF", "glTF", "")), default="FBX")

    def execute(self, context):
        from . import export

        obj = face_object(context)
        if obj is None:
            self.report({"ERROR"}, "No FaceDet3D face in the scene; use Import Photo first")
            return {"CANCELLED"}
        path = self.filepath or context.scene.facedet3d.export_path
        if self.format == "GLTF" and path.lower().endswith(".fbx"):
            path = path[:-4] + ".glb"
        try:
            path = preferences.resolve(path, context)
        except preferences.NeedsSave as exc:
            return self.needs_save(context, exc)
        name, fmt = obj.name, self.format

        def steps(task):
            if live.busy():
                yield Background("finishing live details", live.wait_all)
            live.apply_ready()
            face = bpy.data.objects[name]  # in the UI the exporter runs in a background Blender (offload)
            written = yield from (offload.export_steps(bpy.context, face, path, task, fmt) if offload.wanted()
                                  else export.export_steps(bpy.context, face, path, fmt))
            return f"Exported {written}"

        return self.run_task(context, "Export Face", steps)


from .setup_backend import FACEDET3D_OT_setup_backend  # noqa: E402 - registered with the others

classes = (FACEDET3D_OT_setup_backend, FACEDET3D_OT_import_photo, FACEDET3D_OT_neural_fit, FACEDET3D_OT_cancel, FACEDET3D_OT_backend_status,
           FACEDET3D_OT_apply_preset, FACEDET3D_OT_bake, FACEDET3D_OT_clear_bake, FACEDET3D_OT_render, FACEDET3D_OT_export)

# Animate from Video lives in its own module (it subclasses _JobOperator defined above).
from .animate import classes as _animate_classes  # noqa: E402

from .folds import classes as _folds_classes  # noqa: E402 - Learn Folds from Video, same pattern

classes = classes + _animate_classes + _folds_classes
