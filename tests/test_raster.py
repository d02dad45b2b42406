"""The software rasteriser: coverage, barycentrics, z-test, pixel-centre convention."""

from __future__ import annotations

import numpy as np
import pytest

from facedet3d.geometry import raster


def _tri_area(p: np.ndarray) -> float:
    return 0.5 * abs((p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[2, 0] - p[0, 0]) * (p[1, 1] - p[0, 1]))


@pytest.mark.parametrize("seed", range(5))
def test_coverage_matches_analytic_area(seed):
    rng = np.random.default_rng(seed)
    v = np.c_[rng.uniform(5, 195, (3, 2)), np.zeros(3)]
    if _tri_area(v) < 500:
        v[2, :2] = [10 + 170 * (seed % 2), 190]
    r = raster.rasterize(v, np.array([[0, 1, 2]]), 200, 200)
    area = _tri_area(v)
    perim = sum(np.linalg.norm(v[i, :2] - v[(i + 1) % 3, :2]) for i in range(3))
    # Pixel-centre sampling: the count differs from the area by at most ~half the
    # perimeter (boundary pixels), typically far less.
    assert abs(r.covered.sum() - area) < 0.5 * perim
    assert abs(r.covered.sum() - area) / area < 0.05


def test_barycentrics_reproduce_pixel_centres():
    v = np.array([[3.3, 2.1, 1.0], [60.7, 10.2, 2.0], [20.5, 47.9, 3.0]])
    r = raster.rasterize(v, np.array([[0, 1, 2]]), 50, 64)
    xy = raster.interpolate(r, v[:, :2])
    rows, cols = np.nonzero(r.covered)
    np.testing.assert_allclose(xy[rows, cols, 0], cols, atol=1e-3)
    np.testing.assert_allclose(xy[rows, cols, 1], rows, atol=1e-3)
    np.testing.assert_allclose(r.bary[r.covered].sum(1), 1.0, atol=1e-5)
    assert (r.bary[r.covered] >= 0).all()
    # depth is the interpolated z; empty pixels are -inf / zero / -1
    z = raster.interpolate(r, v[:, 2])
    np.testing.assert_allclose(r.depth[r.covered], z[r.covered], atol=1e-4)
    assert np.isneginf(r.depth[~r.covered]).all()
    assert (r.tri_id[~r.covered] == -1).all() and (xy[~r.covered] == 0).all()
    assert r.tri_id.dtype == np.int32 and r.bary.dtype == np.float32 and r.depth.dtype == np.float32


def test_z_test_keeps_the_closer_triangle_in_any_order():
    far = [[0, 0, 1.0], [40, 0, 1.0], [0, 40, 1.0]]
    near = [[5, 5, 5.0], [45, 5, 5.0], [5, 45, 5.0]]
    v = np.array(far + near, float)
    for faces in (np.array([[0, 1, 2], [3, 4, 5]]), np.array([[3, 4, 5], [0, 1, 2]])):
        r = raster.rasterize(v, faces, 50, 50)
        near_id = int(np.nonzero(faces[:, 0] == 3)[0][0])
        assert r.tri_id[10, 10] == near_id and r.depth[10, 10] == pytest.approx(5.0)
        assert r.tri_id[2, 2] == 1 - near_id and r.depth[2, 2] == pytest.approx(1.0)


def test_pixel_centre_convention_and_both_windings():
    # A rectangle whose edges lie on pixel boundaries covers exactly the pixel centres
    # x = 0..2, y = 0..1 (pixel (row r, col c) is centred at x = c, y = r).
    v = np.array([[-0.5, -0.5, 0], [2.5, -0.5, 0], [2.5, 1.5, 0], [-0.5, 1.5, 0]], float)
    for faces in (np.array([[0, 1, 2], [0, 2, 3]]), np.array([[0, 2, 1], [0, 3, 2]])):
        r = raster.rasterize(v, faces, 4, 5)
        expect = np.zeros((4, 5), bool)
        expect[0:2, 0:3] = True
        np.testing.assert_array_equal(r.covered, expect)
    # A tiny triangle around x = 5, y = 7 covers only pixel (row 7, col 5).
    t = np.array([[4.8, 6.8, 0], [5.3, 6.9, 0], [5.0, 7.3, 0]])
    r = raster.rasterize(t, np.array([[0, 1, 2]]), 10, 10)
    assert list(zip(*np.nonzero(r.covered))) == [(7, 5)]


def test_clipping_empty_and_degenerate():
    v = np.array([[-50, -50, 0], [300, -40, 0], [-40, 300, 0], [1, 1, 0], [1, 1, 0], [2, 2, 0]], float)
    r = raster.rasterize(v, np.array([[0, 1, 2], [3, 4, 5]]), 20, 30)
    assert r.covered.all() and (r.tri_id == 0).all()  # degenerate one never drawn
    e = raster.rasterize(v, np.zeros((0, 3), int), 8, 8)
    assert not e.covered.any()


def test_large_triangle_count_matches_bruteforce():
    rng = np.random.default_rng(3)
    v = rng.uniform(-5, 70, (600, 3))
    f = np.arange(600).reshape(-1, 3)
    r = raster.rasterize(v, f, 64, 64)
    ys, xs = np.mgrid[:64, :64]
    best = np.full((64, 64), -np.inf)
    for tri in f:
        p = v[tri]
        d = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[2, 0] - p[0, 0]) * (p[1, 1] - p[0, 1])
        w0 = ((p[1, 0] - xs) * (p[2, 1] - ys) - (p[2, 0] - xs) * (p[1, 1] - ys)) / d
        w1 = ((p[2, 0] - xs) * (p[0, 1] - ys) - (p[0, 0] - xs) * (p[2, 1] - ys)) / d
        w2 = 1 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        z = w0 * p[0, 2] + w1 * p[1, 2] + w2 * p[2, 2]
        best = np.where(inside, np.maximum(best, z), best)
    cov = np.isfinite(best)
    # Pixel centres exactly on an edge may differ (eps-inclusive); random floats: none.
    np.testing.assert_array_equal(r.covered, cov)
    np.testing.assert_allclose(r.depth[cov], best[cov], rtol=1e-4, atol=1e-3)


def test_vertex_normals():
    # Flat grid in z = 3, CCW seen from +Z: all normals +Z; flipped winding: -Z.
    xs, ys = np.meshgrid(np.arange(4.0), np.arange(4.0))
    v = np.c_[xs.ravel(), ys.ravel(), np.full(16, 3.0)]
    f = []
    for r in range(3):
        for c in range(3):
            i = r * 4 + c
            f += [[i, i + 1, i + 5], [i, i + 5, i + 4]]
    f = np.array(f)
    n = raster.vertex_normals(v, f)
    np.testing.assert_allclose(n, np.tile([0, 0, 1.0], (16, 1)), atol=1e-6)
    np.testing.assert_allclose(raster.vertex_normals(v, f[:, ::-1]), -n, atol=1e-6)
    assert n.dtype == np.float32
    # Isolated vertex gets a default unit normal.
    v2 = np.vstack([v, [[9, 9, 9]]])
    assert np.allclose(raster.vertex_normals(v2, f)[-1], [0, 0, 1])


def test_bfm_normals_face_the_camera(bfm):
    n = raster.vertex_normals(bfm.mean, bfm.faces)
    assert np.allclose(np.linalg.norm(n, axis=1), 1, atol=1e-5)
    assert (n[:, 2] > 0).mean() > 0.9  # model space: +Z toward the camera
