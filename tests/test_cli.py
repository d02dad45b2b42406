"""`facedet3d fit` end to end on the shared photos, and every bad-input class."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from facedet3d import cli


def _fit(args, capsys):
    code = cli.main(["fit", *map(str, args)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("name", ["JianzhuGuo", "trump_hillary", "emma"])
def test_fit_writes_a_complete_face_asset(name, photos, tmp_path, capsys):
    out = tmp_path / name
    code, stdout, err = _fit([photos[name], "-o", out, "--overlay"], capsys)
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert {"mesh.npz", "texture.png", "texture_mask.png", "detail_input.npy", "detail_input.exr", "meta.json",
            "overlay.png", "texture_preview.png"} <= names
    with np.load(out / "mesh.npz") as m:
        v, f, uv = m["vertices"], m["faces"], m["uv"]
    assert v.shape == (38365, 3) and v.dtype == np.float32 and f.shape == (76073, 3) and uv.shape == (38365, 2)
    assert 0.12 < np.ptp(v[:, 1]) < 0.3  # metres: a head's height, not micrometres
    meta = json.loads((out / "meta.json").read_text())
    lm2d = np.asarray(meta["landmarks_2d"])
    x1, y1, x2, y2 = meta["box"]
    w, h = x2 - x1, y2 - y1
    inside = (lm2d[:, 0] > x1 - 0.3 * w) & (lm2d[:, 0] < x2 + 0.3 * w) & (lm2d[:, 1] > y1 - 0.3 * h) & (lm2d[:, 1] < y2 + 0.3 * h)
    assert lm2d.shape == (68, 2) and inside.all()
    assert set(meta["timings_ms"]) >= {"load", "detect", "regress", "unwrap", "detail_input", "write"}
    assert len(meta["shape_coeffs"]) == 40 and len(meta["exp_coeffs"]) == 10
    assert all(len(h) == 64 for h in meta["assets"].values())
    tex = cv2.imread(str(out / "texture.png"))
    assert tex.shape == (1024, 1024, 3)
    d_npy = np.load(out / "detail_input.npy")
    d_exr = cv2.imread(str(out / "detail_input.exr"), cv2.IMREAD_UNCHANGED)
    assert d_npy.dtype == np.float32 and np.isfinite(d_npy).all() and np.abs(d_npy).max() < 0.005
    np.testing.assert_allclose(d_exr, d_npy, atol=1e-7)


def test_second_face_and_box_pick_other_faces(photos, tmp_path, capsys):
    """trump_hillary.jpg: the largest face is on the right, --face 2 picks the left one,
    and --box around the left one picks it too."""
    boxes = {}
    for tag, extra in {"largest": [], "second": ["--face", "2"], "box": ["--box", "200,90,270,310"]}.items():
        code, _, err = _fit([photos["trump_hillary"], "-o", tmp_path / tag, *extra], capsys)
        assert code == 0, err
        boxes[tag] = json.loads((tmp_path / tag / "meta.json").read_text())["box"]
    assert boxes["largest"][0] > 700 and boxes["second"][0] < 700
    assert boxes["box"] == boxes["second"]


def test_box_without_detection_is_used_as_the_face_box(photos, tmp_path, capsys):
    code, _, err = _fit([photos["JianzhuGuo"], "-o", tmp_path / "a", "--box", "118,95,185,225"], capsys)
    assert code == 0, err
    # a box away from the detected face (still a face-sized region) is taken as given
    code, _, err = _fit([photos["trump_hillary"], "-o", tmp_path / "b", "--box", "560,300,150,180"], capsys)
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert code == 0 and meta["box_source"] == "user" and meta["box"] == [560, 300, 710, 480]


def _bad_inputs(tmp_path, photos):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image\n" * 20)
    trunc = tmp_path / "truncated.jpg"
    trunc.write_bytes(photos["JianzhuGuo"].read_bytes()[:2000])
    blank = tmp_path / "blank.png"
    Image.new("RGB", (400, 300), (128, 128, 128)).save(blank)
    tiny = tmp_path / "tiny_face.png"
    Image.open(photos["JianzhuGuo"]).resize((20, 27)).save(tiny)
    return {
        "missing": [tmp_path / "nope.jpg"],
        "directory": [tmp_path],
        "empty": [empty],
        "not an image": [text],
        "truncated": [trunc],
        "no face": [blank],
        "too small": [tiny],
        "face index": [photos["JianzhuGuo"], "--face", "3"],
    }


def test_bad_inputs_give_one_line_and_write_nothing(tmp_path, photos, capsys):
    for label, args in _bad_inputs(tmp_path, photos).items():
        out = tmp_path / f"out_{label.replace(' ', '_')}"
        code, stdout, err = _fit([*args[:1], "-o", out, *args[1:]], capsys)
        lines = err.strip().splitlines()
        assert code != 0, label
        assert len(lines) == 1 and lines[0].startswith("facedet3d: error: "), (label, err)
        assert "Traceback" not in err
        assert not out.exists(), f"{label}: output written"
        assert not list(tmp_path.glob(f".{out.name}.tmp-*")), f"{label}: temp left"


def test_console_command_runs_and_debug_shows_traceback(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "facedet3d")
    res = subprocess.run([exe, "fit", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode != 0 and res.stderr.count("\n") == 1 and "missing.jpg" in res.stderr
    res = subprocess.run([exe, "--debug", "fit", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert "Traceback" in res.stderr


def test_failed_refit_keeps_the_previous_asset(photos, tmp_path, capsys):
    out = tmp_path / "asset"
    assert _fit([photos["JianzhuGuo"], "-o", out], capsys)[0] == 0
    before = (out / "meta.json").read_text()
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (90, 90, 90)).save(blank)
    assert _fit([blank, "-o", out], capsys)[0] != 0
    assert (out / "meta.json").read_text() == before


def test_an_ignored_colour_profile_is_a_warning_in_the_asset(photos, tmp_path, capsys):
    """A photo whose embedded ICC profile cannot be read still fits; meta.json says its colours
    were taken as sRGB (``fit.colour_profile``)."""
    src = tmp_path / "bad_profile.png"
    Image.open(photos["JianzhuGuo"]).convert("RGB").save(src, icc_profile=b"not a colour profile")
    code, _, err = _fit([src, "-o", tmp_path / "out"], capsys)
    assert code == 0, err
    warnings = json.loads((tmp_path / "out" / "meta.json").read_text())["warnings"]
    assert any(w.startswith("sRGB assumed: the embedded colour profile is unreadable") for w in warnings), warnings
