"""Live detail updates (coalesced, off the main thread), failures, Bake Details + reopen."""

from __future__ import annotations

import os
import tracemalloc

import bpy
import numpy as np

from conftest import FakeDetailClient, mod, use_client


def _image(obj):
    return mod("adapters.displacement").get_pixels(mod("adapters.displacement").image(obj))


def test_detail_update_changes_the_image(face, session_client):
    fake = FakeDetailClient(session_client)
    use_client(fake)
    live = mod("live")
    before = _image(face)
    face.facedet3d.au12 = 0.9
    live.flush()
    after = _image(face)
    expect = FakeDetailClient.expected(mod("properties").au_vector(face), 256)[0]
    assert before.shape != after.shape or not np.allclose(before, after)
    np.testing.assert_allclose(after, expect, atol=1e-9)
    assert face.facedet3d.detail_source == "fake"


def test_real_backend_map_and_visible_source(face, session_client):
    live = mod("live")
    face.facedet3d.au04 = 0.7
    live.flush()
    st = session_client.status()
    assert st.detail_source == "detp" and face.facedet3d.detail_source == "detp"  # shown in the panel
    got = _image(face)
    req = live.make_request(face)
    np.testing.assert_allclose(got, session_client.detail(req).maps[0], atol=1e-7)


def test_flood_of_changes_is_coalesced_and_bounded(face, session_client):
    fake = FakeDetailClient(session_client, delay_s=0.003)
    use_client(fake)
    live = mod("live")
    rng = np.random.default_rng(1)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for i in range(1000):
        setattr(face.facedet3d, ("au12", "au06", "au01")[i % 3], float(rng.uniform()))
    live.flush()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    up = live.updater(face)
    assert up.computed == fake.calls and fake.calls < 1000  # coalesced: latest wins
    assert peak - base < 40 * 2**20  # a handful of 256² maps at most, never 1000 of them
    expect = FakeDetailClient.expected(mod("properties").au_vector(face), 256)[0]
    np.testing.assert_allclose(_image(face), expect, atol=1e-9)


def test_failure_keeps_last_map_and_reports_once(face, session_client, capsys):
    live = mod("live")
    good = _image(face)
    use_client(FakeDetailClient(session_client, fail=True))
    face.facedet3d.au12 = 0.4
    live.flush()
    face.facedet3d.au12 = 0.5
    live.flush()
    np.testing.assert_array_equal(_image(face), good)
    assert "exploded" in face.facedet3d.detail_error
    assert capsys.readouterr().out.count("detail update failed") == 1


def test_savgol_keeps_quadratics_and_smooths_noise(addon):
    bake = mod("bake")
    t = np.arange(20, dtype=np.float32)
    quad = (0.5 * t**2 - 3 * t + 2)[:, None, None] * np.ones((1, 2, 2), np.float32)
    np.testing.assert_allclose(bake.savgol_smooth(quad, 7, 2), quad, rtol=1e-4, atol=1e-3)
    noise = np.random.default_rng(0).normal(size=(50, 1, 1)).astype(np.float32)
    assert bake.savgol_smooth(noise, 7, 2).std() < 0.8 * noise.std()
    assert bake.savgol_smooth(noise[:2], 7, 2).shape == (2, 1, 1)


def test_bake_writes_sequence_and_reopened_blend_keeps_it(face, session_client, tmp_path):
    use_client(FakeDetailClient(session_client))
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 5
    with mod("live").quiet():
        mod("adapters.animation").keyframe_aus(face, [1, 5], np.stack([np.zeros(17), np.full(17, 0.8)]))
    folder = tmp_path / "details"
    assert bpy.ops.facedet3d.bake_details(directory=str(folder)) == {"FINISHED"}
    files = sorted(os.listdir(folder))
    assert files == [f"detail_{i:04d}.exr" for i in range(1, 6)]
    img = mod("adapters.displacement").image(face)
    assert img.source == "SEQUENCE"
    # frame 5's file holds the map of its AUs, Savitzky-Golay smoothed over the 5 frames
    bake = mod("bake")
    want = bake.savgol_smooth(FakeDetailClient.expected(bake.frame_aus(scene, face, range(1, 6)), 256))[4]
    chk = bpy.data.images.load(str(folder / "detail_0005.exr"))
    px = np.empty(chk.size[0] * chk.size[1] * 4, np.float32)
    chk.pixels.foreach_get(px)
    got = px.reshape(256, 256, 4)[::-1, :, 0]
    np.testing.assert_allclose(got, want, atol=1e-8)
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    obj = next(o for o in bpy.data.objects if o.facedet3d.is_face)
    seq = obj.modifiers["FaceDet3D Detail"].texture.image
    assert seq.source == "SEQUENCE" and os.path.isfile(bpy.path.abspath(seq.filepath))
    assert obj.facedet3d.baked_dir
    tex = obj.active_material.node_tree.nodes["FaceDet3D Texture"].image
    assert tex.packed_file is not None and tex.has_data or tex.packed_file is not None
    live_img = bpy.data.images.get(f"FaceDet3D detail {obj.name}")
    assert live_img is not None and live_img.packed_file is not None  # generated maps survive reopening
    # the displaced surface differs between frames 1 and 5 with no backend involved
    use_client(None)
    dg = bpy.context.evaluated_depsgraph_get()
    vals = []
    for f in (1, 5):
        bpy.context.scene.frame_set(f)
        dg = bpy.context.evaluated_depsgraph_get()
        me = obj.evaluated_get(dg).data
        co = np.empty(len(me.vertices) * 3, np.float32)
        me.vertices.foreach_get("co", co)
        vals.append(co)
    assert np.abs(vals[0] - vals[1]).max() > 1e-5


def test_live_details_keep_applying_after_save_and_reopen(face, session_client, tmp_path):
    """Saving packs the live image (its source becomes FILE): updates must still land, be
    saved again, and land in the reopened file too."""
    fake = FakeDetailClient(session_client)
    use_client(fake)
    live, props = mod("live"), mod("properties")
    face.facedet3d.au12 = 0.3
    live.flush()
    blend = tmp_path / "live.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    img = mod("adapters.displacement").image(face)
    assert img.packed_file is not None
    face.facedet3d.au12 = 0.9  # after the save
    live.flush()
    want = FakeDetailClient.expected(props.au_vector(face), 256)[0]
    np.testing.assert_allclose(_image(face), want, atol=1e-9)
    bpy.ops.wm.save_mainfile()  # the changed map is packed again
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    use_client(fake)
    obj = next(o for o in bpy.data.objects if o.facedet3d.is_face)
    np.testing.assert_allclose(_image(obj), want, atol=1e-7)  # float precision survives the pack
    obj.facedet3d.au04 = 0.6  # in the reopened file
    live.flush()
    want = FakeDetailClient.expected(props.au_vector(obj), 256)[0]
    np.testing.assert_allclose(_image(obj), want, atol=1e-9)


def test_contempt_preset_moves_one_side_only(face):
    """The contempt preset is one-sided in the drivers too (api.expressions.CONTEMPT_SIDE)."""
    X = mod("_api.expressions")
    with mod("live").quiet():
        assert bpy.ops.facedet3d.apply_preset(preset="contempt") == {"FINISHED"}
    bpy.context.view_layer.update()
    kb = face.data.shape_keys.key_blocks
    moving, still = ("_L", "_R") if X.CONTEMPT_SIDE == "_L" else ("_R", "_L")
    assert kb["mouthSmile" + moving].value > 0.3 and kb["mouthDimple" + moving].value > 0.3
    assert kb["mouthSmile" + still].value == 0.0 and kb["mouthDimple" + still].value == 0.0
    with mod("live").quiet():
        assert bpy.ops.facedet3d.apply_preset(preset="happy") == {"FINISHED"}
    bpy.context.view_layer.update()
    assert kb["mouthSmile_L"].value > 0.5 and abs(kb["mouthSmile_L"].value - kb["mouthSmile_R"].value) < 1e-6
    req = mod("live").make_request(face)
    assert req.sides is not None and np.allclose(req.sides, [[1.0, 1.0]])


def test_details_off_hides_and_restores_the_details(face):
    """``render --no-details`` and the neural proxy: Displace and bump off, then restored."""
    disp = mod("adapters.displacement")
    md = disp.modifier(face)
    bump = face.active_material.node_tree.nodes["FaceDet3D Bump"]
    keep = bump.inputs["Distance"].default_value
    assert md.show_render and keep > 0
    with disp.details_off(face):
        assert not md.show_render and bump.inputs["Distance"].default_value == 0.0
    assert md.show_render and bump.inputs["Distance"].default_value == keep
    try:
        with disp.details_off(face):
            raise KeyError("x")
    except KeyError:
        pass
    assert md.show_render and bump.inputs["Distance"].default_value == keep


def _render_luma(scene, path) -> np.ndarray:
    """(H, W) linear luminance of a small Cycles render (the PNG's sRGB decoded)."""
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(str(path))
    w, h = img.size
    px = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(px)  # a loaded PNG: sRGB values
    bpy.data.images.remove(img)
    from facedet3d.imaging.color import REC709_LUMA, srgb_to_linear

    return srgb_to_linear(px.reshape(h, w, 4)[..., :3]) @ np.asarray(REC709_LUMA, np.float32)


def test_cavity_darkens_only_the_change_from_the_photos_detail(face, tmp_path):
    """The base colour darkens by exp(change / METRES_PER_LOG_UNIT) where the detail goes
    below the photo's own D(I), and not at all at the photo's own detail."""
    disp, material = mod("adapters.displacement"), mod("adapters.material")
    mat = face.active_material
    nodes = mat.node_tree.nodes
    rest = disp.get_pixels(nodes[material.REST].image)
    assert np.abs(rest).max() > 1e-5  # the photo's own detail, not an empty map
    scene = bpy.context.scene
    mod("render").configure(scene, "cycles", 8)
    scene.render.resolution_x = scene.render.resolution_y = 64
    for p in mod("adapters.parts").part_objects(face):
        p.hide_render = True
    live, img = mod("live"), disp.image(face)
    with live.quiet():
        disp.set_pixels(img, rest)
        at_rest = _render_luma(scene, tmp_path / "rest.png")
        face.hide_render = True
        skin = np.abs(_render_luma(scene, tmp_path / "bg.png") - at_rest) > 0.02  # where the face is
        face.hide_render = False
        assert skin.mean() > 0.05  # the face: ~10 % of the frame at the photo's framing
        face.facedet3d.detail_cavity = 0.0  # the sidebar's Cavity slider
        assert np.allclose(_render_luma(scene, tmp_path / "off.png")[skin], at_rest[skin], atol=1e-3)  # k = 0: same
        face.facedet3d.detail_cavity = 1.0
        # 0.2 mm deeper everywhere: the bump's slopes and the displacement's shape do not change,
        # only the cavity term does: exp(-0.2) = 0.82 of the colour
        disp.set_pixels(img, rest - 2e-4)
        deeper = _render_luma(scene, tmp_path / "deeper.png")
        ratio = float(deeper[skin].sum() / at_rest[skin].sum())
        print("cavity ratio", round(ratio, 3))
        assert 0.76 < ratio < 0.88, ratio
        with disp.details_off(face):  # the proxy render: no cavity either
            off = _render_luma(scene, tmp_path / "proxy.png")
        assert float(off[skin].sum() / at_rest[skin].sum()) > 0.95
