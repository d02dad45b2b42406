"""Thin operators: read properties, build a request, call one function, report errors with
``self.report`` and CANCELLED. Import Photo and Fit Neural Pass run in a worker (modal, Esc
cancels; synchronous under --background)."""

from __future__ import annotations

import os
import tempfile
import uuid

import bpy

from . import jobs, live, preferences
from ._api import expressions as X
from .client import T


def face_object(context):
    obj = context.active_object
    if obj is not None and getattr(obj, "facedet3d", None) and obj.facedet3d.is_face:
        return obj
    return next((o for o in context.scene.objects if o.facedet3d.is_face), None)


def _asset_dir(photo: str) -> str:
    stem = os.path.splitext(os.path.basename(photo))[0] or "face"
    base = bpy.path.abspath("//facedet3d_assets") if bpy.data.filepath else os.path.join(tempfile.gettempdir(), "facedet3d_assets")
    return os.path.join(base, f"{stem}-{uuid.uuid4().hex[:6]}")


class _JobOperator:
    """Mixin for operators whose work runs in a worker (``jobs.Job``): ``run_job`` starts
    it (inline under --background), ``modal`` polls it on a timer, shows progress in the
    status bar, Esc cancels, and ``_apply(context, result)`` runs on the main thread."""

    _job = None
    _timer = None

    def run_job(self, context, name: str, work):
        if bpy.app.background:
            result, err = jobs.run_sync(name, work)
            if err:
                self.report({"ERROR"}, err)
                return {"CANCELLED"}
            return self._apply(context, result)
        self._job = jobs.Job(name, work).start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1)
        return {"RUNNING_MODAL"}

    def _end(self, context):
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        jobs.status_text(context, None)
        self._job.finish()

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC":
            job.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if not job.done:
            jobs.status_text(context, job.message + ("  (cancelling)" if job.cancel_event.is_set() else "  (Esc to cancel)"))
            return {"RUNNING_MODAL"}
        self._end(context)
        if job.cancel_event.is_set() or job.result is None and job.error is None:
            self.report({"WARNING"}, f"{job.name} cancelled")
            return {"CANCELLED"}
        if job.error:
            self.report({"ERROR"}, job.error)
            return {"CANCELLED"}
        return self._apply(context, job.result)


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
        if not self.filepath:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def _work(self, context):
        photo = bpy.path.abspath(self.filepath)
        call = T.FitCall(photo=photo, out_dir=_asset_dir(photo), texture_size=int(context.scene.facedet3d.texture_size))
        resolution = 256
        client = preferences.backend_client(context)

        def work(progress, cancelled):
            progress("fitting the photo")
            face = client.fit(call)
            if cancelled():
                return None
            if face.detail_source != "detp":  # said in the report and the panel: no wrinkles without DetP
                return face, face.detail
            progress("predicting details")
            req = T.DetailRequest(face.subject_id, face.asset_dir, face.photo_aus[None], 0.0, resolution)
            return face, client.detail(req).maps[0]

        return work

    def _apply(self, context, result):
        from . import build

        face, detail = result
        try:
            obj, _ = build.build_face(context, face, detail)
        except Exception as exc:  # noqa: BLE001 - nothing is left half-built
            self.report({"ERROR"}, f"Could not build the face: {exc}")
            return {"CANCELLED"}
        context.scene.facedet3d.photo = self.filepath
        obj.facedet3d.photo = bpy.path.abspath(self.filepath)  # the neural pass fits on it
        note = "" if face.detail_source == "detp" else " (detail network unavailable: the photo's own detail " \
            "only, no expression wrinkles; see Backend status)"
        self.report({"INFO"}, f"Imported {obj.name}{note}")
        return {"FINISHED"}

    def execute(self, context):
        if not self.filepath:
            self.report({"ERROR"}, "Choose a photo of a face first")
            return {"CANCELLED"}
        if not os.path.isfile(bpy.path.abspath(self.filepath)):
            self.report({"ERROR"}, f"No such photo: {self.filepath}")
            return {"CANCELLED"}
        try:
            work = self._work(context)
        except Exception as exc:  # noqa: BLE001 - backend unavailable
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return self.run_job(context, "Import Photo", work)


class FACEDET3D_OT_neural_fit(_JobOperator, bpy.types.Operator):
    """Fit the neural render pass to the face's own photo (minutes on a CPU; once per subject)"""

    bl_idname = "facedet3d.neural_fit"
    bl_label = "Fit Neural Pass"

    def execute(self, context):
        from . import neural

        obj = face_object(context)
        if obj is None:
            self.report({"ERROR"}, "No FaceDet3D face in the scene; use Import Photo first")
            return {"CANCELLED"}
        try:
            client = preferences.backend_client(context)
            folder, photo = neural.asset_dir(obj), neural.photo_path(obj)
        except Exception as exc:  # noqa: BLE001 - backend unavailable, no asset folder
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._name = obj.name
        return self.run_job(context, "Fit Neural Pass",
                            lambda progress, cancelled: neural.fit(client, folder, photo, progress=progress))

    def _apply(self, context, info):
        line = (f"PSNR {info.psnr_db:.1f} dB, SSIM {info.ssim:.3f}; "
                + ("perceptual term used" if info.perceptual_used else (info.perceptual or "perceptual term off")))
        obj = bpy.data.objects.get(self._name)
        if obj is not None:
            obj.facedet3d.neural_status = line  # the panel shows it under the neural pass
        self.report({"INFO"}, f"Neural pass of {self._name} ready: {line}")
        return {"FINISHED"}


class FACEDET3D_OT_cancel(bpy.types.Operator):
    """Cancel the running FaceDet3D job"""

    bl_idname = "facedet3d.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        n = jobs.cancel_all()
        self.report({"INFO"}, f"Cancelling {n} job(s)" if n else "Nothing to cancel")
        return {"FINISHED"}


class FACEDET3D_OT_backend_status(bpy.types.Operator):
    """Check the backend and show whether the detail network is available"""

    bl_idname = "facedet3d.backend_status"
    bl_label = "Check Backend"

    def execute(self, context):
        try:
            st = preferences.backend_client(context).status()
        except Exception as exc:  # noqa: BLE001
            context.scene.facedet3d.status = f"unavailable: {exc}"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        context.scene.facedet3d.status = f"{st.mode}, {st.detail_source}: {st.message}"
        context.scene.facedet3d.detail_error = st.detail_error
        return {"FINISHED"}


class FACEDET3D_OT_apply_preset(bpy.types.Operator):
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


class FACEDET3D_OT_bake(bpy.types.Operator):
    """Predict the detail map of every frame, smooth it over time and save it as an image sequence"""

    bl_idname = "facedet3d.bake_details"
    bl_label = "Bake Details"
    bl_options = {"REGISTER", "UNDO"}

    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})

    def execute(self, context):
        from . import bake

        obj = face_object(context)
        if obj is None:
            self.report({"ERROR"}, "No FaceDet3D face in the scene; use Import Photo first")
            return {"CANCELLED"}
        folder = self.directory or (bpy.path.abspath(f"//{bpy.path.clean_name(obj.name)}_details")
                                    if bpy.data.filepath else os.path.join(tempfile.gettempdir(), f"facedet3d_{uuid.uuid4().hex[:6]}"))
        try:
            live.flush()
            paths = bake.bake_details(context, obj, preferences.backend_client(context), bpy.path.abspath(folder),
                                      progress=lambda m: print(f"FaceDet3D bake: {m}", flush=True))
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, f"Bake failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Baked {len(paths)} detail maps into {folder}")
        return {"FINISHED"}


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


class FACEDET3D_OT_render(bpy.types.Operator):
    """Render the frame range to PNG frames (and Cycles passes as multilayer EXR)"""

    bl_idname = "facedet3d.render"
    bl_label = "Render Frames"

    def execute(self, context):
        from . import render

        s = context.scene.facedet3d
        obj = face_object(context) if s.neural else None
        if s.neural and obj is None:
            self.report({"ERROR"}, "The neural pass needs a FaceDet3D face; use Import Photo first")
            return {"CANCELLED"}
        try:
            if obj is not None:
                from . import neural

                folder = neural.asset_dir(obj)  # fail before anything renders
                if not bpy.app.background and not neural.is_fitted(folder):
                    self.report({"ERROR"}, "The neural pass is not fitted yet: use Fit Neural Pass first "
                                           "(it runs in the background)")
                    return {"CANCELLED"}
            out_dir = bpy.path.abspath(s.output_dir)
            render.configure(context.scene, s.engine, context.scene.eevee.taa_render_samples
                             if s.engine != "CYCLES" else context.scene.cycles.samples, s.passes)
            out = render.render_frames(context, out_dir, passes=s.passes)
            if obj is not None:
                neural.render_frames(context, obj, preferences.backend_client(context), out_dir)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, f"Render failed: {exc}")
            return {"CANCELLED"}
        extra = " (and neural/, neural_proxy/)" if obj is not None else ""
        self.report({"INFO"}, f"Rendered {len(out['frames'])} frames into {s.output_dir}{extra}")
        return {"FINISHED"}


class FACEDET3D_OT_export(bpy.types.Operator):
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
            live.flush()
            written = export.export_face(context, obj, path, self.format)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, f"Export failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {written}")
        return {"FINISHED"}


classes = (FACEDET3D_OT_import_photo, FACEDET3D_OT_neural_fit, FACEDET3D_OT_cancel, FACEDET3D_OT_backend_status,
           FACEDET3D_OT_apply_preset, FACEDET3D_OT_bake, FACEDET3D_OT_clear_bake, FACEDET3D_OT_render, FACEDET3D_OT_export)

# Animate from Video lives in its own module (it subclasses _JobOperator defined above).
from .animate import classes as _animate_classes  # noqa: E402

classes = classes + _animate_classes
