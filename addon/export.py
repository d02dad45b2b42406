"""Export: FBX (mesh, shape keys, the AU animation as shape-key animation, textures embedded,
baked detail maps copied beside it) and glTF (morph targets and their animation).

Exporters read actions, not drivers, so a temporary copy of the face gets its driven
shape-key values baked into a shape-key action (one key per frame) and is exported alone.
Settings from notes/blender.md: FBX keeps shape keys only with use_mesh_modifiers=False
(the Displace modifier would drop them) and re-imports its animation in 5.0 only with
bake_anim_use_all_actions=False and bake_anim_use_nla_strips=False.
"""

from __future__ import annotations

import os
import shutil

import bpy

from .adapters import animation, parts as parts_ad


def _export_copy(context, obj, frames, parent=None):
    """Linked-in copy of ``obj`` with baked shape-key keyframes and the original's name."""
    scene = context.scene
    copy = obj.copy()
    copy.data = obj.data.copy()
    copy.animation_data_clear()
    if parent is not None:  # head parts: children of the face's export copy
        copy.parent = parent
        copy.constraints.clear()  # the eye aim: glTF drops a node's morph animation with it
    scene.collection.objects.link(copy)
    context.view_layer.update()
    if copy.data.shape_keys is not None:
        animation.bake_shape_keys(scene, copy, frames)
    if parent is None:  # the face: head motion keyed by Animate from Video / --drive (parts inherit it)
        from .animate import copy_head_rotation

        copy_head_rotation(scene, obj, copy, frames)
    return copy


def _cleanup(copy) -> None:
    me, key = copy.data, copy.data.shape_keys
    action = key.animation_data.action if key and key.animation_data else None
    bpy.data.objects.remove(copy)
    bpy.data.meshes.remove(me)
    if action is not None and action.users == 0:
        bpy.data.actions.remove(action)


def export_face(context, obj, filepath: str, fmt: str = "FBX") -> str:
    """Export the face to ``filepath`` (.fbx or .glb/.gltf); returns the path written."""
    scene = context.scene
    frames = list(range(scene.frame_start, scene.frame_end + 1))
    filepath = bpy.path.abspath(filepath)
    os.makedirs(os.path.dirname(filepath) or ".", exist_ok=True)
    name = obj.name
    sel = [o.name for o in context.view_layer.objects if o.select_get()]
    active = context.view_layer.objects.active
    copy = _export_copy(context, obj, frames)
    # the head parts (children tagged facedet3d_part) go too, each with its baked shape keys
    part_copies = [(p, p.name, _export_copy(context, p, frames, parent=copy)) for p in parts_ad.part_objects(obj)]
    try:
        obj.name = name + " (exporting)"
        copy.name = name
        for p, pname, pc in part_copies:
            p.name = pname + " (exporting)"
            pc.name = pname
        for o in context.view_layer.objects:
            o.select_set(False)
        copy.select_set(True)
        for _, _, pc in part_copies:
            pc.select_set(True)
        context.view_layer.objects.active = copy
        if fmt.upper() == "FBX":
            bpy.ops.export_scene.fbx(
                filepath=filepath, use_selection=True, object_types={"MESH"}, use_mesh_modifiers=False,
                add_leaf_bones=False, bake_anim=True, bake_anim_use_all_bones=False,
                bake_anim_use_nla_strips=False, bake_anim_use_all_actions=False, bake_anim_force_startend_keying=True,
                bake_anim_simplify_factor=0.0, path_mode="COPY", embed_textures=True, axis_forward="-Z", axis_up="Y")
        else:
            bpy.ops.export_scene.gltf(
                filepath=filepath, export_format="GLB" if filepath.lower().endswith(".glb") else "GLTF_SEPARATE",
                use_selection=True, export_apply=False, export_morph=True, export_morph_normal=False,
                export_animations=True, export_frame_range=True, export_force_sampling=True,
                # one glTF animation for the face and its parts: per-object animations would
                # re-import with only the first one active (the rest in NLA tracks)
                export_animation_mode="SCENE", export_anim_scene_split_object=False)
    finally:
        copy.select_set(False)
        for p, pname, pc in part_copies:
            _cleanup(pc)
            p.name = pname
        _cleanup(copy)
        obj.name = name
        for n in sel:
            if n in context.view_layer.objects:
                context.view_layer.objects[n].select_set(True)
        context.view_layer.objects.active = active
    baked = obj.facedet3d.baked_dir
    if baked and os.path.isdir(bpy.path.abspath(baked)):
        dest = os.path.splitext(filepath)[0] + "_details"
        shutil.copytree(bpy.path.abspath(baked), dest, dirs_exist_ok=True)
    return filepath
