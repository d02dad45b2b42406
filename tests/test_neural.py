"""The neural render pass (paper Sec. 3.3): shapes, loss switches, a short fit, re-rendering,
detail sensitivity. Tiny networks and few steps at 64² so the whole file runs in seconds."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from facedet3d.neural import LossWeights, NeuralConfig, view_projection
from facedet3d.neural import geometry as geo
from facedet3d.neural import losses as L
from facedet3d.neural.nets import NTex, ShadingCNN, Tex2Im

S = 64


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small convolutions on a shared CPU: one torch thread is much faster."""
    from facedet3d.neural.fit import cpu_threads

    before = torch.get_num_threads()
    torch.set_num_threads(cpu_threads())
    yield
    torch.set_num_threads(before)


def tiny(**kw) -> NeuralConfig:
    base = dict(size=64, uv_size=64, ntm_channels=4, ntex_base=4, lr_base=8, detail_base=4, dsl_hidden=4,
                steps=30, crop=48, fake_maps=2, lr=3e-3, seed=0)
    base.update(kw)
    return NeuralConfig(**base)


@pytest.fixture(scope="module")
def subject_dir(fitted_dir, photos, tmp_path_factory):
    """A private copy of the fitted JianzhuGuo asset (tests write neural.* into it)."""
    d = tmp_path_factory.mktemp("neural") / "jg"
    shutil.copytree(fitted_dir, d)
    shutil.copy(photos["JianzhuGuo"], d.parent / "JianzhuGuo.jpg")
    return d


@pytest.fixture(scope="module")
def fitted(subject_dir):
    from facedet3d.neural.fit import fit_subject

    net, subject, report = fit_subject(subject_dir, tiny(), device="cpu")
    return net, subject, report


def _inputs(B, H, W, F_=4):
    return {"grid": torch.rand(B, H, W, 2) * 2 - 1, "mask": torch.ones(B, 1, H, W), "albedo": torch.rand(B, 3, H, W),
            "shading_p": torch.ones(B, 1, H, W), "shading_d": torch.rand(B, 1, H, W) + 0.5}


def test_network_shapes():
    ntm = NTex(channels=5, base=4)(torch.rand(1, 3, S, S))
    assert ntm.shape == (1, 5, S, S)
    out, lr, det = Tex2Im(ntm_channels=5, lr_base=8, detail_base=4)(ntm, _inputs(2, 48, 32))
    assert out.shape == lr.shape == det.shape == (2, 3, 48, 32)
    assert torch.allclose(out, lr + det)
    assert ShadingCNN(4)(out).shape == (2, 1, 48, 32)
    with pytest.raises(AssertionError):
        NTex(4, 4)(torch.rand(1, 1, S, S))


def test_detail_branch_sees_only_detailed_geometry():
    """g_θ ignores G_D's shading; with it changed only Î^D changes (Eqs. 22-24)."""
    torch.manual_seed(0)
    t2i = Tex2Im(4, 8, 2, 4)
    ntm = torch.rand(1, 4, S, S)
    a = _inputs(1, 32, 32)
    b = dict(a, shading_d=a["shading_d"] * 1.3)
    oa, la, da = t2i(ntm, a)
    ob, lb, db = t2i(ntm, b)
    assert torch.equal(la, lb)
    assert (da - db).abs().max() > 1e-3


def test_loss_switches():
    pred, target = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    mask = torch.ones(1, 1, 32, 32)
    assert set(L.photometric(pred, target, mask, LossWeights())) == {"mse", "l1", "lap"}  # no VGG here
    only = L.photometric(pred, target, mask, LossWeights(mse=0, l1=0, lap=1))
    assert set(only) == {"lap"}
    assert L.lap_loss_img(target, target, mask) == 0
    # outside the mask nothing counts
    m = torch.zeros_like(mask)
    m[..., :16, :] = 1
    p2 = target.clone()
    p2[..., 16:, :] += 1
    assert float(L.lap_loss_img(p2, target, m)) == pytest.approx(0.0, abs=1e-6)


def test_vgg_absent_is_reported(monkeypatch, tmp_path):
    monkeypatch.delenv("FACEDET3D_VGG16_WEIGHTS", raising=False)
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.setenv("FACEDET3D_CACHE", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    net, status = L.load_perceptual()
    assert net is None and "no VGG16 weights" in status


def test_vgg_named_but_missing_or_broken_is_an_error(monkeypatch, tmp_path):
    """A VGG16 path the user named must exist and load: an error, not a silent skip."""
    from facedet3d.errors import FaceDet3DError

    monkeypatch.setenv("FACEDET3D_VGG16_WEIGHTS", str(tmp_path / "none.pth"))
    with pytest.raises(FaceDet3DError, match="does not exist"):
        L.load_perceptual()
    bad = tmp_path / "vgg16-397923af.pth"
    bad.write_bytes(b"not a checkpoint")
    monkeypatch.setenv("FACEDET3D_VGG16_WEIGHTS", str(bad))
    with pytest.raises(FaceDet3DError, match="cannot be loaded"):
        L.load_perceptual()


def test_augmented_target_is_the_shading_ratio():
    photo = torch.full((1, 3, 8, 8), 0.5)
    s = torch.ones(1, 1, 8, 8)
    assert torch.allclose(L.augmented_target(photo, s, s), photo, atol=1e-5)
    darker = L.augmented_target(photo, s, s * 0.5)
    assert (darker < photo).all()


def test_detailed_normals_follow_the_map(subject_dir):
    from facedet3d.fit.faceasset import read

    a = read(subject_dir)
    g = geo.uv_geometry(a.vertices, a.faces, S)
    assert np.allclose(geo.detailed_normals(g, None), g.normal)
    d = np.zeros((S, S), np.float32)
    d[28:36, 20:44] = -3e-4  # a groove in the middle of the face
    n = geo.detailed_normals(g, d)
    changed = np.linalg.norm(n - g.normal, axis=-1) > 1e-3
    assert changed[24:40, 16:48].any() and not changed[:16].any() and not changed[48:].any()


def test_short_fit_reduces_photometric_loss(fitted, subject_dir):
    _, _, report = fitted
    pl = report["metrics"]["photo_loss"]
    assert pl["after"] < pl["before"], pl
    meta = json.loads((subject_dir / "neural.json").read_text())
    assert meta["config"]["ntm_channels"] == 4 and "perceptual" in meta["report"]
    assert (subject_dir / "neural.safetensors").is_file()
    assert not list(subject_dir.glob(".neural*"))  # temp files gone
    m = report["metrics"]["render"]
    assert m["psnr"] > 20 and 0.5 < m["ssim"] <= 1


def test_rerender_new_view_and_expression_without_holes(fitted, subject_dir):
    from facedet3d.fit.faceasset import read
    from facedet3d.neural import neural_render
    from facedet3d.rig.pose import posed_vertices, target_aus

    a = read(subject_dir)
    aus, _ = target_aus(None, "surprise")
    verts = posed_vertices(a, aus)
    centre = geo.units_from_metres(a.vertices).mean(0)
    for yaw in (0.0, 30.0, -30.0):
        view = view_projection(a.meta.pose.projection, a.meta.box, 64, yaw_deg=yaw, centre_units=centre)
        img = neural_render(subject_dir, verts, a.detail_input, view, 64, device="cpu")
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        vr = geo.view_raster(geo.units_from_metres(verts), a.faces, a.uv, view, 64, 64)
        import cv2

        m = vr.mask.astype(np.uint8)
        assert m.sum() > 600
        # no pinholes: wherever the same view at 4x resolution is solidly covered (eyes and
        # mouth are real openings), the 64² raster covers every pixel
        view4 = view_projection(a.meta.pose.projection, a.meta.box, 256, yaw_deg=yaw, centre_units=centre)
        m4 = geo.view_raster(geo.units_from_metres(verts), a.faces, a.uv, view4, 256, 256).mask.astype(np.uint8)
        solid = cv2.erode(m4, np.ones((9, 9), np.uint8))[::4, ::4].astype(bool)
        assert solid.sum() > 300 and m[solid].all()
        inner = cv2.erode(m, np.ones((3, 3), np.uint8)).astype(bool)
        face = img[inner].astype(float)
        assert np.abs(face - 0.16 * 255).max(-1).min() > 2  # every face pixel was rendered
        assert face.std() > 3


def test_detail_sensitivity_concentrates_where_the_map_changed(fitted, subject_dir):
    from facedet3d.fit.faceasset import read
    from facedet3d.neural.render import detail_response, load_cached, render_arrays

    net, subject, _, faces, uv = load_cached(subject_dir, "cpu")
    a = read(subject_dir)
    d = np.zeros((S, S), np.float32)
    d[20:26, 18:46] = -4e-4  # forehead-height groove band
    view = view_projection(a.meta.pose.projection, a.meta.box, 64)
    r = render_arrays(net, subject, faces, uv, a.vertices, [None, d], view, 64)
    resp = detail_response(r)
    assert resp["ratio"] > 2.0, resp
    diff = np.abs(r["image"][1] - r["image"][0]).mean(-1)
    # more than one grey level somewhere: the tiny pass's response size depends on the texture
    # under the band (0.014 before the spectacle top bar over the brows was removed, 0.009 after)
    assert diff.max() > 0.005


def _passes_like_blender(vr, normals_world, mask=None):
    """A PassFrame as Cycles would write it for the raster ``vr`` (uv from the grid)."""
    from facedet3d.neural.passes import PassFrame

    uv = np.stack([(vr.grid[..., 0] + 1) / 2, (1 - vr.grid[..., 1]) / 2], -1).astype(np.float32)
    return PassFrame(uv, normals_world.astype(np.float32), vr.mask if mask is None else mask)


def test_renderer_passes_give_the_same_inputs_as_the_raster(fitted, subject_dir):
    """Blender's passes path (UV + world normals + a world->camera rotation) builds exactly
    the Tex2Im inputs of the software raster for the same geometry, with and without details."""
    from facedet3d.fit.faceasset import read
    from facedet3d.neural.passes import pass_inputs
    from facedet3d.neural.scene import view_inputs

    _, subject, _ = fitted
    a = read(subject_dir)
    view = view_projection(a.meta.pose.projection, a.meta.box, 64, yaw_deg=20.0,
                           centre_units=geo.units_from_metres(a.vertices).mean(0))
    vr = geo.view_raster(geo.units_from_metres(a.vertices), a.faces, a.uv, view, 64, 64)
    g = geo.uv_geometry(a.vertices, a.faces, subject.uv_size)
    d = np.zeros((subject.uv_size,) * 2, np.float32)
    d[20:26, 18:46] = -4e-4
    want = view_inputs(subject, vr, g, [d, None])

    def world(normals_uv):  # "world" = model space here; the rotation takes it to the camera
        n = vr.sample(normals_uv)
        return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)

    got = pass_inputs(subject, _passes_like_blender(vr, world(geo.detailed_normals(g, d))),
                      _passes_like_blender(vr, world(g.normal)), vr.rotation)
    for k in want:
        assert got[k].shape == want[k].shape, k
        assert np.allclose(got[k], want[k], atol=1e-4), (k, np.abs(got[k] - want[k]).max())
    assert np.abs(got["shading_d"][0] - got["shading_d"][1]).max() > 1e-3  # the details shade


def test_read_passes_from_a_multilayer_exr(tmp_path):
    import OpenEXR

    from facedet3d.neural.passes import read_passes
    from facedet3d.neural.scene import NeuralInputError

    H, W = 32, 48
    rng = np.random.default_rng(0)
    n = rng.normal(size=(H, W, 3)).astype(np.float32)
    uv = rng.random((H, W, 2)).astype(np.float32)
    alpha = (rng.random((H, W)) > 0.3).astype(np.float32)
    parts = [OpenEXR.Part({"type": OpenEXR.scanlineimage}, {f"ViewLayer.{name}.{c}": np.ascontiguousarray(v[..., i])
                                                            for i, c in enumerate(chans)}, name=f"ViewLayer.{name}")
             for name, chans, v in (("Normal", "XYZ", n), ("UV", "UV", uv), ("Combined", "A", alpha[..., None]))]
    path = tmp_path / "p.exr"
    OpenEXR.File(parts).write(str(path))
    pf = read_passes(path)
    assert np.allclose(pf.uv, uv) and np.array_equal(pf.mask, alpha > 0.5)
    assert pf.cavity is None  # no cavity AOV in the file: the frame gets no cavity term
    assert np.allclose(pf.normal, n / np.linalg.norm(n, axis=-1, keepdims=True), atol=1e-6)
    with pytest.raises(NeuralInputError, match="no such"):
        read_passes(tmp_path / "missing.exr")
    OpenEXR.File(parts[:1]).write(str(tmp_path / "n.exr"))
    with pytest.raises(NeuralInputError, match="UV.U"):
        read_passes(tmp_path / "n.exr")


def test_cavity_log_is_the_materials_term():
    from facedet3d.api.types import DETAIL_CAVITY_CLAMP

    d = np.full((32, 32), -3e-4, np.float32)
    rest = np.full((16, 16), -1e-4, np.float32)  # resampled to the detail's size
    assert np.allclose(geo.cavity_log(d, rest), -0.2, atol=1e-6)  # 0.2 mm deeper -> exp(-0.2)
    assert np.allclose(geo.cavity_log(d, rest, 0.5), -0.1, atol=1e-6)
    assert np.allclose(geo.cavity_log(rest * 0, rest), 0.1, atol=1e-6)  # shallower than the photo: brighter
    assert np.allclose(geo.cavity_log(d - 5e-3, rest), -DETAIL_CAVITY_CLAMP)
    assert not np.any(geo.cavity_log(d, rest, 0.0))


def _write_passes(path, pf, cavity=None):
    """``pf`` as the multilayer EXR Cycles writes (with the cavity AOV when given)."""
    import OpenEXR

    from facedet3d.api.types import CAVITY_PASS

    layers = [("Normal", "XYZ", pf.normal), ("UV", "UV", pf.uv), ("Combined", "A", pf.mask[..., None].astype(np.float32))]
    if cavity is not None:
        layers.append((CAVITY_PASS, "X", cavity[..., None]))
    parts = [OpenEXR.Part({"type": OpenEXR.scanlineimage},
                          {f"ViewLayer.{n}.{c}": np.ascontiguousarray(v[..., i], np.float32) for i, c in enumerate(chans)},
                          name=f"ViewLayer.{n}") for n, chans, v in layers]
    OpenEXR.File(parts).write(str(path))


def test_cavity_darkens_the_neural_frame_as_the_material(fitted, subject_dir, tmp_path):
    """The cavity term in the neural frame: none at the rest map; a map 0.2 mm deeper than the
    rest darkens the face by exp(-0.2) in linear light; the renderer's passes (with the cavity
    AOV the material writes) give the raster path's frame."""
    from facedet3d.fit.faceasset import read
    from facedet3d.imaging.color import srgb_to_linear
    from facedet3d.neural.passes import render_from_passes
    from facedet3d.neural.render import composite, load_cached, render_arrays

    net, subject, _, faces, uv = load_cached(subject_dir, "cpu")
    a = read(subject_dir)
    view = view_projection(a.meta.pose.projection, a.meta.box, 64, centre_units=geo.units_from_metres(a.vertices).mean(0))
    d = np.zeros((S, S), np.float32)
    d[20:26, 18:46] = -4e-4
    rows = (net, subject, faces, uv, a.vertices, [None, d], view, 64)
    plain = render_arrays(*rows)
    assert np.allclose(render_arrays(*rows, rest=d)["image"], plain["image"], atol=1e-5)  # the photo's own detail
    assert np.array_equal(render_arrays(*rows, rest=d + 2e-4, cavity=0.0)["image"], plain["image"])
    rest = d + 2e-4
    deeper = render_arrays(*rows, rest=rest)
    assert np.array_equal(deeper["image"][0], plain["image"][0])  # the proxy row has no cavity
    lin0, lin1 = srgb_to_linear(plain["image"][1]), srgb_to_linear(deeper["image"][1])
    ok = plain["mask"][..., None] & (lin0 > 0.02) & (lin0 < 0.9)
    assert ok.sum() > 500
    assert np.allclose(lin1[ok] / lin0[ok], np.exp(-0.2), rtol=0.01)
    from facedet3d.neural.scene import NeuralInputError

    with pytest.raises(NeuralInputError, match="rest must be"):
        render_arrays(*rows, rest=np.zeros((8, 4), np.float32))

    vr = geo.view_raster(geo.units_from_metres(a.vertices), a.faces, a.uv, view, 64, 64)
    g = geo.uv_geometry(a.vertices, a.faces, subject.uv_size)

    def world(normals_uv):
        n = vr.sample(normals_uv)
        return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)

    det, prx = tmp_path / "detailed.exr", tmp_path / "proxy.exr"
    _write_passes(det, _passes_like_blender(vr, world(geo.detailed_normals(g, d))), vr.sample(geo.cavity_log(d, rest)))
    _write_passes(prx, _passes_like_blender(vr, world(g.normal)), np.zeros((64, 64), np.float32))
    with_d, without = render_from_passes(subject_dir, det, prx, vr.rotation, device="cpu")
    assert np.abs(with_d.astype(int) - composite(deeper["image"][1], vr.mask)).max() <= 1
    assert np.abs(without.astype(int) - composite(plain["image"][0], vr.mask)).max() <= 1
    _write_passes(det, _passes_like_blender(vr, world(geo.detailed_normals(g, d))))  # no cavity pass: none applied
    with_d, _ = render_from_passes(subject_dir, det, prx, vr.rotation, device="cpu")
    assert np.abs(with_d.astype(int) - composite(plain["image"][1], vr.mask)).max() <= 1
