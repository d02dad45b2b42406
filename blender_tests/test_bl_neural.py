"""The neural render pass driven from Blender: Render with "Neural pass" on feeds Cycles'
UV/Normal passes of the detailed and the proxy geometry to the fitted pass and writes
neural/ and neural_proxy/ frames; the scene's render settings come back unchanged."""

from __future__ import annotations

import shutil

import bpy
import cv2
import numpy as np
import pytest

from conftest import mod

SIZE = 64


@pytest.fixture(scope="module")
def tiny_pass_dir(face_data, tmp_path_factory):
    """A copy of the session's FaceAsset with a tiny neural pass fitted on its photo."""
    from conftest import PHOTO
    from facedet3d.neural import NeuralConfig
    from facedet3d.neural.fit import fit_subject

    d = tmp_path_factory.mktemp("neural_asset") / "jg"
    shutil.copytree(face_data.asset_dir, d)
    cfg = NeuralConfig(size=SIZE, uv_size=64, ntm_channels=4, ntex_base=4, lr_base=8, detail_base=4, dsl_hidden=4,
                       steps=40, crop=48, fake_maps=2, lr=3e-3, seed=0)
    fit_subject(d, cfg, photo=str(PHOTO), device="cpu")
    return d


def test_render_with_neural_pass_writes_neural_frames(face, tiny_pass_dir, tmp_path):
    scene = bpy.context.scene
    face.facedet3d.asset_dir = str(tiny_pass_dir)
    for part in face.children:  # head parts: the backend's rasteriser below draws the face alone
        part.hide_render = True
    scene.frame_start, scene.frame_end = 1, 2
    ss = scene.facedet3d
    ss.engine, ss.neural, ss.output_dir = "CYCLES", True, str(tmp_path)
    scene.cycles.samples = 1
    before = (scene.camera.name, scene.render.resolution_x, scene.render.resolution_y, scene.render.film_transparent)
    assert bpy.ops.facedet3d.render() == {"FINISHED"}
    assert (scene.camera.name, scene.render.resolution_x, scene.render.resolution_y,
            scene.render.film_transparent) == before  # settings restored
    assert scene.render.engine == "CYCLES" and not scene.view_layers[0].use_pass_uv
    with_d = cv2.imread(str(tmp_path / "neural" / "0001.png"))[..., ::-1]
    without = cv2.imread(str(tmp_path / "neural_proxy" / "0001.png"))[..., ::-1]
    for sub in ("frames", "neural", "neural_proxy"):
        assert sorted(p.name for p in (tmp_path / sub).iterdir()) == ["0001.png", "0002.png"]
    assert with_d.shape == without.shape == (SIZE, SIZE, 3)
    face_px = np.abs(with_d.astype(float) - 0.16 * 255).max(-1) > 3
    assert face_px.mean() > 0.3  # the crop camera frames the face
    assert np.abs(with_d.astype(float) - without).max() > 2  # the details change the render

    # The same frame through the backend's own rasteriser (the pass's training geometry):
    # Blender's camera, UVs and normals line up with it.
    from facedet3d.fit.faceasset import read
    from facedet3d.neural import neural_render, view_projection
    from facedet3d.rig.pose import posed_vertices

    a = read(tiny_pass_dir)
    aus = {au: v for au, v in zip(mod("properties").AU_IDS, mod("properties").au_vector(face))}
    ref = neural_render(tiny_pass_dir, posed_vertices(a, aus), None, view_projection(a.meta.pose.projection, a.meta.box,
                                                                                       SIZE), SIZE, device="cpu")
    both = face_px & (np.abs(ref.astype(float) - 0.16 * 255).max(-1) > 3)
    assert both.sum() > 0.8 * face_px.sum()  # same silhouette
    err = np.abs(ref.astype(float) - without)[both].mean()
    assert err < 6, f"Blender-pass neural frame differs from the raster one by {err:.1f} levels"


def test_neural_pass_without_asset_folder_reports(face, tmp_path):
    scene = bpy.context.scene
    face.facedet3d.asset_dir = str(tmp_path / "gone")
    ss = scene.facedet3d
    ss.engine, ss.neural, ss.output_dir = "CYCLES", True, str(tmp_path / "out")
    scene.frame_start = scene.frame_end = 1
    scene.cycles.samples = 1
    with pytest.raises(RuntimeError, match="no FaceAsset folder"):
        bpy.ops.facedet3d.render()
    assert not (tmp_path / "out").exists()  # nothing rendered


def test_neural_info_says_whether_the_perceptual_term_was_used(session_client, tiny_pass_dir):
    """NeuralInfo carries the perceptual (VGG16) term's status; the panel shows it."""
    from facedet3d.api import types as T

    info = session_client.neural_fit(T.NeuralFitCall(asset_dir=str(tiny_pass_dir)))
    assert isinstance(info.perceptual_used, bool) and info.perceptual
    assert info.perceptual_used == info.perceptual.startswith("perceptual loss on")


def test_neural_frame_carries_the_cavity_term(face, tiny_pass_dir, session_client, tmp_path):
    """The material's cavity exponent reaches the neural pass as a Value AOV: a detail map
    0.2 mm deeper than the rest map (slopes unchanged) darkens the neural frame by about
    exp(-0.2) in linear light against the same frame with the sidebar's Cavity at 0; the
    view layer's AOVs come back as they were."""
    from facedet3d.imaging.color import srgb_to_linear

    disp, live, neural = mod("adapters.displacement"), mod("live"), mod("neural")
    scene = bpy.context.scene
    face.facedet3d.asset_dir = str(tiny_pass_dir)
    for part in face.children:
        part.hide_render = True
    assert mod("adapters.material").has_cavity_pass(face.active_material)
    rest = disp.get_pixels(face.active_material.node_tree.nodes[mod("adapters.material").REST].image)
    frames = {}
    with live.quiet():
        disp.set_pixels(disp.image(face), rest - 2e-4)
        for amount in (0.0, 1.0):
            face.facedet3d.detail_cavity = amount
            out = tmp_path / f"c{amount:g}"
            neural.render_frames(bpy.context, face, session_client, str(out), frames=[1])
            frames[amount] = cv2.imread(str(out / "neural" / "0001.png"))[..., ::-1].astype(np.float32) / 255
            proxy = cv2.imread(str(out / "neural_proxy" / "0001.png"))[..., ::-1].astype(np.float32) / 255
            frames[f"proxy{amount:g}"] = proxy
    assert len(scene.view_layers[0].aovs) == 0
    lin0, lin1 = srgb_to_linear(frames[0.0]), srgb_to_linear(frames[1.0])
    face_px = (np.abs(frames[0.0] - 0.16).max(-1) > 0.02)[..., None] & (lin0 > 0.03) & (lin0 < 0.9)
    assert face_px.sum() > 0.2 * SIZE * SIZE
    ratio = float(lin1[face_px].sum() / lin0[face_px].sum())
    print("neural cavity ratio", round(ratio, 3))
    assert abs(ratio - np.exp(-0.2)) < 0.03, ratio
    assert np.abs(frames["proxy1"] - frames["proxy0"]).max() < 2 / 255  # the proxy frame: no cavity
