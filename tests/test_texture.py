"""Texture unwrap into the BFM UV layout: layout/cache, visibility, symmetric fill, inpainting.

A synthetic face: the BFM mean with a known texture defined analytically in UV space,
rendered with our rasteriser (frontal and at 60 deg yaw), then unwrapped; the recovered
texture is compared with the known one.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from facedet3d.geometry import raster

from facedet3d.fit import texture


def pattern(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Asymmetric known texture, sRGB 0..255 float (..., 3): stripes in u, ramp in v, a
    checker-like modulation on the u > 0.5 half only."""
    r = 120 + 80 * np.cos(2 * np.pi * 6 * u)
    g = 100 + 90 * v
    b = 90 + 60 * np.cos(2 * np.pi * 5 * v) * (u > 0.5) + 40 * u
    return np.stack([r, g, b], -1)


def pattern_sym(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Left-right symmetric version (mirror of the u < 0.5 half)."""
    return pattern(0.5 - np.abs(u - 0.5), v)


def render(bfm, yaw_deg: float, fn=pattern, size: int = 400, face_px: float = 300.0,
           scale: float = 1.0):
    """Render the BFM mean rotated by yaw about +Y, ~face_px wide, textured with fn(u, v)
    on a black background. Returns (image uint8 RGB, image-space verts (N, 3) float32)."""
    m = bfm.mean.astype(np.float64)
    m = m - m.mean(0)
    a = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    m = m @ rot.T
    s = face_px / np.ptp(bfm.mean[:, 0])
    v = np.c_[size / 2 + s * m[:, 0], size / 2 - s * m[:, 1], s * m[:, 2]]  # y down
    r = raster.rasterize(v, bfm.faces, size, size)
    uv = raster.interpolate(r, bfm.uv)
    img = pattern_fn_image(fn, uv, r.covered)
    return img, v.astype(np.float32)


def pattern_fn_image(fn, uv, covered):
    img = fn(uv[..., 0], uv[..., 1])
    img[~covered] = 0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def truth_map(size: int, fn=pattern) -> np.ndarray:
    c, r = np.meshgrid(np.arange(size), np.arange(size))
    return fn((c + 0.5) / size, 1 - (r + 0.5) / size)


@pytest.fixture(scope="module")
def layout(bfm):
    return texture.uv_layout(512)


def test_layout_covers_the_chart_and_is_symmetric(bfm, layout):
    S = layout.size
    assert layout.chart.shape == (S, S) and layout.chart.dtype == bool
    assert 0.6 < layout.chart.mean() < 0.8
    # Every vertex's UV (pixel x = u*S - 0.5, y = (1 - v)*S - 0.5) lies on or next to
    # a chart texel; row 0 is the top (v = 1).
    col = np.clip(np.rint(bfm.uv[:, 0] * S - 0.5).astype(int), 0, S - 1)
    row = np.clip(np.rint((1 - bfm.uv[:, 1]) * S - 0.5).astype(int), 0, S - 1)
    near = np.zeros_like(layout.chart)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            near |= np.roll(layout.chart, (dr, dc), axis=(0, 1))
    assert near[row, col].all()
    assert layout.chart[:S // 10].any() and not layout.chart[-S // 10:].any()  # v >= 0.17
    # The layout mirrors about u = 0.5: a column flip.
    assert (layout.chart == layout.chart[:, ::-1]).mean() > 0.98  # edge texels differ
    # Barycentrics reproduce the texel centres' UVs.
    uvk = layout.sample(bfm.uv)
    rr, cc = np.divmod(layout.texel_index, S)
    np.testing.assert_allclose(uvk[:, 0], (cc + 0.5) / S, atol=1e-4)
    np.testing.assert_allclose(uvk[:, 1], 1 - (rr + 0.5) / S, atol=1e-4)


def test_layout_cache_reloads_identical(layout):
    path = texture._cache_path(layout.size)
    assert path.is_file()
    texture.uv_layout.cache_clear()
    t0 = time.perf_counter()
    again = texture.uv_layout(layout.size)
    dt = time.perf_counter() - t0
    assert again is not layout
    for name in ("chart", "texel_index", "texel_vid", "texel_bary", "texel_tri"):
        np.testing.assert_array_equal(getattr(again, name), getattr(layout, name))
    assert dt < 1.0  # a cache load, not a rebuild (tens of ms)
    assert texture.uv_layout(layout.size) is again  # in-process cache


def test_unwrap_frontal_recovers_the_texture(bfm, layout):
    img, v = render(bfm, 0)
    tex, mask = texture.unwrap(img, v, bfm.faces, layout)
    S = layout.size
    assert tex.shape == (S, S, 3) and tex.dtype == np.uint8
    assert mask.shape == (S, S) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    obs = mask > 0
    assert obs[layout.chart].mean() > 0.75
    assert not obs[~layout.chart].any()
    err = np.abs(tex.astype(float) - truth_map(S))[obs]
    assert err.mean() < 4.0, err.mean()
    # Both halves are seen frontally.
    half = S // 2
    assert obs[:, :half][layout.chart[:, :half]].mean() > 0.7
    assert obs[:, half:][layout.chart[:, half:]].mean() > 0.7


@pytest.fixture(scope="module")
def yaw60(bfm, layout):
    img, v = render(bfm, 60)
    return texture.unwrap(img, v, bfm.faces, layout)


def test_unwrap_yaw60_marks_far_side_hidden_and_fills_it(bfm, layout, yaw60):
    tex, mask = yaw60
    S, half = layout.size, layout.size // 2
    obs = mask > 0
    chart = layout.chart
    frac_l = obs[:, :half][chart[:, :half]].mean()
    frac_r = obs[:, half:][chart[:, half:]].mean()
    near, far = max(frac_l, frac_r), min(frac_l, frac_r)
    assert near > 0.8 and far < 0.25, (frac_l, frac_r)
    # Observed texels match the truth.
    err = np.abs(tex.astype(float) - truth_map(S))[obs]
    assert err.mean() < 4.0, err.mean()
    # Nothing is left black: every texel, inside and outside the chart, is filled.
    assert tex.max(axis=2).min() > 40
    # The hidden side is filled by the mirror: where the texture is symmetric in u (the
    # r and g channels of the pattern), the far side's fill equals the truth there.
    far_half = slice(half, S) if frac_r < frac_l else slice(0, half)
    hidden = (~obs & chart)[:, far_half]
    truth = truth_map(S)[:, far_half]
    e = np.abs(tex[:, far_half, :2].astype(float) - truth[..., :2])[hidden]
    assert e.mean() < 10.0, e.mean()


def test_symmetric_fill_at_large_yaw(bfm, layout):
    img, v = render(bfm, 60, fn=pattern_sym)
    tex, mask = texture.unwrap(img, v, bfm.faces, layout)
    S = layout.size
    obs = mask > 0
    hidden = layout.chart & ~obs
    mirrored_seen = obs[:, ::-1]
    sel = hidden & mirrored_seen
    assert sel.sum() > 0.15 * layout.chart.sum()
    err = np.abs(tex.astype(float) - truth_map(S, pattern_sym))
    assert err[sel].mean() < 6.0, err[sel].mean()
    # No hard seam between observed and mirrored: neighbour differences along rows near
    # the boundary stay as small as the pattern's own gradient allows.
    edge = sel & np.roll(obs, 1, axis=1) | sel & np.roll(obs, -1, axis=1)
    dx = np.abs(np.diff(tex.astype(float), axis=1)).max(-1)
    assert np.median(dx[edge[:, 1:]]) < 12


def test_grazing_observations_yield_to_the_mirror(bfm, layout):
    # At 60 deg yaw the far side near the nose is seen at grazing angles while its mirror
    # on the near side is head-on. Paint every image pixel whose surface is grazing
    # (camera-frame n_z < 0.3) pure red: the unwrap should take the head-on mirrored copy
    # there instead of the (corrupted) grazing observation.
    img, v = render(bfm, 60, fn=pattern_sym)
    cam = v.astype(np.float64) * [1, -1, 1]
    n = raster.vertex_normals(cam, bfm.faces)
    r = raster.rasterize(v, bfm.faces, img.shape[0], img.shape[1])
    nz = raster.interpolate(r, n[:, 2])
    bad = img.copy()
    bad[r.covered & (nz < 0.3)] = (255, 0, 0)
    tex, mask = texture.unwrap(bad, v, bfm.faces, layout)
    S = layout.size
    tcos = layout.to_image(layout.sample(n[:, 2]), fill=0)
    obs = mask > 0
    grazing = obs & (tcos < 0.2) & (tcos[:, ::-1] > 0.6) & obs[:, ::-1]
    assert grazing.sum() > 200
    truth = truth_map(S, pattern_sym)
    err = np.abs(tex.astype(float) - truth)[grazing].mean()
    red = np.abs(np.array([255.0, 0, 0]) - truth)[grazing].mean()
    assert err < 0.1 * red, (err, red)


def test_large_photo_is_area_downscaled_not_aliased(bfm, layout):
    import cv2

    img, v = render(bfm, 20)
    f = 6
    big = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR)
    vb = v.copy()
    vb[:, :2] = (v[:, :2] + 0.5) * f - 0.5
    vb[:, 2] *= f
    tex_b, mask_b = texture.unwrap(big, vb, bfm.faces, layout)
    tex_s, mask_s = texture.unwrap(img, v, bfm.faces, layout)
    both = (mask_b > 0) & (mask_s > 0)
    assert both.sum() > 0.9 * (mask_s > 0).sum()
    assert np.abs(tex_b.astype(float) - tex_s)[both].mean() < 3.0


def test_push_pull_keeps_known_and_fills_holes():
    img = np.zeros((64, 64, 3), np.float32)
    img[:, :32] = [10, 20, 30]
    img[:, 32:] = [110, 120, 130]
    w = np.ones((64, 64), np.float32)
    w[20:40, 20:44] = 0  # a hole across the edge
    out = texture.push_pull_fill(img, w)
    np.testing.assert_allclose(out[w == 1], img[w == 1], atol=1e-3)
    hole = out[20:40, 20:44]
    assert (hole >= 9).all() and (hole <= 131).all()
    assert hole[:, 0, 0].mean() < hole[:, -1, 0].mean()  # varies smoothly across
    none = texture.push_pull_fill(img, np.zeros((64, 64), np.float32))
    assert np.isfinite(none).all()


def test_unwrap_rejects_mismatched_mesh(bfm, layout):
    with pytest.raises(ValueError):
        texture.unwrap(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 3), np.float32), bfm.faces, layout)
