"""Sidebar panel: View3D > Sidebar > Face."""

import bpy

from . import folds, jobs
from .operators import face_object
from .properties import AU_IDS, AU_NAMES, au_prop


class FACEDET3D_PT_face(bpy.types.Panel):
    bl_label = "FaceDet3D"
    bl_idname = "FACEDET3D_PT_face"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Face"

    def draw(self, context):
        layout = self.layout
        ss = context.scene.facedet3d
        col = layout.column(align=True)
        col.prop(ss, "photo", text="")
        row = col.row(align=True)
        row.operator("facedet3d.import_photo", icon="IMAGE_DATA").filepath = ss.photo
        row.prop(ss, "texture_size", text="")
        col.prop(ss, "light", text="")
        for job in jobs.active():
            row = layout.row()
            row.label(text=job.message, icon="TIME")
            row.operator("facedet3d.cancel", text="", icon="X")
        if not bpy.data.filepath:
            from . import preferences

            try:
                layout.label(text=f"Unsaved: files go to {preferences.output_base(context)}", icon="INFO")
            except preferences.NeedsSave:
                layout.label(text="Save the .blend first: face files go next to it", icon="ERROR")
        box = layout.box()
        row = box.row()
        row.label(text="Backend: " + (ss.status or "not checked"), icon="PLUGIN")
        row.operator("facedet3d.backend_status", text="", icon="FILE_REFRESH")
        if ss.detail_error:
            box.label(text=ss.detail_error, icon="ERROR")
        obj = face_object(context)
        if obj is None:
            return
        s = obj.facedet3d
        if s.detail_source and s.detail_source != "detp":
            box.label(text="Detail network unavailable: photo detail only, no expression wrinkles", icon="ERROR")
        if s.detail_error:
            box.label(text=s.detail_error, icon="ERROR")
        layout.label(text=obj.name, icon="MESH_DATA")
        row = layout.row(align=True)
        row.prop(ss, "preset", text="")
        row.operator("facedet3d.apply_preset", text="Apply").preset = ss.preset
        au_col = layout.column(align=True)
        for au in AU_IDS:
            au_col.prop(s, au_prop(au), text=f"AU{au} {AU_NAMES[au]}", slider=True)
        col = layout.column()
        col.prop(s, "age")
        col.prop(s, "detail_strength")
        col.prop(s, "detail_cavity")
        col.prop(s, "detail_resolution")
        col.prop(s, "live_update")
        layout.operator("facedet3d.animate_from_video", icon="SEQUENCE")
        row = layout.row(align=True)
        row.operator("facedet3d.learn_folds", icon="MOD_DISPLACE")
        learnt = folds.summary(obj)
        if learnt:
            row.operator("facedet3d.remove_folds", text="", icon="X")
            layout.label(text=learnt, icon="INFO")
        row = layout.row(align=True)
        row.operator("facedet3d.bake_details", icon="RENDER_ANIMATION")
        row.operator("facedet3d.bake_details", text="", icon="KEYINGSET").keyframe_shape_keys = True  # for farms
        if s.baked_dir:
            row.operator("facedet3d.clear_bake", text="", icon="X")
        col = layout.column(align=True)
        col.prop(ss, "engine")
        col.prop(ss, "passes")
        row = col.row(align=True)
        row.prop(ss, "neural")
        row.operator("facedet3d.neural_fit", text="", icon="SHADERFX")
        if s.neural_status:
            layout.label(text=s.neural_status, icon="INFO")
        col.prop(ss, "output_dir")
        col.operator("facedet3d.render", icon="RENDER_STILL")
        col = layout.column(align=True)
        col.prop(ss, "export_path")
        row = col.row(align=True)
        row.operator("facedet3d.export", text="Export FBX").format = "FBX"
        row.operator("facedet3d.export", text="Export glTF").format = "GLTF"


classes = (FACEDET3D_PT_face,)
