"""AU6 (cheek raiser): the squint rule (expression/au.py step 3) and cheekSquint where a capture
carries it (step 5). The landmark eye-narrowing cue was measured and not adopted
(docs/cheek_raise.md, scripts/cheek_raise.py)."""

from __future__ import annotations

import pytest

from facedet3d.expression import au, llf, track

SMILE = {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9}


def test_a_capture_that_carries_cheek_squint_gives_au6():
    """ARKit on a phone reads cheekSquint (MediaPipe never does): it is AU6 itself."""
    got = au.aus_from_blendshapes({"cheekSquintLeft": 0.6, "cheekSquintRight": 0.4, **SMILE})
    assert got[6] == pytest.approx(0.5, abs=1e-6) and got[12] > 0.85
    assert au.aus_from_blendshapes({"cheekSquintLeft": 0.0, "cheekSquintRight": 0.0})[6] == 0.0
    # it does not take the squint rule's reading away: the larger of the two
    squint = {**SMILE, "eyeSquintLeft": 0.6, "eyeSquintRight": 0.6}
    rule = au.aus_from_blendshapes(squint)[6]
    assert rule > 0.3
    assert au.aus_from_blendshapes({**squint, "cheekSquintLeft": 0.1, "cheekSquintRight": 0.1})[6] == pytest.approx(rule)


def test_a_live_link_face_csv_reads_its_cheek_squint(tmp_path):
    """A phone capture's CheekSquint columns reach AU6 through the CSV reader."""
    shapes = {**{n: 0.0 for n in au.MP_NAMES}, **SMILE, "cheekSquintLeft": 0.7, "cheekSquintRight": 0.7}
    frames = [{"time": i / 30, "found": True, "aus": {}, "blendshapes": shapes,
               "head": {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}} for i in range(3)]
    path = tmp_path / "take.csv"
    track.write_track(iter(frames), path, {"fps": 30.0, "source": "phone"})
    assert "CheekSquintLeft" in path.read_text().splitlines()[0].split(",")
    _, back = llf.read_csv(path)
    assert len(back) == 3
    for fr in back:
        assert fr["aus"]["6"] == pytest.approx(0.7, abs=1e-3) and fr["aus"]["12"] > 0.85
