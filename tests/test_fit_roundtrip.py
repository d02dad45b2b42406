"""Synthetic round trip: render a BFM face with known pose and identity (textured with a
real subject's unwrapped texture), fit it, and compare landmarks and pose."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facedet3d.fit import mp68
from facedet3d.fit.pipeline import FitRequest
from synthetic import render_face

CASES = [(0, 0), (0, 1), (35, 0), (35, 1), (65, 0), (65, 1)]  # (yaw degrees, seed)


@pytest.fixture(scope="module")
def real_texture(backend, photos):
    return backend.fit(FitRequest(photo=str(photos["JianzhuGuo"]))).texture


@pytest.fixture(scope="module")
def results(backend, real_texture, tmp_path_factory):
    """(yaw, seed) -> (normalised mean landmark error plain, refined, fitted yaw refined,
    refined without MediaPipe's targets). The truth here is the BFM's own landmark vertices
    on a render textured by an earlier fit, the definition the regressor is trained on; the
    MediaPipe targets (fit/mp68.py) follow the visible lids and lips instead, and are worse
    by this measure (docs/landmark_accuracy.md), better on annotated photos."""
    out = {}
    tmp = tmp_path_factory.mktemp("synthetic")
    std = backend.regressor.stats.std[12:52]
    for yaw, seed in CASES:
        rng = np.random.default_rng(100 * yaw + seed)
        shape = (rng.normal(0, 1, 40) * std * 0.5).astype(np.float32)
        sf = render_face(backend.bfm, real_texture, shape, yaw, rng.uniform(-10, 10), rng.uniform(-10, 10), seed=seed)
        path = tmp / f"face_{yaw}_{seed}.png"
        cv2.imwrite(str(path), sf.image[..., ::-1])
        norm = np.sqrt(sf.box[2] * sf.box[3])  # 3DDFA's NME normaliser: sqrt of box area
        errs = []
        for refine, regions in ((False, None), (True, None), (True, ())):
            with pytest.MonkeyPatch.context() as mp:
                if regions is not None:
                    mp.setattr(mp68, "FIT_REGIONS", regions)
                fitted = backend.fit(FitRequest(photo=str(path), refine=refine, texture_size=256))
            asset = fitted if regions is None else asset
            lm = np.asarray(fitted.meta.landmarks_2d)
            errs.append(float(np.linalg.norm(lm - sf.landmarks_2d, axis=1).mean() / norm))
        out[(yaw, seed)] = (errs[0], errs[1], asset.meta.pose.yaw_deg, errs[2])
    return out


@pytest.mark.parametrize("yaw,seed", CASES)
def test_landmarks_and_pose_recovered(results, yaw, seed):
    plain, refined, fitted_yaw, _ = results[(yaw, seed)]
    assert refined < (0.02 if yaw < 45 else 0.03), f"NME {refined:.4f}"
    assert abs(fitted_yaw - yaw) < 6.0


def test_refinement_at_least_as_accurate_as_upstream_two_pass(results):
    """The flipped-TTA least-squares refinement itself (without MediaPipe's targets)."""
    plain = np.mean([r[0] for r in results.values()])
    refined = np.mean([r[3] for r in results.values()])
    assert refined <= plain * 1.02, f"refined {refined:.4f} vs two-pass {plain:.4f}"


def test_profile_face_fits_and_hidden_side_is_filled(backend, real_texture, tmp_path):
    """Near-profile (85 deg yaw): the user gives the box (detectors often miss profiles)."""
    sf = render_face(backend.bfm, real_texture, np.zeros(40, np.float32), 85.0, seed=3)
    path = tmp_path / "profile.png"
    cv2.imwrite(str(path), sf.image[..., ::-1])
    asset = backend.fit(FitRequest(photo=str(path), box=sf.box, texture_size=256))
    assert abs(asset.meta.pose.yaw_deg) > 60
    norm = np.sqrt(sf.box[2] * sf.box[3])
    # at 85 degrees the error is 0.048-0.060 over render seeds 3-5, and moves by a few
    # thousandths with the texture's detail (which rims the earlier fit took out): a fit that
    # lost the face is several times worse
    assert np.linalg.norm(np.asarray(asset.meta.landmarks_2d) - sf.landmarks_2d, axis=1).mean() / norm < 0.065
    from facedet3d.fit.texture import uv_layout

    chart = uv_layout(256).chart
    observed = asset.texture_mask > 127
    assert observed[chart].mean() < 0.75  # the far side was not seen ...
    # ... yet it is filled: no black holes where the subject's own texture is not dark
    # (the source texture has genuinely black hair at the top corners)
    source = cv2.resize(real_texture, (256, 256), interpolation=cv2.INTER_AREA)
    skin = chart & (source.max(axis=-1) > 60)
    assert (asset.texture[skin].max(axis=-1) > 25).mean() > 0.98
    hidden = skin & ~observed
    err = np.abs(asset.texture[hidden].astype(float) - source[hidden]).mean()
    assert err < 40, f"filled side differs from the subject's texture by {err:.1f}/255"
