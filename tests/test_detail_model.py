"""The shipped DetP + SR weights: the issue's "Quality, tested" list, ONNX parity, the CLI.

Inputs are held-out corpus identities (seeds never drawn by training's generator streams in
practice; the checks are about behaviour, not memorisation)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from facedet3d.detail import corpus as C
from facedet3d.detail.infer import WEIGHTS_DIR, DetailPredictor
from facedet3d.rig.facs import AU_IDS, preset_aus

STRONG_AUS = (1, 2, 4, 6, 9, 12, 14, 15, 17, 20)


def onehot(au: int, v: float = 1.0) -> np.ndarray:
    a = np.zeros(len(AU_IDS), np.float32)
    a[AU_IDS.index(au)] = v
    return a


Z = np.zeros(17, np.float32)


@pytest.fixture(scope="module")
def pred():
    return DetailPredictor(backend="torch")


@pytest.fixture(scope="module")
def subjects():
    """Three held-out identities (young, middle, old) at rest, 256²."""
    ids = [C.make_identity(900_001 + i, age=a) for i, a in enumerate((25, 45, 70))]
    return [(i, C.render(i, Z)) for i in ids]


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


@pytest.mark.parametrize("au", STRONG_AUS)
def test_au_changes_its_region_more_at_full_intensity(pred, subjects, au):
    region = C.au_region(au, 256, margin=0.04)
    for _, d0 in subjects[:2]:
        base = pred(d0, Z, Z)
        full = pred(d0, Z, onehot(au)) - base
        half = pred(d0, Z, onehot(au, 0.5)) - base
        e = full.astype(np.float64) ** 2
        assert e[region].sum() / e.sum() > 0.6, f"AU{au}: change mostly outside its region"
        assert np.abs(full[region]).mean() > 1.25 * np.abs(half[region]).mean(), f"AU{au}: 1.0 not above 0.5"


def test_target_equals_source_returns_input(pred, subjects):
    rng = np.random.default_rng(5)
    for ident, _ in subjects:
        x = C.random_aus(rng)
        d_x = C.render(ident, x)
        assert rel(pred(d_x, x, x), d_x) < 0.35


def test_identity_survives_expression_change_and_cycle(pred, subjects):
    for ident, d_x in subjects:
        y = preset_aus("surprise")
        d_y = pred(d_x, Z, y)
        keep = ~np.any([C.au_region(a, 256, margin=0.05) for a in (1, 2, 5, 26, 25, 4)], axis=0)
        keep &= C.chart_weight(*C.uv_grid(256)) > 0.5
        r = np.corrcoef(d_y[keep], d_x[keep])[0, 1]
        assert r > 0.9, f"static features outside the changed regions lost (corr {r:.2f})"
        back = pred(d_y, y, Z)
        assert rel(back, d_x) < 0.5
        assert rel(back, d_x) < 0.7 * rel(d_y, d_x)  # the round trip comes back


def test_no_seams_at_uv_borders(pred, subjects):
    _, d0 = subjects[2]
    out = pred(d0, Z, preset_aus("happy"))
    chart = C.chart_weight(*C.uv_grid(256))
    inside, outside = chart > 0.99, chart < 0.01
    assert np.abs(out[outside]).mean() < 0.05 * np.abs(out[inside]).mean()
    gy, gx = np.gradient(out.astype(np.float64))
    g = np.hypot(gx, gy)
    import cv2

    band = (cv2.dilate((chart > 0.5).astype(np.uint8), np.ones((7, 7))) - cv2.erode((chart > 0.5).astype(np.uint8), np.ones((7, 7)))) > 0
    assert np.percentile(g[band], 99) <= 1.5 * np.percentile(g[inside], 99)
    # the mirror line u = 0.5 is interior to the chart: no jump there
    jump = np.abs(out[:, 128] - out[:, 127]).mean()
    neigh = np.mean([np.abs(out[:, c + 1] - out[:, c]).mean() for c in (120, 124, 131, 135)])
    assert jump < 2.0 * neigh + 1e-9


def test_small_au_steps_give_small_changes(pred, subjects):
    _, d0 = subjects[1]
    maps = [pred(d0, Z, onehot(12, t)) for t in np.linspace(0, 1, 21)]
    steps = [np.abs(b - a).mean() for a, b in zip(maps, maps[1:])]
    total = np.abs(maps[-1] - maps[0]).mean()
    assert max(steps) < 0.2 * total and max(steps) < 4 * np.median(steps) + 1e-12


def test_super_resolution_sizes(pred, subjects):
    _, d0 = subjects[0]
    d256 = pred(d0, Z, preset_aus("anger"))
    d1k = pred(d0, Z, preset_aus("anger"), size=1024)
    assert d1k.shape == (1024, 1024) and d1k.dtype == np.float32
    down = d1k.reshape(256, 4, 256, 4).mean((1, 3))
    assert np.corrcoef(down.ravel(), d256.ravel())[0, 1] > 0.9  # SR keeps the content
    d4k = pred.super_resolve(d256, 4096)
    assert d4k.shape == (4096, 4096) and np.isfinite(d4k).all()


def test_onnx_parity(pred, subjects, tmp_path):
    onx = DetailPredictor(backend="onnx", onnx_dir=tmp_path)  # fresh export (the build step)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".onnx", ".onnx"]
    _, d0 = subjects[1]
    y = preset_aus("disgust")
    a, b = pred(d0, Z, y), onx(d0, Z, y)
    assert np.abs(a - b).max() < 1e-3 * np.abs(a).max()
    a, b = pred(d0, Z, y, size=1024), onx(d0, Z, y, size=1024)
    assert np.abs(a - b).max() < 1e-3 * np.abs(a).max()


def test_weights_match_training_record():
    text = (WEIGHTS_DIR / "TRAINING.md").read_text()
    for name in ("detp.safetensors", "sr.safetensors"):
        m = re.search(rf"`{re.escape(name)}`[^`]*`([0-9a-f]{{64}})`", text)
        assert m, f"no sha256 for {name} in TRAINING.md"
        assert hashlib.sha256((WEIGHTS_DIR / name).read_bytes()).hexdigest() == m.group(1)
        assert (WEIGHTS_DIR / name).stat().st_size < 5e6
    assert (WEIGHTS_DIR / "loss_curves.png").is_file()


def _fake_asset(root: Path, aus: dict) -> Path:
    """A minimal FaceAsset folder whose D(I_x) is a corpus map (1024²)."""
    from facedet3d.fit import faceasset

    ident = C.make_identity(900_123, age=50)
    meta = faceasset.FaceMeta(format_version=faceasset.FORMAT_VERSION, photo="none.jpg", image_size=[10, 10],
                              box=[0, 0, 10, 10], box_source="user", detector_score=None,
                              landmarks_2d=[[0, 0]] * 68,
                              pose=faceasset.Pose(np.eye(3, 4).tolist(), np.eye(3).tolist(), 1.0, 0, 0, 0),
                              shape_coeffs=[0.0] * 40, exp_coeffs=[0.0] * 10, aus={str(k): v for k, v in aus.items()})
    a = faceasset.FaceAsset(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]]), np.zeros((3, 2), np.float32),
                            np.zeros(68, np.int64), np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8),
                            C.render(ident, Z, 1024), meta)
    return faceasset.write(a, root / "subject")


def test_cli_detail(tmp_path, capsys):
    from facedet3d.cli.app import main

    subj = _fake_asset(tmp_path, {12: 0.2})
    out = tmp_path / "d.npy"
    assert main(["detail", str(subj), "--preset", "happy", "--au", "4=0.5", "--age", "60", "-o", str(out)]) == 0
    d = np.load(out)
    assert d.shape == (256, 256) and d.dtype == np.float32 and np.isfinite(d).all()
    assert main(["detail", str(subj), "--au", "1=1", "--size", "1024", "-o", str(tmp_path / "d.exr")]) == 0
    import cv2

    assert cv2.imread(str(tmp_path / "d.exr"), cv2.IMREAD_UNCHANGED).shape == (1024, 1024)
    assert main(["detail", str(subj), "--preset", "sad", "-o", str(tmp_path / "d.png")]) == 0
    assert cv2.imread(str(tmp_path / "d.png")).shape == (256, 256, 3)
    capsys.readouterr()
    assert main(["detail", str(subj), "--au", "99=1", "-o", str(out)]) == 2
    assert main(["detail", str(tmp_path / "nope"), "-o", str(out)]) == 2
    assert main(["detail", str(subj), "-o", str(tmp_path / "d.jpg")]) == 2
    assert main(["detail", str(subj), "--preset", "bored", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert all(line.startswith("facedet3d: error:") for line in err.strip().splitlines())
