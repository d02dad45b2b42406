"""Animate from Video: a track JSON (and a real clip through `facedet3d track`) keys the
face's AUs, the free shape keys and the head rotation."""

from __future__ import annotations

import json
import math

import bpy
import numpy as np
import pytest

from conftest import SHARED, mod

AU_IDS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
D0 = SHARED / "data/faces/LivePortrait/assets/examples/driving/d0.mp4"


def _track(path, n=10, fps=25.0):
    frames = []
    for i in range(n):
        s = i / (n - 1)
        if i == 5:  # a frame without a face: no keys there
            frames.append({"time": i / fps, "found": False})
            continue
        aus = {str(a): 0.0 for a in AU_IDS}
        aus["12"], aus["26"] = 0.8 * s, 0.3 * (1 - s)
        frames.append({"time": i / fps, "found": True, "aus": aus,
                       "blendshapes": {"eyeLookInLeft": 0.6 * s, "jawLeft": 0.4 * s},
                       "head": {"yaw": 20.0 * s, "pitch": 0.0, "roll": 0.0}})
    path.write_text(json.dumps({"fps": fps, "source": "synthetic", "frames": frames}))
    return path


def test_animate_from_a_track_json(face, tmp_path):
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 25, 1.0
    bpy.context.view_layer.objects.active = face
    op = bpy.types.FACEDET3D_OT_animate_from_video
    assert "UNDO" in op.bl_options  # one operator call = one undo step
    res = bpy.ops.facedet3d.animate_from_video(filepath=str(_track(tmp_path / "t.json")), start_frame=1)
    assert res == {"FINISHED"}
    assert scene.frame_end >= 10
    live = mod("live")
    cam = face.facedet3d.camera or scene.camera
    q = np.array(cam.matrix_world.to_3x3())
    with live.quiet():
        for frame, s in ((1, 0.0), (5, 4 / 9), (10, 1.0)):
            scene.frame_set(frame)
            assert face.facedet3d.au12 == pytest.approx(0.8 * s, abs=1e-3)
            assert face.facedet3d.au26 == pytest.approx(0.3 * (1 - s), abs=1e-3)
            kb = face.data.shape_keys.key_blocks
            assert kb["eyeLookIn_L"].value == pytest.approx(0.6 * s, abs=1e-3)
            assert kb["jawLeft"].value == pytest.approx(0.4 * s, abs=1e-3)
            # the object turned by 20 s degrees about its camera's up axis (the performer's yaw)
            w = np.array(face.matrix_world.to_3x3())
            in_cam = q.T @ w @ q
            assert math.degrees(math.atan2(in_cam[0, 2], in_cam[0, 0])) == pytest.approx(20.0 * s, abs=0.1)
        scene.frame_set(6)  # the unfound frame: the curves hold their neighbours' values
        assert 0.8 * 4 / 9 < face.facedet3d.au12 < 0.8 * 6 / 9
    # the FBX carries the head motion and the shape keys' animation
    scene.frame_start, scene.frame_end = 1, 10
    fbx = mod("export").export_face(bpy.context, face, str(tmp_path / "face.fbx"), "FBX")
    before = set(bpy.data.objects)
    bpy.ops.import_scene.fbx(filepath=fbx)  # Blender's default import: frame f lands on frame f
    # the face is the largest mesh (the head parts come with it)
    imp = max((o for o in set(bpy.data.objects) - before if o.type == "MESH"), key=lambda o: len(o.data.vertices))
    assert len(imp.data.vertices) == len(face.data.vertices)

    def turn(o, a, b):
        scene.frame_set(a)
        ra = np.array(o.matrix_world.to_3x3().normalized())
        scene.frame_set(b)
        rb = np.array(o.matrix_world.to_3x3().normalized())
        return math.degrees(math.acos(np.clip((np.trace(ra.T @ rb) - 1) / 2, -1, 1)))

    with live.quiet():
        assert turn(imp, 1, 10) == pytest.approx(20.0, abs=0.5)
        scene.frame_set(10)
        assert imp.data.shape_keys.key_blocks["jawLeft"].value == pytest.approx(0.4, abs=0.01)


def test_animate_rejects_a_bad_file(face, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    bpy.context.view_layer.objects.active = face
    with pytest.raises(RuntimeError, match="not a track JSON"):
        bpy.ops.facedet3d.animate_from_video(filepath=str(bad))
    assert face.animation_data is None or face.animation_data.action is None


@pytest.mark.skipif(not D0.is_file(), reason="../shared/data/faces is absent")
def test_animate_from_a_real_clip(face):
    """The operator's own path: a track job of the backend client (the session's) on 30
    frames of d0; a cancelled job gives no track."""
    animate = mod("animate")
    client = mod("preferences").client_factory()
    said = []
    track = animate.track_work(str(D0), client, frames=30)(said.append, lambda: False)
    assert said and said[-1].startswith("tracking d0.mp4")
    assert len(track["frames"]) == 30 and all(f["found"] for f in track["frames"])
    info = animate.apply_track(bpy.context, face, track, start=1.0)
    assert info["keyed_frames"] == 30 and info["shape_keys"] == len(animate.FREE_KEYS)
    scene = bpy.context.scene
    with mod("live").quiet():
        scene.frame_set(1)
        rest = face.facedet3d.au12
        scene.frame_set(int(info["last"]))  # frame 30 of d0: smiling
        assert face.facedet3d.au12 > rest + 0.5
    assert animate.track_work(str(D0), client)(lambda m: None, lambda: True) is None
