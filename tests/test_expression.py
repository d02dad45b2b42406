"""The expression reader (MediaPipe Face Landmarker) and the blendshape -> AU mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facedet3d.expression import au
from facedet3d.rig import facs

# ../shared beside the checkout (not `from conftest import`: blender_tests has a conftest too)
SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTOS = SHARED / "photos"


def test_mapping_inverts_the_au_table():
    """Pose blendshapes from AUs with facs.AU_TABLE, read them back: the same AUs (AU6 aside:
    its shape, cheekSquint, is a channel MediaPipe never moves; it is read by the rule)."""
    rng = np.random.default_rng(0)
    names = [au.rig_name(n) for n in au.MP_NAMES] + ["browInnerUp_L", "browInnerUp_R"]
    for _ in range(20):
        aus = {a: float(rng.uniform(0, 0.8)) if rng.random() < 0.5 else 0.0 for a in facs.AU_IDS}
        aus[6] = 0.0
        aus[7] = 0.0 if aus[12] > 0 else aus[7]  # squint with a smile reads as AU6 (rule)
        w = dict(zip(names, facs.blendshape_weights(aus, names)))
        scores = {n: (w["browInnerUp_L"] + w["browInnerUp_R"]) / 2 if n == "browInnerUp" else w[au.rig_name(n)]
                  for n in au.MP_NAMES}
        got = au.aus_from_blendshapes(scores, calibrated=True)
        for a in facs.AU_IDS:
            assert got[a] == pytest.approx(aus[a], abs=0.02), (a, aus, got)


def test_population_rest_reads_no_expression():
    got = au.aus_from_blendshapes(au.POPULATION_NEUTRAL)
    assert max(got.values()) < 0.02


def test_cheek_raise_needs_the_lip_corner_pull():
    squint = {"eyeSquintLeft": 0.8, "eyeSquintRight": 0.8}
    alone = au.aus_from_blendshapes(squint)
    assert alone[7] > 0.5 and alone[6] == 0.0
    smile = au.aus_from_blendshapes({**squint, "mouthSmileLeft": 0.9, "mouthSmileRight": 0.9})
    assert smile[6] > 0.5 and smile[12] > 0.8 and smile[7] < alone[7]
    no_squint = au.aus_from_blendshapes({"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9})
    assert no_squint[6] == 0.0 and no_squint[12] > 0.8


def test_names_round_trip():
    for n in au.MP_NAMES:
        assert au.mp_channel(au.rig_name(n)) == n
    assert au.rig_name("jawLeft") == "jawLeft" and au.rig_name("browDownLeft") == "browDown_L"
    assert au.mp_channel("browInnerUp_R") == "browInnerUp"


@pytest.fixture(scope="module")
def reader():
    from facedet3d.expression.reader import FaceReader

    with FaceReader("image") as r:
        yield r


def _photo_and_box(name):
    from facedet3d.fit.detect import default_detector
    from facedet3d.fit.photo import load_photo

    rgb = load_photo(PHOTOS / f"{name}.jpg").rgb
    return rgb, default_detector()(rgb)[0].box


@pytest.mark.parametrize("name", ["JianzhuGuo", "emma"])
def test_reads_a_smiling_photo_inside_its_box(reader, name):
    from facedet3d.expression.reader import read_photo

    rgb, box = _photo_and_box(name)
    r = read_photo(rgb, box, reader)
    assert r is not None and r.landmarks.shape == (478, 3)
    x1, y1, x2, y2 = box
    inside = ((r.landmarks[:, 0] > x1 - 0.2 * (x2 - x1)) & (r.landmarks[:, 0] < x2 + 0.2 * (x2 - x1))
              & (r.landmarks[:, 1] > y1 - 0.2 * (y2 - y1)) & (r.landmarks[:, 1] < y2 + 0.2 * (y2 - y1)))
    assert inside.mean() > 0.95
    assert len(r.blendshapes) == 51 and set(r.blendshapes) == set(au.MP_NAMES)
    aus = au.aus_from_blendshapes(r.blendshapes)
    assert aus[12] > 0.3  # both photos smile
    assert aus[23] < 0.2  # the landmark fit read emma's closed-lip smile as AU23 0.71
    assert abs(r.head["yaw"]) < 60 and abs(r.head["roll"]) < 45


def test_fit_records_the_au_source(backend, fitted_dir, monkeypatch, tmp_path):
    import json

    from facedet3d.expression import reader as reader_mod
    from facedet3d.fit.pipeline import FitRequest

    meta = json.loads((fitted_dir / "meta.json").read_text())
    assert meta["aus_source"] == "mediapipe" and meta["aus"]["12"] > 0.3
    assert set(meta["aus"]) == {str(a) for a in facs.AU_IDS}
    # when the reader finds no face, the 68-landmark fit answers, and says so
    monkeypatch.setattr(reader_mod, "read_photo", lambda *a, **k: None)
    asset = backend.fit(FitRequest(photo=str(PHOTOS / "JianzhuGuo.jpg"), texture_size=256))
    assert asset.meta.aus_source == "landmarks" and set(asset.meta.aus) == {str(a) for a in facs.AU_IDS}


def test_sides_are_the_subjects(reader):
    """LivePortrait d3 opens with a wink: the eye whose lids the landmarks show closer
    together reads the higher eyeBlink, under the subject's side's name (ARKit's)."""
    import cv2


    clip = SHARED / "data/faces/LivePortrait/assets/examples/driving/d3.mp4"
    if not clip.is_file():
        pytest.skip("../shared/data/faces is absent")
    cap = cv2.VideoCapture(str(clip))
    for _ in range(13):
        ok, bgr = cap.read()
    cap.release()
    (r,) = reader.read(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    lm = r.landmarks
    gap_img_left = abs(lm[159, 1] - lm[145, 1])  # MediaPipe mesh: upper/lower lid, image-left eye
    gap_img_right = abs(lm[386, 1] - lm[374, 1])
    assert lm[159, 0] < lm[386, 0]
    # she winks with the eye on the image's right: her left eye (a camera, not a mirror)
    assert gap_img_right < 0.6 * gap_img_left
    assert r.blendshapes["eyeBlinkLeft"] > r.blendshapes["eyeBlinkRight"] + 0.2


_GC_IN_SUBMIT = """
import gc, weakref
import concurrent.futures.thread as cft
from facedet3d.expression import reader as rd
rd.FaceReader("video").close()  # mediapipe imported
r = rd.FaceReader("video")
w = weakref.ref(r)
r._cycle = r  # garbage that only the cycle collector frees, without close()
del r
with cft._global_shutdown_lock:  # what submit() holds while it allocates: the collector can run there
    gc.collect()
assert w() is None and len(rd._PENDING) == 1
rd.FaceReader("video").close()  # the next safe point closes it
assert not rd._PENDING
print("closed")
"""


def test_a_reader_the_collector_frees_is_closed_later_not_inside_a_lock():
    """A FaceReader freed by the garbage collector without close() is not closed from the
    collector: that can run inside concurrent.futures' submit(), whose global lock MediaPipe's
    close() takes again (the suite hung there twice). Run in a child with a time limit, so a
    regression fails instead of hanging the suite."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "backend"))
    r = subprocess.run([sys.executable, "-c", _GC_IN_SUBMIT], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and r.stdout.strip().endswith("closed"), r.stderr[-2000:]
