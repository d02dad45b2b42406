"""Personal folds (issue 11): enrolled from one person's registered frames, a per-texel linear
model of band-passed D(I) on the AUs (``detail.personal``), stored in the FaceAsset and added
to DetP's prediction by ``DetailPredictor.for_asset``."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from facedet3d.detail import personal
from facedet3d.rig.facs import AU_IDS

S = 64
K12, K1 = AU_IDS.index(12), AU_IDS.index(1)


def _clip(n=30, noise=1.0, seed=0):
    """A person whose smile (AU12) carves a fold line and whose brow raise (AU1) a forehead
    line, on top of static detail; estimator noise of ``noise`` x the fold's amplitude."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:S, 0:S] / S
    fold = -np.exp(-((xx - 0.3 - 0.2 * yy) ** 2) / 0.004) * 1e-4  # metres: a 0.1 mm groove, ~5 texels wide
    brow = -np.exp(-((yy - 0.2) ** 2) / 0.003) * 1e-4
    static = rng.normal(0, 1e-4, (S, S))
    aus = np.zeros((n, 17), np.float32)
    aus[:, K12] = rng.uniform(0, 1, n)
    aus[:, K1] = rng.uniform(0, 1, n)
    det = static + aus[:, K12, None, None] * fold + aus[:, K1, None, None] * brow + rng.normal(0, noise * 1e-4, (n, S, S))
    seen = np.ones((n, S, S), bool)
    seen[:, :, :4] = False  # a strip no frame saw
    return det.astype(np.float32), seen, aus, fold, brow


def _r(a, b, sel):
    return float(np.corrcoef(a[sel], b[sel])[0, 1])


def test_fit_recovers_each_aus_fold_and_ignores_the_static_detail():
    det, seen, aus, fold, brow = _clip(noise=0.2)
    f = personal.fit_folds(det, seen, aus)
    assert set(f.active) == {K12, K1}
    ok = f.seen
    assert not ok[:, :4].any() and ok[:, 4:].all()
    assert _r(f.basis[K12], fold, ok) > 0.8 and _r(f.basis[K1], brow, ok) > 0.8
    assert abs(_r(f.basis[K12], brow, ok)) < 0.2  # the two AUs' folds are kept apart
    z = np.zeros(17, np.float32)
    smile = z.copy()
    smile[K12] = 1.0
    ch = f.change(z, smile)
    assert _r(ch, fold, ok) > 0.8 and np.all(ch[~ok] == 0)
    assert np.abs(f.change(smile, smile)).max() == 0  # no AU change, no detail change


def test_shuffled_aus_learn_nothing():
    det, seen, aus, fold, _ = _clip(noise=1.0, seed=1)
    perm = np.random.default_rng(3).permutation(len(aus))
    f = personal.fit_folds(det, seen, aus[perm])
    assert abs(_r(f.basis[K12], fold, f.seen)) < 0.3


def test_split_check_sees_repeating_folds_and_not_noise():
    det, seen, aus, *_ = _clip(n=40, noise=0.25, seed=2)
    frames = np.arange(40) * 3
    good = personal.split_check(det, seen, aus, frames)
    assert good["pairs"] > 5 and good["r"] > 0.2
    rng = np.random.default_rng(5)
    noise = personal.split_check(rng.normal(0, 1e-4, det.shape).astype(np.float32), seen, aus, frames)
    assert abs(noise["r"]) < 0.1


def test_bad_enrolment_is_refused():
    det, seen, aus, *_ = _clip(n=10)
    with pytest.raises(ValueError, match="no AU varies"):
        personal.fit_folds(det, seen, np.zeros_like(aus))
    with pytest.raises(ValueError, match="frames"):
        personal.fit_folds(det[:3], seen[:3], aus[:3])


def test_arrays_round_trip_and_reject_a_foreign_file():
    det, seen, aus, *_ = _clip()
    f = personal.fit_folds(det, seen, aus)
    z = personal.to_arrays(f, {"source": "x.mp4"})
    g = personal.from_arrays(z)
    assert g.active == f.active and np.array_equal(g.basis, f.basis)
    z["au_ids"] = z["au_ids"][:-1]
    with pytest.raises(ValueError):
        personal.from_arrays(z)


def test_to_depth_deepens_each_octave_by_its_gain(monkeypatch):
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    narrow = -np.exp(-((xx - 80) ** 2) / (2 * 1.0 ** 2)) * 1e-5  # a crease ~1 texel wide
    broad = -np.exp(-((xx - 170) ** 2) / (2 * 8.0 ** 2)) * 1e-5  # a fold ~8 texels wide
    m = (narrow + broad).astype(np.float32)
    assert np.allclose(personal.to_depth(m, (1.0, 1.0, 1.0, 1.0)), m)
    assert np.allclose(sum(personal.octaves(m)) + cv2.GaussianBlur(m, (0, 0), personal.OCTAVES[-1]),
                       cv2.GaussianBlur(m, (0, 0), personal.OCTAVES[0]), atol=1e-9)
    d = personal.to_depth(m, (1.0, 1.0, 4.0, 8.0))
    # the broad fold lies in the coarse octaves: several times deeper; the crease much less
    assert d[128, 170] / m[128, 170] > 3.0
    assert d[128, 80] / m[128, 80] < d[128, 170] / m[128, 170] - 0.8
    monkeypatch.setenv("FACEDET3D_FOLD_DEPTH_GAIN", "1,2,3,4")
    assert personal.depth_gain() == (1.0, 2.0, 3.0, 4.0)
    monkeypatch.setenv("FACEDET3D_FOLD_DEPTH_GAIN", "1,2")
    with pytest.raises(ValueError, match="FACEDET3D_FOLD_DEPTH_GAIN"):
        personal.depth_gain()


def test_for_asset_adds_the_enrolled_change(tmp_path):
    from facedet3d.detail import corpus as C
    from facedet3d.detail.infer import DetailPredictor, resample
    from facedet3d.fit import faceasset

    ident = C.make_identity(900_321, age=40)
    meta = faceasset.FaceMeta(format_version=faceasset.FORMAT_VERSION, photo="none.jpg", image_size=[10, 10],
                              box=[0, 0, 10, 10], box_source="user", detector_score=None, landmarks_2d=[[0, 0]] * 68,
                              pose=faceasset.Pose(np.eye(3, 4).tolist(), np.eye(3).tolist(), 1.0, 0, 0, 0),
                              shape_coeffs=[0.0] * 40, exp_coeffs=[0.0] * 10, aus={})
    a = faceasset.FaceAsset(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]]), np.zeros((3, 2), np.float32),
                            np.zeros(68, np.int64), np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8),
                            C.render(ident, np.zeros(17, np.float32), 256), meta)
    plain = Path(faceasset.write(a, tmp_path / "plain"))
    det, seen, aus, fold, _ = _clip()
    f = personal.fit_folds(det, seen, aus)
    a.folds = personal.to_arrays(f, {})
    enrolled = Path(faceasset.write(a, tmp_path / "enrolled"))
    assert (enrolled / personal.FILE).is_file() and not (plain / personal.FILE).exists()
    pred = DetailPredictor(backend="torch")
    y = {12: 1.0, 4: 0.7}  # AU12 was enrolled, AU4 was not
    d0 = pred.for_asset(plain, y)
    d1 = pred.for_asset(enrolled, y)
    # DetP's prediction plus the enrolled change (only AU12 was enrolled: AU4 adds nothing)
    want = resample(personal.to_depth(f.change(np.zeros(17), np.eye(17)[K12])), 256)
    assert np.allclose(d1 - d0, want, atol=1e-9) and np.abs(want).max() > 5e-5
    broken = dict(a.folds, basis=a.folds["basis"][:5])
    a.folds = broken
    bad = Path(faceasset.write(a, tmp_path / "bad"))
    from facedet3d.errors import FaceDet3DError

    with pytest.raises(FaceDet3DError, match="personal_folds.npz"):
        pred.for_asset(bad, y)


def test_cli_folds_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    from facedet3d.cli.app import main

    not_asset = tmp_path / "nope"
    not_asset.mkdir()
    assert main(["folds", str(tmp_path / "v.mp4"), "--asset", str(not_asset)]) == 2
    txt = tmp_path / "notes.txt"
    txt.write_text("x")
    assert main(["folds", str(txt), "--asset", str(not_asset)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("facedet3d: error:") for line in err)
    assert list(not_asset.iterdir()) == []


SHARED = Path(__file__).resolve().parents[2] / "shared"
if not (SHARED / "data").is_dir():  # checkout elsewhere: the absolute shared folder
    SHARED = Path("/work/shared")
SMILE = SHARED / "data/faces/spectre/samples/MEAD/W036_level_3_happy_007.mp4"


@pytest.mark.skipif(not SMILE.is_file(), reason="../shared/data/faces is absent")
def test_enrol_from_a_real_smile_clip(backend, tmp_path, capsys):
    """The person's photo (the clip's first frame) fitted, folds enrolled from 16 frames of the
    clip: stored in the asset, AU12 among the learnt AUs, nothing on the eyes, and the asset's
    predicted smile detail changes by exactly the enrolled change; --remove undoes it."""
    import cv2

    from facedet3d.cli.app import main
    from facedet3d.detail.infer import DetailPredictor
    from facedet3d.fit import faceasset, skin_regions
    from facedet3d.fit.pipeline import FitRequest

    cap = cv2.VideoCapture(str(SMILE))
    ok, frame = cap.read()
    cap.release()
    assert ok
    photo = tmp_path / "w036.png"
    cv2.imwrite(str(photo), frame)
    asset = Path(backend.fit_to_disk(FitRequest(photo=str(photo)), tmp_path / "w036"))
    pred = DetailPredictor(backend="torch")
    before = pred.for_asset(asset, {12: 1.0, 6: 0.6})
    assert main(["folds", str(SMILE), "--asset", str(asset), "--max-frames", "16", "--stride", "4"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "AUs" in out
    a = faceasset.read(asset)
    assert a.folds is not None
    f = personal.from_arrays(a.folds)
    assert AU_IDS.index(12) in f.active and f.frames >= 8
    import json

    meta = json.loads(str(a.folds["meta"]))  # the wide band the folds were learnt at is recorded
    assert meta["coarse_sigma"] == personal.COARSE_SIGMA and meta["band"] == list(personal.BAND)
    assert np.abs(f.basis[:, skin_regions.skin_weight(256) == 0]).max() == 0  # no folds on eyes, lips ...
    after = pred.for_asset(a, {12: 1.0, 6: 0.6})
    diff = after - before
    assert np.abs(diff).max() > 1e-6  # metres: the enrolled smile adds something
    assert main(["folds", "--remove", "--asset", str(asset)]) == 0
    assert not (asset / personal.FILE).exists()
    assert np.allclose(pred.for_asset(asset, {12: 1.0, 6: 0.6}), before)


def _script(name):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_population_prior_averages_each_au_over_the_people_who_showed_it():
    """``scripts/personal_folds.py``'s population prior: per AU, the mean of the maps of the
    clips where that AU varied. A fold every person shares comes out of the average clearer
    than from any one person; a person whose video never moved the AU does not dilute it."""
    pf = _script("personal_folds")
    rng = np.random.default_rng(3)
    _, _, _, shared, _ = _clip()
    people = []
    for p in range(8):
        own = rng.normal(0, 1e-4, (S, S)).astype(np.float32)  # each person's own folds
        basis = np.zeros((17, S, S), np.float32)
        basis[K12] = shared + own
        people.append(personal.PersonalFolds(tuple(AU_IDS), basis, np.ones((S, S), bool), (K12,), 30))
    still = np.zeros((17, S, S), np.float32)  # a clip with no smile: AU12 not active, map 0
    people.append(personal.PersonalFolds(tuple(AU_IDS), still, np.ones((S, S), bool), (K1,), 30))
    pop = pf._population(people)
    sel = np.ones((S, S), bool)
    assert _r(pop[K12], shared, sel) > max(_r(f.basis[K12], shared, sel) for f in people[:8]) + 0.2
    # the still clip is left out of AU12's mean, not averaged in as a zero map
    np.testing.assert_allclose(pop[K12], np.mean([f.basis[K12] for f in people[:8]], 0), atol=1e-9)
    assert not pop[K1].any()  # AU1 varied only in the still clip, whose map is zero
