"""Detail-change evaluation: metrics, the shared-term bias, UV registration, estimator sign."""

from pathlib import Path

import numpy as np
import pytest
from facedet3d.detail import evaluate as ev

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not (SHARED / "data").is_dir():
    SHARED = Path("/work/shared")
CLIP = SHARED / "data" / "faces" / "LivePortrait" / "assets" / "examples" / "driving" / "d0.mp4"


def test_regions_bilateral_and_disjoint():
    R = ev.regions()
    for name, m in R.items():
        assert m.sum() > 200, name
        assert np.array_equal(m, m[:, ::-1]), name  # both sides, mirrored about u = 0.5
    assert not (R["crows_feet"] & R["nasolabial"]).any() and not (R["forehead"] & R["nasolabial"]).any()


def test_stats_and_shared_term_bias():
    rng = np.random.default_rng(0)
    sel = np.ones((64, 64), bool)
    o = rng.normal(size=(64, 64))
    s = ev._stats(o, o, sel)
    assert s["r"] == pytest.approx(1.0) and s["gain"] == pytest.approx(1.0) and s["rms_ratio"] == pytest.approx(1.0)
    assert ev._stats(-0.1 * o, o, sel)["r"] == pytest.approx(-1.0)
    # No expression change at all: D_e re-measures D_n with noise (repeatability 0.7). A
    # prediction that amplifies the input (P = 0.3 D_n) then anti-correlates with O = D_e - D_n
    # through the shared -D_n term; an independent reference frame removes the bias.
    d_n = rng.normal(size=(64, 64))
    skin = d_n - rng.normal(size=(64, 64)) * 0.5  # the true static relief
    d_n = skin + 0.6 * rng.normal(size=(64, 64))
    d_e = skin + 0.6 * rng.normal(size=(64, 64))
    d_ref = skin + 0.6 * rng.normal(size=(64, 64))
    p = 0.3 * d_n
    assert ev._stats(p, d_e - d_n, sel)["r"] < -0.3
    assert abs(ev._stats(p, d_e - d_ref, sel)["r"]) < 0.1
    assert abs(ev._partial(p, d_e - d_n, d_n, sel)) < 0.1


def test_bandpass_masked():
    rng = np.random.default_rng(1)
    d = rng.normal(size=(64, 64)).astype(np.float32)
    w = np.zeros((64, 64), np.float32)
    w[10:50, 10:50] = 1
    b = ev.bandpass(d, w)
    assert (b[w == 0] == 0).all() and b[w > 0].std() > 0.1
    assert abs(float(b[w > 0].mean())) < 0.1  # a band-pass: no DC


def test_flow_registers_a_shift():
    rng = np.random.default_rng(2)
    import cv2

    base = cv2.GaussianBlur(rng.uniform(0, 255, (256, 256, 3)).astype(np.float32), (0, 0), 2.0)
    base = np.clip((base - base.mean()) * 4 + 128, 0, 255).astype(np.uint8)
    moved = np.roll(base, (2, 3), axis=(0, 1))  # content moved 3 right, 2 down
    f = ev.flow_uv(base, moved)
    inner = (slice(40, 216), slice(40, 216))
    assert np.median(f[inner][..., 0]) == pytest.approx(3.0, abs=0.4)
    assert np.median(f[inner][..., 1]) == pytest.approx(2.0, abs=0.4)
    back = ev.warp(moved, f)
    assert np.abs(back[inner].astype(float) - base[inner]).mean() < 0.3 * np.abs(moved[inner].astype(float) - base[inner]).mean()


@pytest.mark.skipif(not CLIP.is_file(), reason="real clips not in ../shared")
def test_real_pair_and_estimator_sign():
    from facedet3d.detail import corpus
    from facedet3d.detail.frames import FrameFitter, read_video
    from facedet3d.detail.infer import DetailPredictor
    from facedet3d.rig.facs import PRESETS, normalise_aus

    fits = FrameFitter(256).fit_clip(read_video(CLIP, frames=[0, 36]), 0)
    n, e = fits[0], fits[36]
    assert np.array_equal(n.shape, e.shape) and e.landmark_rms_px < 3.0  # identity held
    assert e.aus[12] > n.aus[12] + 0.2  # the smile is read as AU12
    aligned, flow = ev.align_to(n, e)
    res = ev.compare(n, aligned, DetailPredictor(backend="torch", threads=1))
    for reg in ("crows_feet", "nasolabial", "forehead"):
        m = res.metrics[reg]
        assert m["n"] > 100 and np.isfinite(m["r"]) and m["rms_ratio"] > 0
    raw = ev.compare(n, e, DetailPredictor(backend="torch", threads=1), flow=flow)
    # alignment brings the same skin onto the same texels: repeatability of D(I) goes up
    assert res.metrics["face"]["r_dn_de"] > raw.metrics["face"]["r_dn_de"] + 0.1
    assert res.metrics["face"]["flow_px"] < raw.metrics["face"]["flow_px"]
    # the estimator's sign: occluded creases (dark) come out negative, i.e. r with the relief > 0
    h = corpus.render(corpus.make_identity(1, age=60), normalise_aus(PRESETS["happy"]), 256, static=False)
    assert ev.estimator_response(n, h, (0, 0.71, 0.71), cavity=1.0)["r_height"] > 0.2
    panel = ev.panel(res, n, aligned, "t")
    assert panel.ndim == 3 and panel.shape[2] == 3
