"""Registration, Import Photo, AU drivers, camera, invalid input."""

from __future__ import annotations

import sys

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view

from conftest import ADDON_NAME, PHOTO, mod


def test_register_unregister_leaves_nothing(addon):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    handlers_before = {k: len(getattr(bpy.app.handlers, k)) for k in ("frame_change_post", "load_post", "save_pre")}
    addon.register()
    assert hasattr(bpy.types.Object, "facedet3d") and hasattr(bpy.types.Scene, "facedet3d")
    assert hasattr(bpy.types, "FACEDET3D_OT_import_photo") and hasattr(bpy.types, "FACEDET3D_PT_face")
    addon.unregister()
    assert not hasattr(bpy.types.Object, "facedet3d") and not hasattr(bpy.types.Scene, "facedet3d")
    for name in ("FACEDET3D_OT_import_photo", "FACEDET3D_OT_bake", "FACEDET3D_PT_face", "FaceDet3DFace",
                 "FaceDet3DScene", "FACEDET3D_AP_preferences"):
        assert not hasattr(bpy.types, name), name
    assert {k: len(getattr(bpy.app.handlers, k)) for k in handlers_before} == handlers_before
    addon.register()  # registers again cleanly
    addon.unregister()


def test_import_photo_builds_the_face(scene, session_client):
    n_obj = len(bpy.data.objects)
    assert bpy.ops.facedet3d.import_photo(filepath=str(PHOTO)) == {"FINISHED"}
    obj = bpy.context.active_object
    s = obj.facedet3d
    assert s.is_face and s.subject_id and s.asset_dir
    me = obj.data
    assert len(me.vertices) == 38365 and len(me.polygons) > 70000
    assert me.uv_layers.active is not None
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    ext = np.ptp(co.reshape(-1, 3), axis=0)
    assert 0.12 < ext[0] < 0.22 and 0.15 < ext[2] < 0.25 and ext[1] < ext[2]  # metres, Z up, Y depth
    keys = me.shape_keys.key_blocks
    assert len(keys) == 54 and keys[0].name == "Basis"
    assert {"mouthSmile_L", "eyeBlink_R", "jawOpen", "browInnerUp_L"} <= set(keys.keys())
    drivers = me.shape_keys.animation_data.drivers
    assert len(drivers) >= 30
    paths = {v.targets[0].data_path for d in drivers for v in d.driver.variables}
    assert "facedet3d.au12" in paths and all(p.startswith(("facedet3d.au", "facedet3d.side_")) for p in paths)
    assert {"facedet3d.side_left", "facedet3d.side_right"} <= paths  # lateral keys follow the side multipliers
    md = obj.modifiers["FaceDet3D Detail"]
    assert md.type == "DISPLACE" and md.texture_coords == "UV" and md.direction == "NORMAL" and md.mid_level == 0
    det = md.texture.image
    assert det.is_float and det.colorspace_settings.name == "Non-Color"
    nodes = obj.active_material.node_tree.nodes
    assert nodes["FaceDet3D Texture"].image.colorspace_settings.name == "sRGB"
    assert nodes["FaceDet3D Detail"].image == det
    assert any(link.to_node.type == "BUMP" for link in obj.active_material.node_tree.links)
    # the cavity term's rest is the map the face was built with (DetP at the photo's AUs), so
    # the photo's expression renders without darkening; the live path returns that map there
    disp, material = mod("adapters.displacement"), mod("adapters.material")
    np.testing.assert_array_equal(disp.get_pixels(nodes[material.REST].image), disp.get_pixels(det))
    assert nodes[material.CAVITY_MIX].blend_type == "MULTIPLY"
    assert nodes[material.CAVITY].inputs[1].default_value == s.detail_strength / 1e-3  # exp(depth change / 1 mm)
    cam = bpy.context.scene.camera
    assert cam is not None and cam.data.type == "ORTHO"
    parts = [o for o in obj.children if "facedet3d_part" in o.keys()]
    assert len(parts) == 6  # head, eyes, teeth, mouth (blender_tests/test_bl_head.py)
    # face, photo camera, face-framing camera (the scene's), key light, the parts, the eyes' aim target
    assert len(bpy.data.objects) == n_obj + 4 + len(parts) + 1
    assert cam.name.endswith("(face)") and bpy.context.scene.render.resolution_x == 512
    # the shipped DetP weights are installed: the face is driven by the detail network
    assert s.detail_source == "detp"


def test_camera_reproduces_the_photo_view(face, face_data):
    import json
    from pathlib import Path

    meta = json.loads((Path(face_data.asset_dir) / "meta.json").read_text())
    lm2d = np.asarray(meta["landmarks_2d"])
    mesh = np.load(Path(face_data.asset_dir) / "mesh.npz")
    scene, cam = bpy.context.scene, bpy.context.scene.camera
    w, h = face_data.camera.image_size
    mod("build").set_aus(face, np.zeros(17))
    for i in (27, 30, 36, 39, 42, 45):  # nose and eye corners: expression-independent
        co = face.matrix_world @ face.data.vertices[int(mesh["landmarks"][i])].co
        p = world_to_camera_view(scene, cam, co)
        px = np.array([p.x * w - 0.5, (1 - p.y) * h - 0.5])
        assert np.linalg.norm(px - lm2d[i]) < 2.5, (i, px, lm2d[i])


def test_au_properties_move_the_shape_keys(face):
    keys = face.data.shape_keys.key_blocks
    mod("build").set_aus(face, np.zeros(17))
    bpy.context.view_layer.update()
    dg = bpy.context.evaluated_depsgraph_get()
    before = np.array([v.co[:] for v in face.evaluated_get(dg).data.vertices])
    face.facedet3d.au12 = 1.0
    face.facedet3d.au26 = 0.5
    bpy.context.view_layer.update()
    assert keys["mouthSmile_L"].value == pytest.approx(1.0) and keys["mouthSmile_R"].value == pytest.approx(1.0)
    assert keys["jawOpen"].value == pytest.approx(0.35, abs=1e-4)
    assert keys["eyeBlink_L"].value == 0.0
    dg = bpy.context.evaluated_depsgraph_get()
    after = np.array([v.co[:] for v in face.evaluated_get(dg).data.vertices])
    moved = np.linalg.norm(after - before, axis=1)
    assert moved.max() > 0.003  # millimetres of motion, in metres


def test_invalid_photo_reports_and_builds_nothing(scene, tmp_path):
    bad = tmp_path / "not_a_photo.jpg"
    bad.write_text("hello")
    before = {c: len(getattr(bpy.data, c)) for c in ("objects", "meshes", "images", "materials", "cameras")}
    with pytest.raises(RuntimeError, match="(?i)image|photo|read"):
        bpy.ops.facedet3d.import_photo(filepath=str(bad))
    with pytest.raises(RuntimeError, match="(?i)no such photo"):
        bpy.ops.facedet3d.import_photo(filepath=str(tmp_path / "missing.jpg"))
    assert {c: len(getattr(bpy.data, c)) for c in before} == before


def test_failed_build_leaves_no_datablocks(scene, face_data):
    import dataclasses

    broken = dataclasses.replace(face_data, faces=face_data.faces.copy())
    broken.faces[0, 0] = 10**7  # invalid index: the mesh builder must refuse it
    before = {c: len(getattr(bpy.data, c)) for c in ("objects", "meshes", "images", "materials", "cameras", "textures")}
    with pytest.raises(Exception):
        mod("build").build_face(bpy.context, broken)
    assert {c: len(getattr(bpy.data, c)) for c in before} == before


def test_preset_operator_sets_aus(face):
    assert bpy.ops.facedet3d.apply_preset(preset="happy") == {"FINISHED"}
    assert face.facedet3d.au12 == pytest.approx(1.0) and face.facedet3d.au06 == pytest.approx(0.8)
    with pytest.raises(RuntimeError, match="Unknown preset"):
        bpy.ops.facedet3d.apply_preset(preset="bored")
    assert ADDON_NAME in sys.modules
