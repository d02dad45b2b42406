"""The stage-neutral math (geometry.lighting, geometry.ramps, geometry.raster.face_normals,
imaging.color, imaging.maps) and the neural stage's one direction of data flow."""

from __future__ import annotations

import ast
from pathlib import Path

import cv2
import numpy as np
import torch

from facedet3d.geometry.lighting import fit_lighting, sh9, sh9_dot
from facedet3d.geometry.ramps import smoothstep
from facedet3d.geometry.raster import face_normals
from facedet3d.imaging import color
from facedet3d.imaging.color_torch import to_linear, to_srgb
from facedet3d.imaging.maps import resize_planar, resize_square

BACKEND = Path(__file__).resolve().parents[1] / "backend" / "facedet3d"


def test_srgb_known_values_and_round_trip():
    # IEC 61966-2-1 reference points: mid-grey 0.5 sRGB = 0.214 linear; 18 % grey = 0.461 sRGB.
    assert abs(float(color.srgb_to_linear(np.array(0.5))) - 0.21404) < 1e-4
    assert abs(float(color.linear_to_srgb(np.array(0.18))) - 0.46135) < 1e-4
    x = np.linspace(0, 1, 1001)
    assert np.abs(color.linear_to_srgb(color.srgb_to_linear(x)) - x).max() < 1e-5
    assert color.SRGB8_TO_LINEAR[0] == 0 and color.SRGB8_TO_LINEAR[255] == 1
    assert np.all(np.diff(color.SRGB8_TO_LINEAR) > 0)
    t = torch.from_numpy(x).float()
    assert np.abs(to_srgb(to_linear(t)).numpy() - x).max() < 1e-5
    assert np.abs(to_linear(t).numpy() - color.srgb_to_linear(x)).max() < 1e-6


def test_smoothstep():
    y = smoothstep(np.array([-1.0, 0.2, 0.5, 0.8, 2.0]), 0.2, 0.8)
    assert np.allclose(y, [0, 0, 0.5, 1, 1])


def test_fit_lighting_recovers_sh_despite_outliers():
    rng = np.random.default_rng(0)
    n = rng.normal(size=(4000, 3))
    n[:, 2] = np.abs(n[:, 2])  # the visible hemisphere
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    c = np.array([0.8, 0.1, 0.3, 0.4, 0.02, -0.05, 0.03, 0.01, -0.02])
    y = sh9(n) @ c
    y[:200] *= 0.2  # shadows / hair: 5 % gross outliers
    assert np.allclose(fit_lighting(y, sh9(n)), c, atol=2e-3)
    f = n.astype(np.float32)
    assert np.allclose(sh9_dot(f[:, 0], f[:, 1], f[:, 2], c), sh9(n) @ c, atol=1e-5)
    few = fit_lighting(y[:50], sh9(n[:50]))  # too few samples for 9 terms: first order only
    assert np.all(few[4:] == 0) and np.any(few[:4] != 0)


def test_face_normals_unit_and_dtype():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]], float)
    f = np.array([[0, 1, 2], [0, 3, 3]])  # one counter-clockwise triangle, one degenerate
    n = face_normals(v, f, dtype=np.float64)
    assert n.dtype == np.float64 and np.allclose(n, [[0, 0, 1], [0, 0, 0]])
    assert face_normals(v * 2, f, normalize=False)[0, 2] == 4  # length = 2 x area
    assert face_normals(v, f).dtype == np.float32


def test_resize_square_and_planar():
    m = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    same = resize_square(m, 64)
    assert same is not m and np.array_equal(same, m)
    small = resize_square(m, 16)
    assert small.shape == (16, 16) and np.isclose(small.mean(), m.mean(), atol=1e-4)  # area mean
    big = resize_square(m, 128, enlarge=cv2.INTER_CUBIC)
    assert big.shape == (128, 128) and big.dtype == np.float32
    planar = resize_planar(np.stack([m, 2 * m]), (32, 16), cv2.INTER_AREA)
    assert planar.shape == (2, 16, 32) and np.allclose(planar[1], 2 * planar[0])


def _imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
            mods.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
    return mods


def test_one_direction_of_flow():
    """neural.geometry is pure math: it never reads the scene; shared math is imported from
    the stage-neutral packages, not from another stage's private names."""
    geo = _imports(BACKEND / "neural" / "geometry.py")
    assert not any("neural.scene" in m or "neural.fit" in m or "neural.render" in m for m in geo), geo
    assert not any(m.startswith("facedet3d.fit.detail_input") for m in geo), geo
    assert not any("neural" in m for m in _imports(BACKEND / "fit" / "detail_input.py"))
