"""Keyframes: AU animation on the face's properties, and baking the driven shape-key values
into a shape-key action for export (FBX/glTF read actions, not drivers).

Blender 5.0 removed ``Action.fcurves``: F-curves live in the action's channelbag for a slot
(``bpy_extras.anim_utils``); 4.2/4.5 still have ``action.fcurves``.
"""

import bpy
import numpy as np

from ..properties import AU_IDS, au_prop


def _fcurves(id_data, action_name: str):
    """(fcurves collection, action) for ``id_data``, creating the action/slot as needed."""
    ad = id_data.animation_data or id_data.animation_data_create()
    if ad.action is None:
        ad.action = bpy.data.actions.new(action_name)
    action = ad.action
    if hasattr(action, "fcurves") and not hasattr(ad, "action_slot"):  # Blender < 4.4
        return action.fcurves, action
    from bpy_extras import anim_utils

    if ad.action_slot is None:
        slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
        ad.action_slot = slot
    if hasattr(anim_utils, "action_ensure_channelbag_for_slot"):  # 5.0
        bag = anim_utils.action_ensure_channelbag_for_slot(action, ad.action_slot)
    else:  # 4.4/4.5: the same through the layered-action API
        layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
        strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
        bag = strip.channelbag(ad.action_slot, ensure=True)
    return bag.fcurves, action


def _new_fcurve(fcurves, data_path: str, index: int, group: str):
    """``fcurves.new`` with a group where the API takes one: 5.0 channelbags ``group_name``,
    4.2/4.3 ``Action.fcurves`` ``action_group``, 4.4/4.5 channelbags none (the group is cosmetic)."""
    if group:
        for kw in ("group_name", "action_group"):
            try:
                return fcurves.new(data_path, index=index, **{kw: group})
            except TypeError:
                continue
    return fcurves.new(data_path, index=index)


def set_keys(fcurves, data_path: str, frames: np.ndarray, values: np.ndarray, index: int = 0,
             group: str = "FaceDet3D", interpolation: str = "BEZIER"):
    fc = fcurves.find(data_path, index=index)
    if fc is None:
        fc = _new_fcurve(fcurves, data_path, index, group)
    else:
        fc.keyframe_points.clear()
    fc.keyframe_points.add(len(frames))
    co = np.stack([np.asarray(frames, np.float32), np.asarray(values, np.float32)], 1).reshape(-1)
    fc.keyframe_points.foreach_set("co", co)
    fc.keyframe_points.foreach_set("interpolation", np.full(len(frames), bpy.types.Keyframe.bl_rna.properties[
        "interpolation"].enum_items[interpolation].value, np.int32))
    fc.update()
    return fc


def keyframe_aus(obj, frames, au_rows) -> None:
    """Key the AU properties: frames (T,), au_rows (T,17) in [0,1]."""
    fcs, _ = _fcurves(obj, f"{obj.name} AUs")
    a = np.clip(np.asarray(au_rows, np.float32), 0.0, 1.0)
    for i, au in enumerate(AU_IDS):
        set_keys(fcs, f"facedet3d.{au_prop(au)}", np.asarray(frames), a[:, i])


def keyframe_sides(obj, frames, side_rows) -> None:
    """Key the (left, right) side multipliers: frames (T,), side_rows (T,2) in [0,1]."""
    fcs, _ = _fcurves(obj, f"{obj.name} AUs")
    s = np.clip(np.asarray(side_rows, np.float32).reshape(-1, 2), 0.0, 1.0)
    for i, side in enumerate(("left", "right")):
        set_keys(fcs, f"facedet3d.side_{side}", np.asarray(frames), s[:, i])


def sample_shape_keys(scene, obj, frames) -> tuple[list, np.ndarray]:
    """(names, (T,K) values) of the evaluated shape keys at each frame (drivers applied)."""
    key = obj.data.shape_keys
    names = [kb.name for kb in key.key_blocks[1:]]
    vals = np.zeros((len(frames), len(names)), np.float32)
    keep = scene.frame_current
    for t, f in enumerate(frames):
        scene.frame_set(int(f))
        vals[t] = [kb.value for kb in key.key_blocks[1:]]
    scene.frame_set(keep)
    return names, vals


def bake_shape_keys(scene, obj, frames) -> None:
    """Replace the shape-key drivers of ``obj`` by keyframes of their values (export copies)."""
    names, vals = sample_shape_keys(scene, obj, frames)
    key = obj.data.shape_keys
    for kb in key.key_blocks[1:]:
        kb.driver_remove("value")
    fcs, _ = _fcurves(key, f"{obj.name} shape keys")
    for k, name in enumerate(names):
        set_keys(fcs, f'key_blocks["{name}"].value', np.asarray(frames), vals[:, k], group="", interpolation="LINEAR")
