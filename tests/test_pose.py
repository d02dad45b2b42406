"""`facedet3d pose`: posed meshes and pictures from a FaceAsset; rig.npz and photo AUs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facedet3d import cli

from facedet3d.fit import faceasset

from facedet3d.rig import facs


def _pose(args, capsys):
    code = cli.main(["pose", *map(str, args)])
    return code, capsys.readouterr().err


def test_rig_npz_contract(fitted_dir):
    with np.load(fitted_dir / "rig.npz") as z:
        bs, names, au_ids, table = z["blendshapes"], z["names"], z["au_ids"], z["au_to_blendshape"]
    assert bs.shape == (53, 38365, 3) and bs.dtype == np.float32
    assert len(names) == 53 and "jawOpen" in names and "mouthSmile_L" in names
    assert list(au_ids) == list(facs.AU_IDS) and table.shape == (17, 53)
    # metres: a full jaw drop moves the chin by millimetres to centimetres, not micrometres
    jaw = bs[list(names).index("jawOpen")]
    assert 0.005 < np.linalg.norm(jaw, axis=1).max() < 0.1
    meta = json.loads((fitted_dir / "meta.json").read_text())
    assert set(meta["aus"]) == {str(a) for a in facs.AU_IDS}
    assert all(0.0 <= v <= 1.0 for v in meta["aus"].values())


def test_pose_obj_moves_the_mouth_for_a_smile(fitted_dir, tmp_path, capsys):
    code, err = _pose([fitted_dir, "--au", "12=1", "-o", tmp_path / "smile.obj"], capsys)
    assert code == 0, err
    v = np.array([l.split()[1:] for l in (tmp_path / "smile.obj").read_text().splitlines() if l.startswith("v ")], float)
    asset = faceasset.read(fitted_dir)
    lm = asset.landmarks
    n = len(asset.vertices)  # the face's vertices come first, then the head parts (head.npz)
    if asset.head is not None:
        assert len(v) == n + sum(len(asset.head[f"{p}_vertices"]) for p in asset.head["part_names"])
    d = v[:n] - asset.vertices
    assert d[lm[48], 1] > 0.001 and d[lm[54], 1] > 0.001  # both mouth corners up by > 1 mm
    assert np.abs(d[lm[19]]).max() < 0.0005  # the brow stays


def test_pose_png_differs_between_presets(fitted_dir, tmp_path, capsys):
    imgs = {}
    for preset in ("happy", "surprise"):
        code, err = _pose([fitted_dir, "--preset", preset, "-o", tmp_path / f"{preset}.png"], capsys)
        assert code == 0, err
        imgs[preset] = cv2.imread(str(tmp_path / f"{preset}.png")).astype(float)
    assert imgs["happy"].shape == (512, 1024, 3)
    assert np.abs(imgs["happy"] - imgs["surprise"]).mean() > 1.0


def test_pose_ply_is_binary_and_complete(fitted_dir, tmp_path, capsys):
    code, err = _pose([fitted_dir, "--preset", "sad", "-o", tmp_path / "sad.ply"], capsys)
    assert code == 0, err
    data = (tmp_path / "sad.ply").read_bytes()
    assert data.startswith(b"ply\nformat binary_little_endian") and len(data) > 38365 * 12 + 76073 * 13


@pytest.mark.parametrize("args,needle", [
    (["--preset", "ecstatic"], "unknown preset"),
    (["--au", "12=nan"], "NaN"),
    (["--au", "13=0.5"], "AU"),
])
def test_pose_bad_requests_are_one_line(fitted_dir, tmp_path, capsys, args, needle):
    out = tmp_path / "x.png"
    code, err = _pose([fitted_dir, *args, "-o", out], capsys)
    assert code != 0 and needle.lower() in err.lower() and err.count("\n") == 1
    assert not out.exists()


def test_pose_out_of_range_au_is_clamped_with_a_warning(fitted_dir, tmp_path, capsys):
    with pytest.warns(UserWarning):
        code, err = _pose([fitted_dir, "--au", "26=1.7", "-o", tmp_path / "c.obj"], capsys)
    assert code == 0


def test_pose_on_a_non_asset_folder(tmp_path, capsys):
    code, err = _pose([tmp_path, "-o", tmp_path / "x.png"], capsys)
    assert code != 0 and "not a FaceAsset" in err
