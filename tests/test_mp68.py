"""MediaPipe's 478 landmarks -> the 68 iBUG points, and their use as fit targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facedet3d.fit import mp68


def test_along_is_arc_length():
    line = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 3.0]])  # length 4
    got = mp68.along(line, [0.0, 0.25, 0.5, 1.0])
    assert np.allclose(got, [[0, 0], [1, 0], [1, 1], [1, 3]])


def test_mapping_uses_only_mesh_points_and_covers_68():
    used = {i for _, c, _ in mp68._CONTOURS for i in c}
    used |= {i for side in mp68._BROW_UPPER + mp68._BROW_LOWER for i in side}
    assert max(used) < 468  # the irises (468..477) are not part of the mapping
    covered = sorted([i for ids, _, _ in mp68._CONTOURS for i in ids] + list(range(17, 27)))
    assert covered == list(range(68))


def test_a_translated_face_maps_to_translated_points():
    rng = np.random.default_rng(1)
    lm = rng.uniform(0, 100, (478, 3))
    a, b = mp68.to_68(lm), mp68.to_68(lm + [7.0, -3.0, 0.0])
    assert np.allclose(b - a, [7.0, -3.0])


def test_targets_replace_only_the_chosen_regions():
    regressed = np.zeros((68, 2))
    lm = np.full((478, 3), 50.0)
    got = mp68.targets(regressed, lm, ("eyes",))
    assert np.allclose(got[36:48], 50.0) and np.allclose(np.delete(got, np.s_[36:48], 0), 0.0)
    assert np.array_equal(mp68.targets(regressed, None), regressed)
    assert set(mp68.FIT_REGIONS) == {"brows", "eyes", "mouth"}
    with pytest.raises(ValueError):
        mp68.to_68(np.zeros((68, 2)))


def test_guided_fit_meets_mediapipes_eyelids(backend, photos):
    """On a real photo the reader's eyelid and lip points pull the fitted mesh's landmarks
    toward them, the regressor's jaw stays where the regressor put it."""
    from facedet3d.fit import camera
    from facedet3d.fit.photo import load_photo
    from facedet3d.fit.select import select_face

    rgb = load_photo(photos["trump_hillary"]).rgb
    det = select_face(backend.detector(rgb), image_size=rgb.shape[1::-1])
    reading = backend.read_face(rgb, det.box)
    assert reading is not None
    mp = mp68.to_68(reading.landmarks)
    box = np.asarray(det.box, np.float64)
    plain = camera.landmarks_image(backend.bfm, camera.fit_face(rgb, box, backend.regressor, backend.bfm))[:, :2]
    guided = camera.landmarks_image(backend.bfm, camera.fit_face(rgb, box, backend.regressor, backend.bfm,
                                                                 guide=reading.landmarks))[:, :2]
    for region in ("eyes", "mouth", "brows"):
        idx = list(mp68.REGIONS[region])
        before = np.linalg.norm(plain[idx] - mp[idx], axis=1).mean()
        after = np.linalg.norm(guided[idx] - mp[idx], axis=1).mean()
        # 17-30 % closer: the identity may move only a little toward MediaPipe's contours
        # (``camera._GUIDED_SHAPE_PRIOR``), so the rest is a difference of definition
        assert after < 0.85 * before, (region, before, after)
    side = det.width
    assert np.linalg.norm(guided[:17] - plain[:17], axis=1).mean() < 0.1 * side


def test_guided_fit_keeps_a_plausible_face(backend, photos):
    """emma (33 deg yaw, 280 px between the eye corners): meeting MediaPipe's contours once
    drove the identity coefficients 12 std from the population (hollow cheeks, a puckered
    mouth) while the 2D points barely moved. The guided fit stays within 4 std."""
    from facedet3d.fit import camera
    from facedet3d.fit.photo import load_photo
    from facedet3d.fit.select import select_face

    rgb = load_photo(photos["emma"]).rgb
    det = select_face(backend.detector(rgb), image_size=rgb.shape[1::-1])
    reading = backend.read_face(rgb, det.box)
    assert reading is not None
    fp = camera.fit_face(rgb, np.asarray(det.box, np.float64), backend.regressor, backend.bfm, guide=reading.landmarks)
    st = backend.regressor.stats
    z_shape = (fp.shape - st.mean[12:52]) / st.std[12:52]
    z_exp = (fp.exp - st.mean[52:62]) / st.std[52:62]
    assert np.abs(z_shape).max() < 4.0 and np.abs(z_exp).max() < 4.5, (np.abs(z_shape).max(), np.abs(z_exp).max())


def test_fit_records_the_landmark_targets(fitted_dir):
    import json

    meta = json.loads((fitted_dir / "meta.json").read_text())
    assert meta["landmark_targets"] == list(mp68.FIT_REGIONS)


D0 = Path(__file__).resolve().parents[2] / "shared/data/faces/LivePortrait/assets/examples/driving/d0.mp4"


@pytest.mark.skipif(not D0.is_file(), reason="../shared/data/faces is absent")
def test_frame_fits_take_mediapipes_targets_and_record_them(backend, monkeypatch):
    """Video frames (detail corpus, evaluation) are fitted as photos are: brows, eyelids and
    lips to MediaPipe's points, identity held; the frame records the regions it took, and the
    MediaPipe labels reuse the fit's reading instead of reading the frame again."""
    from facedet3d.detail import frames as frames_mod
    from facedet3d.detail.frames import FrameFitter, read_video

    rgbs = read_video(D0, frames=[0, 30])  # neutral, broad smile
    fits = {}
    for guide in (False, True):
        fitter = FrameFitter(256, backend=backend, guide=guide)
        shape = fitter.fit(rgbs[0]).shape
        fits[guide] = {i: fitter.fit(rgb, shape=shape) for i, rgb in rgbs.items()}
    assert fits[False][30].landmark_targets is None and fits[True][30].landmark_targets == list(mp68.FIT_REGIONS)
    for i in rgbs:
        mp = mp68.to_68(fits[True][i].reading.landmarks)
        iod = np.linalg.norm(mp[36] - mp[45])
        for region in ("eyes", "mouth", "brows"):
            idx = list(mp68.REGIONS[region])
            lm = {g: fits[g][i].verts_img[backend.bfm.landmarks][idx, :2] for g in (False, True)}
            nme = {g: np.linalg.norm(lm[g] - mp[idx], axis=1).mean() / iod for g in (False, True)}
            assert nme[True] < 0.75 * nme[False], (i, region, nme)
    assert np.array_equal(fits[True][0].shape, fits[True][30].shape)  # the identity is held
    calls = []
    monkeypatch.setattr("facedet3d.expression.reader.read_photo", lambda *a, **k: calls.append(a))
    aus = frames_mod.mediapipe_aus(fits[True][30])
    assert not calls and aus[12] > 0.5
