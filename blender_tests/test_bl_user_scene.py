"""What a new user meets: Import Photo in Blender's default scene (cube, camera, light), files
of unsaved and saved scenes, and a baked .blend that plays without the add-on."""

from __future__ import annotations

import os
import subprocess
import sys

import bpy
import numpy as np
import pytest

from conftest import ADDON_NAME, PHOTO, FakeDetailClient, mod, use_client


@pytest.fixture()
def default_scene(addon, session_client, scene):
    """Blender's default startup scene (2 m cube at the origin, camera, light)."""
    addon.unregister()
    bpy.ops.wm.read_factory_settings(use_empty=False)
    addon.register()
    use_client(session_client)
    assert "Cube" in bpy.data.objects
    return bpy.context.scene


def test_import_in_the_default_scene_renders_the_face(default_scene, tmp_path):
    scene = default_scene
    assert bpy.ops.facedet3d.import_photo(filepath=str(PHOTO)) == {"FINISHED"}
    cube = bpy.data.objects["Cube"]
    assert cube.hide_render and not cube.visible_get()  # it surrounded the camera
    face = mod("operators").face_object(bpy.context)
    parts = mod("adapters.parts").part_objects(face)
    assert len(parts) == 6 and not any(p.hide_render or not p.visible_get() for p in parts)  # the head stays
    assert (scene.frame_start, scene.frame_end) == (1, mod("operators").IMPORT_FRAMES)
    mod("render").configure(scene, "cycles", 4)
    scene.render.resolution_x = scene.render.resolution_y = 48
    scene.render.filepath = str(tmp_path / "f.png")
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(str(tmp_path / "f.png"))
    px = np.empty(48 * 48 * 4, np.float32)
    img.pixels.foreach_get(px)
    rgb = px.reshape(48, 48, 4)[..., :3]
    assert rgb[16:32, 16:32].mean() > 0.25 and rgb.std() > 0.05  # a lit face, not the inside of a cube


def test_unsaved_scene_asks_for_a_save_and_never_uses_the_working_directory(face, monkeypatch, tmp_path):
    monkeypatch.delenv("FACEDET3D_OUTPUT_DIR")
    monkeypatch.chdir(tmp_path)
    use_client(FakeDetailClient(mod("client").current().inner if hasattr(mod("client").current(), "inner")
                                else mod("client").current()))
    for op in (bpy.ops.facedet3d.bake_details, bpy.ops.facedet3d.render, bpy.ops.facedet3d.export,
               lambda: bpy.ops.facedet3d.import_photo(filepath=str(PHOTO))):
        with pytest.raises(RuntimeError, match="Save the .blend first"):
            op()
    assert os.listdir(tmp_path) == []


def test_saved_scene_keeps_its_files_beside_the_blend(face, session_client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = FakeDetailClient(session_client)
    out_dirs = []
    fake.fit = lambda call: out_dirs.append(call.out_dir) or session_client.fit(call)
    use_client(fake)
    proj = tmp_path / "project"
    proj.mkdir()
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 3
    bpy.ops.wm.save_as_mainfile(filepath=str(proj / "shot.blend"))
    assert bpy.ops.facedet3d.bake_details() == {"FINISHED"}
    assert bpy.ops.facedet3d.export() == {"FINISHED"}
    assert bpy.ops.facedet3d.import_photo(filepath=str(PHOTO)) == {"FINISHED"}
    names = sorted(os.listdir(proj))
    assert f"{bpy.path.clean_name(face.name)}_details" in names and "face.fbx" in names
    assert out_dirs and out_dirs[0].startswith(str(proj / "facedet3d_assets") + os.sep)  # the face asset too
    assert sorted(os.listdir(tmp_path)) == ["project"]  # nothing in the working directory


PLAY_SCRIPT = r"""
import bpy, sys, json
bpy.ops.wm.open_mainfile(filepath=sys.argv[-1])  # no add-on registered in this process
obj = next(o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys)
out = {}
for f in (1, 5):
    bpy.context.scene.frame_set(f)
    out[f] = obj.data.shape_keys.key_blocks["mouthSmile_L"].value
print("VALUES", json.dumps(out))
"""


def test_bake_can_key_shape_keys_so_the_blend_plays_without_the_addon(face, session_client, tmp_path):
    use_client(FakeDetailClient(session_client))
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 5
    smile = np.zeros(17, np.float32)
    smile[8] = 1.0  # AU12
    with mod("live").quiet():
        mod("adapters.animation").keyframe_aus(face, [1, 5], np.stack([np.zeros(17), smile]))
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "farm.blend"))
    assert bpy.ops.facedet3d.bake_details(keyframe_shape_keys=True) == {"FINISHED"}
    bpy.ops.wm.save_mainfile()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", PLAY_SCRIPT, str(tmp_path / "farm.blend")], capture_output=True,
                         text=True, timeout=120, env=env)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("VALUES"))
    import json

    vals = json.loads(line.split(" ", 1)[1])
    assert vals["1"] == pytest.approx(0.0, abs=1e-4) and vals["5"] == pytest.approx(1.0, abs=1e-3)
    # Clear Bake gives the drivers back
    assert bpy.ops.facedet3d.clear_bake() == {"FINISHED"}
    key = face.data.shape_keys
    assert not any(fc.mute for fc in key.animation_data.drivers) and key.animation_data.action is None
    assert ADDON_NAME in sys.modules
