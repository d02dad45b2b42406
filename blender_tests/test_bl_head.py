"""Head parts in Blender: tagged children of the face, driven by the face's shape keys
(jawOpen drops the lower teeth), eyes with sclera/iris/cornea materials and an aim
target, and FBX/glTF exports that re-import every part with its shape keys and animation."""

from __future__ import annotations

import os

import bpy
import numpy as np
import pytest

from conftest import mod

TAGS = {"face", "head", "eye_L", "eye_R", "teeth_upper", "teeth_lower", "tongue", "mouth"}


def _parts(face):
    return {o["facedet3d_part"]: o for o in mod("adapters.parts").part_objects(face)}


def _evaluated(obj):
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    me = ev.to_mesh()
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    return co.reshape(-1, 3)


def test_parts_are_tagged_children_driven_by_the_face(face, face_data):
    parts = _parts(face)
    assert face["facedet3d_part"] == "face"
    assert set(parts) == {"head", "eye_L", "eye_R", "teeth_upper", "teeth_lower", "mouth"}
    assert parts["teeth_lower"]["facedet3d_parts"] == "tongue"
    for name, o in parts.items():
        assert o.parent == face and o["facedet3d_part"] in TAGS
        assert len(o.data.shape_keys.key_blocks) == 54
        assert next(u for u in o.data.uv_layers if u.active_render).name == "FaceUV"
        assert o.data.shape_keys.animation_data is not None
    # the detail displacement fades out at the seams (no crack against the head)
    md = next(m for m in face.modifiers if m.type == "DISPLACE")
    vg = face.vertex_groups[md.vertex_group]
    head = face_data.head  # the parts come through FaceData (api types), not the asset's files
    assert set(head.parts) == set(parts) and len(face.data.polygons) == len(face_data.faces) - len(head.face_hidden)
    for vid in head.head_seam[::50]:
        try:
            assert vg.weight(int(vid)) == 0.0
        except RuntimeError:  # not in the group: weight 0 as well
            pass
    eye = parts["eye_L"]
    mats = [m.name.split()[-1] for m in eye.data.materials]
    assert mats == ["sclera", "iris", "cornea"]
    track = eye.constraints[0]
    assert track.type == "DAMPED_TRACK" and track.target is not None
    # the eyes aim: raising the target turns the gaze (-Y of the eye object) upwards (+Z)
    bpy.context.view_layer.update()
    gaze0 = -eye.matrix_world.to_3x3().col[1]
    track.target.location.z += 0.3
    bpy.context.view_layer.update()
    gaze1 = -eye.matrix_world.to_3x3().col[1]
    assert gaze1.z > gaze0.z + 0.3
    track.target.location.z -= 0.3
    # AU26 (jaw drop) through the face's AU drivers -> the face's jawOpen key -> the teeth
    rest = _evaluated(parts["teeth_lower"])
    up_rest = _evaluated(parts["teeth_upper"])
    with mod("live").quiet():
        face.facedet3d.au26 = 1.0
    bpy.context.view_layer.update()
    drop = rest[:, 2] - _evaluated(parts["teeth_lower"])[:, 2]  # Blender +Z is up
    assert np.percentile(drop, 90) > 0.005  # metres
    # the upper teeth stay on the skull (backend rig/parts.py)
    assert np.abs(_evaluated(parts["teeth_upper"])[:, 2] - up_rest[:, 2]).max() < 1e-5


@pytest.mark.parametrize("fmt,ext", [("FBX", ".fbx"), ("GLTF", ".glb")])
def test_export_carries_all_parts(face, tmp_path, fmt, ext, addon):
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 5
    ids = list(mod("properties").AU_IDS)
    aus = np.zeros(17, np.float32)
    aus[[ids.index(6), ids.index(12), ids.index(26)]] = (0.8, 1.0, 1.0)
    with mod("live").quiet():
        mod("adapters.animation").keyframe_aus(face, [1, 5], np.stack([np.zeros(17), aus]))
    n_parts = len(_parts(face))
    path = str(tmp_path / f"head{ext}")
    assert bpy.ops.facedet3d.export(filepath=path, format=fmt) == {"FINISHED"}
    print(f"{fmt} size with head parts: {os.path.getsize(path) / 1e6:.1f} MB")
    addon.unregister()
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        if fmt == "FBX":
            bpy.ops.import_scene.fbx(filepath=path, anim_offset=0.0)
        else:
            bpy.ops.import_scene.gltf(filepath=path)
        meshes = [o for o in bpy.data.objects if o.type == "MESH"]
        assert len(meshes) == 1 + n_parts
        for o in meshes:
            key = o.data.shape_keys
            assert key is not None and len(key.key_blocks) == 54, o.name
            assert key.animation_data is not None and key.animation_data.action is not None, o.name
        scene = bpy.context.scene
        scene.frame_set(5)
        face_obj = max(meshes, key=lambda o: len(o.data.vertices))
        want = np.array([kb.value for kb in face_obj.data.shape_keys.key_blocks[1:]])
        assert want.max() > 0.9
        for o in meshes:  # every part re-imports the face's animated values
            got = np.array([kb.value for kb in o.data.shape_keys.key_blocks[1:]])
            np.testing.assert_allclose(got, want, atol=2e-3, err_msg=o.name)
    finally:
        addon.register()


def _iris_gaze(obj):
    """World direction from the eye's centre to its iris (geometry, so it does not depend on
    how an importer sets up the object's axes)."""
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    me = ev.to_mesh()
    mw = np.array(ev.matrix_world)
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3) @ mw[:3, :3].T + mw[:3, 3]
    iris_slots = [i for i, s in enumerate(obj.material_slots) if s.material and "iris" in s.material.name]
    iris = [v for p in me.polygons if p.material_index in iris_slots for v in p.vertices]
    ev.to_mesh_clear()
    g = co[iris].mean(0) - co.mean(0)
    return g / np.linalg.norm(g)


@pytest.mark.parametrize("fmt,ext", [("FBX", ".fbx"), ("GLTF", ".glb")])
def test_export_bakes_the_eye_aim(face, tmp_path, fmt, ext, addon):
    """The eyes follow the aim target in the exported file: its motion is keyed as the eyes'
    rotation (exporters drop constraints), and after re-import the gaze turns between the
    first and last frame by the same angle, in the same direction relative to the face."""
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 5
    parts = _parts(face)
    target = parts["eye_L"].constraints[0].target
    target.keyframe_insert("location", frame=1)
    target.location.x += 0.25  # metres: to the side and up, 60 cm ahead
    target.location.z += 0.2
    target.keyframe_insert("location", frame=5)
    want = {}
    for f in (1, 5):
        scene.frame_set(f)
        fm = np.array(face.matrix_world)[:3, :3]
        want[f] = {s: np.linalg.inv(fm) @ _iris_gaze(parts[s]) for s in ("eye_L", "eye_R")}
    turn = np.degrees(np.arccos(np.clip(want[1]["eye_L"] @ want[5]["eye_L"], -1, 1)))
    assert turn > 15
    path = str(tmp_path / f"eyes{ext}")
    assert bpy.ops.facedet3d.export(filepath=path, format=fmt) == {"FINISHED"}
    assert parts["eye_L"].constraints[0].target == target  # the scene keeps its constraint
    addon.unregister()
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        if fmt == "FBX":
            bpy.ops.import_scene.fbx(filepath=path)  # default offset: frame f's pose on frame f
        else:
            bpy.ops.import_scene.gltf(filepath=path)
        meshes = [o for o in bpy.data.objects if o.type == "MESH"]
        face_in = max(meshes, key=lambda o: len(o.data.vertices))
        eyes = {s: next(o for o in meshes if o.name.endswith(s)) for s in ("eye_L", "eye_R")}
        for f in (1, 5):
            bpy.context.scene.frame_set(f)
            fm = np.array(face_in.matrix_world)[:3, :3]
            fm = fm / np.linalg.norm(fm, axis=0)  # importers may scale the root (cm, m)
            for s, o in eyes.items():
                got = np.linalg.inv(fm) @ _iris_gaze(o)
                # the face's own axes may be converted (FBX Y-up): compare in its frame
                err = np.degrees(np.arccos(np.clip(got @ want[f][s], -1, 1)))
                assert err < 2.0, (fmt, f, s, err)
    finally:
        addon.register()
