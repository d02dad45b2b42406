"""`facedet3d neural-fit` / `neural-render` end to end with a tiny configuration."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

import cv2

from facedet3d.cli.app import main


def test_neural_cli(fitted_dir, photos, tmp_path, capsys):
    d = tmp_path / "jg"
    shutil.copytree(fitted_dir, d)
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"size": 64, "uv_size": 64, "ntm_channels": 4, "ntex_base": 4, "lr_base": 8,
                               "detail_base": 4, "dsl_hidden": 4, "crop": 48, "fake_maps": 1, "threads": 1}))
    # the photo the fit recorded (meta.json photo_path) has moved: one-line user error, no guessing
    meta_path = d / "meta.json"
    m = json.loads(meta_path.read_text())
    assert Path(m["photo_path"]).is_file()
    m["photo_path"] = str(tmp_path / "moved" / m["photo"])
    meta_path.write_text(json.dumps(m))
    assert main(["neural-fit", str(d), "--steps", "2", "--config", str(cfg)]) == 2
    assert "--photo" in capsys.readouterr().err
    assert main(["neural-fit", str(d), "--steps", "3", "--config", str(cfg), "--photo", str(photos["JianzhuGuo"]),
                 "--no-dsl"]) == 0
    meta = json.loads((d / "neural.json").read_text())
    assert meta["config"]["losses"]["dsl"] == 0 and meta["config"]["steps"] == 3
    out = tmp_path / "r.png"
    assert main(["neural-render", str(d), "--preset", "happy", "--yaw", "20", "--size", "64", "--no-details",
                 "-o", str(out)]) == 0
    img = cv2.imread(str(out))
    assert img.shape == (64, 64, 3)
    assert main(["neural-render", str(tmp_path / "nope"), "-o", str(out)]) == 2
    assert main(["neural-render", str(d), "--size", "50", "-o", str(out)]) == 2
    # the cavity term: a map 0.2 mm deeper than the rest the face was built with darkens the frame
    import numpy as np

    det, rest = tmp_path / "d.npy", tmp_path / "rest.npy"
    np.save(det, np.full((64, 64), -3e-4, np.float32))
    np.save(rest, np.full((64, 64), -1e-4, np.float32))
    frames = {}
    for amount in ("0", "1"):
        o = tmp_path / f"cav{amount}.png"
        assert main(["neural-render", str(d), "--size", "64", "--detail", str(det), "--rest", str(rest),
                     "--cavity", amount, "-o", str(o)]) == 0
        frames[amount] = cv2.imread(str(o)).astype(float)
    assert "cavity 1" in capsys.readouterr().out
    face = np.abs(frames["0"] - 0.16 * 255).max(-1) > 8
    assert face.mean() > 0.2
    assert frames["1"][face].mean() < frames["0"][face].mean() - 5  # darker with the cavity
    assert main(["neural-render", str(d), "--size", "64", "--rest", str(rest), "-o", str(out)]) == 2  # --rest alone
    assert main(["neural-render", str(d), "--size", "64", "--detail", str(det), "--cavity", "nan", "-o", str(out)]) == 2
