"""The procedural wrinkle corpus: anatomy from the landmarks, units, identity, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from facedet3d.detail import corpus as C
from facedet3d.rig.facs import AU_IDS

# AUs with folds of their own (5, 25, 26 and 45 only add to other AUs' folds)
FOLD_AUS = (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23)


def onehot(au: int, v: float = 1.0) -> np.ndarray:
    a = np.zeros(len(AU_IDS), np.float32)
    a[AU_IDS.index(au)] = v
    return a


@pytest.fixture(scope="module")
def idents():
    return [C.make_identity(s) for s in (11, 22, 33)]


def test_map_units_shape_and_chart(idents):
    d = C.render(idents[0], np.zeros(17))
    assert d.shape == (256, 256) and d.dtype == np.float32
    assert 1e-6 < np.abs(d).max() < 2e-3  # metres: sub-millimetre relief
    chart = C.chart_weight(*C.uv_grid(256))
    assert np.abs(d[chart == 0]).max() == 0.0  # nothing outside the UV chart


@pytest.mark.parametrize("au", FOLD_AUS)
def test_each_au_folds_land_in_its_region(idents, au):
    region = C.au_region(au, 256)
    for ident in idents:
        delta = C.render(ident, onehot(au)) - C.render(ident, np.zeros(17))
        e = delta.astype(np.float64) ** 2
        assert e.sum() > 0, f"AU{au} changes nothing"
        assert e[region].sum() / e.sum() > 0.95, f"AU{au} folds outside its region"
        half = C.render(ident, onehot(au, 0.5)) - C.render(ident, np.zeros(17))
        assert np.abs(half).sum() < 0.8 * np.abs(delta).sum()  # deeper at 1.0 than at 0.5


def test_static_features_survive_expression(idents):
    ident = idents[1]
    a = C.render(ident, np.zeros(17))
    b = C.render(ident, onehot(12))
    far = ~C.au_region(12, 256, margin=0.05)
    assert np.abs(a[far] - b[far]).max() < 1e-7  # pores, moles, other lines untouched (< 0.1 µm)


def test_identity_and_determinism():
    a1 = C.render(C.make_identity(5), onehot(1))
    a2 = C.render(C.make_identity(5), onehot(1))
    b = C.render(C.make_identity(6), onehot(1))
    assert np.array_equal(a1, a2)
    assert np.abs(a1 - b).mean() > 0.2 * np.abs(a1).mean()
    e1, e2 = C.make_identity(5).embedding, C.make_identity(6).embedding
    assert e1.shape == (512,) and abs(np.linalg.norm(e1) - 1) < 1e-5 and abs(float(e1 @ e2)) < 0.9


def test_age_deepens_lines():
    young = [np.abs(C.render(C.make_identity(s, age=20), onehot(1))).sum() for s in range(4)]
    old = [np.abs(C.render(C.make_identity(s, age=75), onehot(1))).sum() for s in range(4)]
    assert np.mean(old) > 1.3 * np.mean(young)


def test_resolution_independent():
    ident = C.make_identity(8)
    lo = C.render(ident, onehot(4))
    hi = C.render(ident, onehot(4), size=1024)
    down = hi.reshape(256, 4, 256, 4).mean((1, 3))
    r = np.corrcoef(lo.ravel(), down.ravel())[0, 1]
    assert r > 0.85
    win = C.render(ident, onehot(4), size=1024, window=(100, 400, 64, 48))
    assert np.allclose(win, hi[100:164, 400:448], atol=1e-10)
