"""Export: FBX (mesh, shape keys, the AU animation as shape-key animation, textures embedded,
baked detail maps copied beside it) and glTF (morph targets and their animation). The head
parts go along; the eyes' aim (a Damped Track on the target empty) is sampled per frame and
keyed as the eyes' rotation, so the eyes look around in the exported file too.

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
import numpy as np

from . import live
from .adapters import animation, material as material_ad, parts as parts_ad


def _aimed(obj) -> bool:
    """An object whose rotation a constraint sets (the eyes' Damped Track on the aim target)."""
    return any(c.enabled and c.influence > 0 for c in obj.constraints)


def _local_rotation(obj):
    """The rotation (quaternion) ``obj`` has now, constraints included, in its parent's
    space as its own keys would give it (parent world matrix and parent inverse undone)."""
    world = obj.matrix_world
    if obj.parent is not None:
        world = (obj.parent.matrix_world @ obj.matrix_parent_inverse).inverted() @ world
    return world.to_quaternion()


def _key_rotation(copy, frames, quats) -> None:
    """Key the copy's rotation (quaternions (T, 4) w, x, y, z at ``frames``), linear, in
    place of its constraint: exporters write keyed transforms, not constraints."""
    copy.rotation_mode = "QUATERNION"
    fcs, _ = animation._fcurves(copy, f"{copy.name} aim")
    q = np.array(quats, np.float64)
    for t in range(1, len(q)):  # q and -q are one rotation: keep neighbours on one side (no spins)
        if (q[t] * q[t - 1]).sum() < 0:
            q[t] = -q[t]
    for i in range(4):
        animation.set_keys(fcs, "rotation_quaternion", np.asarray(frames), q[:, i], index=i, group="",
                           interpolation="LINEAR")


def _export_copy(context, obj, frames, values, names, shift: int = 0, parent=None, aim=None):
    """Linked-in copy of ``obj`` whose shape keys are keyed with ``values`` (T,K) at
    ``frames`` + ``shift`` (drivers removed). Head parts (``parent`` = the face's copy) take
    the same values: their keys are driven by the face's keys of the same name. ``aim``
    (T, 4): the part's constrained rotation sampled per frame (the eyes' aim), keyed on the
    copy instead of the constraint."""
    scene = context.scene
    copy = obj.copy()
    copy.data = obj.data.copy()
    copy.animation_data_clear()
    copy.modifiers.clear()  # not exported (use_mesh_modifiers=False); the exporter's frame stepping skips them
    if parent is not None:  # head parts: children of the face's export copy
        copy.parent = parent
        copy.constraints.clear()  # the eye aim, keyed as rotation below (exporters drop constraints)
        if aim is not None:
            _key_rotation(copy, np.asarray(frames) + shift, aim)
    scene.collection.objects.link(copy)
    key = copy.data.shape_keys
    if key is not None:
        for kb in key.key_blocks[1:]:
            kb.driver_remove("value")
        if key.animation_data is not None:
            key.animation_data.action = None
        fcs, _ = animation._fcurves(key, f"{copy.name} shape keys")
        fr = np.asarray(frames) + shift
        for k, name in enumerate(names):
            if name in key.key_blocks:
                animation.set_keys(fcs, f'key_blocks["{name}"].value', fr, values[:, k], group="",
                                   interpolation="LINEAR")
    context.view_layer.update()
    if parent is not None:  # parts inherit the face's head motion
        return copy
    from .animate import copy_head_rotation  # head motion keyed by Animate from Video / --drive

    with live.quiet():
        moved = copy_head_rotation(scene, obj, copy, frames)
    if moved and shift:  # the head's keys move with the shape keys' (FBX_FRAME_SHIFT)
        fcs, _ = animation._fcurves(copy, f"{copy.name} head")
        for i in range(3):
            for kp in fcs.find("rotation_euler", index=i).keyframe_points:
                kp.co.x += shift
                kp.handle_left.x += shift
                kp.handle_right.x += shift
    return copy


def _cleanup(copy) -> None:
    me, key = copy.data, copy.data.shape_keys
    action = key.animation_data.action if key and key.animation_data else None
    bpy.data.objects.remove(copy)
    bpy.data.meshes.remove(me)
    if action is not None and action.users == 0:
        bpy.data.actions.remove(action)


# Blender's FBX importer puts FBX time 0 on frame 1 (its anim_offset defaults to 1): frames
# are written one frame early so a default re-import (and other tools, which start at time
# 0) get frame f's pose on frame f.
FBX_FRAME_SHIFT = -1


def _write(filepath: str, fbx: bool) -> None:
    """One exporter call on the selection (the face's export copy and its parts)."""
    if fbx:
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


def export_steps(context, obj, filepath: str, fmt: str = "FBX", details: bool = True):
    """Step generator (``jobs``): sample the driven shape keys frame by frame (progress, Esc),
    then one exporter call (and, with ``details``, the baked detail maps copied beside).
    Returns the path written."""
    scene = context.scene
    frames = list(range(scene.frame_start, scene.frame_end + 1))
    filepath = bpy.path.abspath(filepath)
    os.makedirs(os.path.dirname(filepath) or ".", exist_ok=True)
    fbx = fmt.upper() == "FBX"
    shift = FBX_FRAME_SHIFT if fbx and scene.frame_start + FBX_FRAME_SHIFT >= 0 else 0
    key = obj.data.shape_keys
    names = [kb.name for kb in key.key_blocks[1:]]
    values = np.zeros((len(frames), len(names)), np.float32)
    aimed = [p for p in parts_ad.part_objects(obj) if _aimed(p)]
    aims = {p.name: np.zeros((len(frames), 4)) for p in aimed}
    keep = scene.frame_current
    try:
        with live.quiet():
            for t, f in enumerate(frames):
                scene.frame_set(f)
                values[t] = [kb.value for kb in key.key_blocks[1:]]
                for p in aimed:
                    aims[p.name][t] = tuple(_local_rotation(p))
                if t % 4 == 3:
                    yield (f"sampling frame {f}", 0.5 * (t + 1) / len(frames))
    finally:
        with live.quiet():
            scene.frame_set(keep)
    yield (f"writing {os.path.basename(filepath)}", 0.5)
    name = obj.name
    sel = [o.name for o in context.view_layer.objects if o.select_get()]
    active = context.view_layer.objects.active
    copy = _export_copy(context, obj, frames, values, names, shift)
    # the head parts (children tagged facedet3d_part) go too, each keyed like the face
    parts = parts_ad.part_objects(obj)
    part_copies = [(p, p.name, p.hide_viewport,
                    _export_copy(context, p, frames, values, names, shift, parent=copy, aim=aims.get(p.name)))
                   for p in parts]
    start, end = scene.frame_start, scene.frame_end
    was_hidden = obj.hide_viewport
    quiet = live.quiet()  # the exporter steps through frames: no live requests meanwhile
    quiet.__enter__()
    try:
        obj.name = name + " (exporting)"
        obj.hide_viewport = True  # out of the depsgraph while the exporter steps through the frames
        copy.name = name
        for p, pname, _, pc in part_copies:
            p.name = pname + " (exporting)"
            p.hide_viewport = True
            pc.name = pname
        for o in context.view_layer.objects:
            o.select_set(False)
        copy.select_set(True)
        for _, _, _, pc in part_copies:
            pc.select_set(True)
        context.view_layer.objects.active = copy
        if fbx:
            scene.frame_start, scene.frame_end = start + shift, end + shift
        with material_ad.plain_base_color(copy.active_material):  # exporters follow a direct image link only
            _write(filepath, fbx)
    finally:
        quiet.__exit__(None, None, None)
        scene.frame_start, scene.frame_end = start, end
        copy.select_set(False)
        for p, pname, hidden, pc in part_copies:
            _cleanup(pc)
            p.name, p.hide_viewport = pname, hidden
        _cleanup(copy)
        obj.hide_viewport = was_hidden
        obj.name = name
        for n in sel:
            if n in context.view_layer.objects:
                context.view_layer.objects[n].select_set(True)
        context.view_layer.objects.active = active
    if details:
        copy_details(baked_details(obj), filepath)
    return filepath


def baked_details(obj) -> str:
    """The face's baked detail folder (absolute; '' when not baked)."""
    baked = obj.facedet3d.baked_dir
    return bpy.path.abspath(baked) if baked and os.path.isdir(bpy.path.abspath(baked)) else ""


def copy_details(folder: str, filepath: str) -> None:
    """Copy a baked detail folder beside an export as ``<name>_details`` (no bpy: a worker may run it)."""
    if folder:
        shutil.copytree(folder, os.path.splitext(filepath)[0] + "_details", dirs_exist_ok=True)


def export_face(context, obj, filepath: str, fmt: str = "FBX") -> str:
    """Export the face to ``filepath`` (.fbx or .glb/.gltf) here and now; returns the path."""
    from . import jobs

    return jobs.run_steps("Export", export_steps(context, obj, filepath, fmt))
