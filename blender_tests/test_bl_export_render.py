"""FBX / glTF round trips (shape keys and animation), one small frame per engine (in a
subprocess), Cycles passes as multilayer EXR."""

from __future__ import annotations

import os
import subprocess
import sys

import bpy
import numpy as np
import pytest

from conftest import ADDON_DIR, mod

FRAMES = (1, 3, 5)


def _animate(face):
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 5
    happy = np.zeros(17, np.float32)
    happy[[4, 8]] = (0.8, 1.0)  # AU6, AU12
    with mod("live").quiet():
        mod("adapters.animation").keyframe_aus(face, [1, 5], np.stack([np.zeros(17), happy]))
    return mod("adapters.animation").sample_shape_keys(scene, face, FRAMES)


def _reimported_values(names, path, fmt):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if fmt == "FBX":
        bpy.ops.import_scene.fbx(filepath=path)  # Blender's default import: frame f lands on frame f
    else:
        bpy.ops.import_scene.gltf(filepath=path)
    obj = max((o for o in bpy.data.objects if o.type == "MESH"), key=lambda o: len(o.data.vertices))  # the face
    key = obj.data.shape_keys
    assert key is not None and key.animation_data is not None and key.animation_data.action is not None
    scene = bpy.context.scene
    got = []
    for f in FRAMES:
        scene.frame_set(f)
        got.append([key.key_blocks[n].value if n in key.key_blocks else np.nan for n in names])
    return obj, np.asarray(got)


@pytest.mark.parametrize("fmt,ext", [("FBX", ".fbx"), ("GLTF", ".glb")])
def test_export_round_trip_keeps_shape_keys_and_animation(face, tmp_path, fmt, ext, addon, session_client):
    names, want = _animate(face)
    path = str(tmp_path / f"face{ext}")
    assert bpy.ops.facedet3d.export(filepath=path, format=fmt) == {"FINISHED"}
    assert os.path.getsize(path) > 100_000
    with open(path, "rb") as fh:  # the photo texture went along (the cavity's Mix node is bypassed)
        assert b"FaceDet3D texture" in fh.read()
    assert "(exporting)" not in face.name and not any("(exporting)" in o.name for o in bpy.data.objects)
    assert len([o for o in bpy.data.objects if o.type == "MESH"]) == 1 + len(mod("adapters.parts").part_objects(face))
    addon.unregister()  # read_factory_settings below; the fixture registers again at teardown safety
    try:
        obj, got = _reimported_values(names, path, fmt)
        assert len(obj.data.shape_keys.key_blocks) == 54
        assert want[-1].max() > 0.9  # the smile is there at the end
        np.testing.assert_allclose(got, want, atol=2e-3)
    finally:
        addon.register()


RENDER_SCRIPT = r"""
import sys, importlib.util
spec = importlib.util.spec_from_file_location("facedet3d_addon", sys.argv[-4] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[-4]])
mod = importlib.util.module_from_spec(spec); sys.modules["facedet3d_addon"] = mod; spec.loader.exec_module(mod)
import bpy
mod.register()
bpy.ops.wm.open_mainfile(filepath=sys.argv[-3])
from facedet3d_addon import render
scene = bpy.context.scene
engine, out = sys.argv[-2], sys.argv[-1]
render.configure(scene, engine, samples=2, passes=(engine == "cycles"))
scene.render.resolution_y = 64; scene.render.resolution_x = 48
res = render.render_frames(bpy.context, out, frames=[1], passes=(engine == "cycles"))
print("RESULT", res["frames"], res["passes"])
"""


@pytest.fixture(scope="module")
def saved_blend(tmp_path_factory):
    return tmp_path_factory.mktemp("render") / "face.blend"


@pytest.mark.parametrize("engine", ["workbench", "cycles", "eevee"])
def test_one_small_frame_per_engine(face, saved_blend, engine, tmp_path):
    if not saved_blend.exists():
        bpy.ops.wm.save_as_mainfile(filepath=str(saved_blend), copy=True)
    out = tmp_path / engine
    env = dict(os.environ, XDG_CACHE_HOME=os.environ.get("XDG_CACHE_HOME", "/tmp/facedet3d_xdg_cache"))
    res = subprocess.run([sys.executable, "-c", RENDER_SCRIPT, str(ADDON_DIR), str(saved_blend), engine, str(out)],
                         capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    png = out / "frames" / "0001.png"
    assert png.is_file()
    img = bpy.data.images.load(str(png))
    px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
    img.pixels.foreach_get(px)
    assert tuple(img.size) == (48, 64) and px.reshape(-1, 4)[:, :3].std() > 0.02  # a face, not a blank frame
    if engine == "cycles":
        exr = (out / "passes" / "0001.exr").read_bytes()
        assert exr[:4] == b"\x76\x2f\x31\x01"  # OpenEXR magic
        for name in (b"UV", b"Normal", b"Depth", b"Diffuse", b"Position"):
            assert name in exr[:20000], name


def test_the_front_light_shines_from_the_camera_and_the_key_from_above(scene):
    from mathutils import Euler, Vector

    build = mod("build")
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    cam.matrix_world = Euler((1.2, 0.1, 0.4)).to_matrix().to_4x4()  # any orientation
    view = cam.matrix_world.to_3x3() @ Vector((0, 0, -1))  # where the camera looks
    up = cam.matrix_world.to_3x3() @ Vector((0, 1, 0))
    shines = {s: build.key_light(f"light {s}", cam, s).matrix_world.to_3x3() @ Vector((0, 0, -1)) for s in build.LIGHTS}
    assert shines["front"].angle(view) < 1e-4  # a sun shines along its -Z: here, where the camera looks
    assert 50 < np.degrees(shines["key"].angle(view)) < 65  # grazing, ...
    assert shines["key"].dot(up) < -0.5  # ... and from above (it shines downward in the view)
    with pytest.raises(ValueError, match="light 'rim'"):
        build.key_light("light rim", cam, "rim")
