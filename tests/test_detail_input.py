"""Input detail map D(Ix): a shape-from-shading style band-pass of the unwrapped photo."""

from __future__ import annotations

import numpy as np
import pytest
from facedet3d.fit import detail_input as di
from facedet3d.fit import texture
from facedet3d.geometry import raster
from facedet3d.imaging.color import SRGB8_TO_LINEAR

SKIN = (200, 150, 130)  # sRGB


def _lin(rgb) -> np.ndarray:
    return SRGB8_TO_LINEAR[list(rgb)]


def _srgb8(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0, 1)
    s = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(s * 255), 0, 255).astype(np.uint8)


def _luma(lin) -> float:
    return float(0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2])


@pytest.fixture(scope="module")
def setup(bfm):
    layout = texture.uv_layout(512)
    normals = raster.vertex_normals(bfm.mean, bfm.faces)  # frontal: model = camera frame
    S = layout.size
    base = np.ones((S, S, 3), np.float32) * _lin(SKIN)
    mask = (layout.chart * 255).astype(np.uint8)
    return layout, normals, base, mask


def test_dark_groove_becomes_a_negative_line(setup):
    layout, normals, base, mask = setup
    S = layout.size
    rr, cc = np.mgrid[:S, :S]
    row = 150  # forehead
    prof = 1 - 0.25 * np.exp(-0.5 * ((rr - row) / 1.0) ** 2)
    band = (cc > 190) & (cc < 320)
    lin = base.copy()
    lin[band] *= prof[band][:, None]
    d = di.estimate_detail(_srgb8(lin), mask, layout, normals)
    assert d.shape == (S, S) and d.dtype == np.float32 and np.isfinite(d).all()
    groove = d[row, 200:310]
    assert (groove < 0).all()
    assert 3e-5 < -groove.mean() < 1e-3  # metres: a 25 % darker crease ~ 0.1-0.3 mm
    away = np.abs(d[list(range(0, row - 12)) + list(range(row + 12, S))])
    assert away.max() < 0.05 * -groove.mean()
    assert np.abs(d).max() <= di.MAX_ABS_M


def test_skin_whose_chroma_drifts_keeps_its_creases(setup):
    """Skin's chroma drifts across a real face (shadowed skin is redder; on X-Portrait's darker
    skin log R/G spans 0.6). The colour cue compares a texel with the skin around it, so a
    crease on such a face reads as deep as on uniform skin. Against one median chroma for the
    face (the cue before) it read 0.73 as deep here, and on X-Portrait's face almost nothing."""
    layout, normals, base, mask = setup
    S = layout.size
    rr, cc = np.mgrid[:S, :S]
    # log R/G and log G/B drift 0.006 per texel (X-Portrait's face: ~0.002), 0.16 from the
    # face's median chroma at the groove
    drift = np.exp(3.0 * (rr / S - 0.5)).astype(np.float32)
    tint = np.stack([drift, np.ones_like(drift), 1 / drift], -1)
    row = 150
    band = (cc > 190) & (cc < 320)
    crease = np.where(band, 1 - 0.25 * np.exp(-0.5 * ((rr - row) / 1.0) ** 2), 1.0)[..., None]
    flat = di.estimate_detail(_srgb8(base * tint), mask, layout, normals)
    d = di.estimate_detail(_srgb8(base * tint * crease), mask, layout, normals)
    plain = di.estimate_detail(_srgb8(base * crease), mask, layout, normals)
    assert np.abs(flat).max() < 2e-5  # the drift alone is no relief
    groove = d[row, 200:310]
    assert (groove < 0).all()
    assert groove.mean() / plain[row, 200:310].mean() > 0.9


def test_smooth_lighting_alone_gives_no_detail(setup):
    layout, normals, base, mask = setup
    nk = layout.sample(normals)
    nk /= np.linalg.norm(nk, axis=1, keepdims=True)
    shade = layout.to_image(np.clip(0.6 + 0.35 * nk[:, 0] + 0.25 * nk[:, 1] - 0.1 * nk[:, 2] ** 2,
                                    0.05, None), fill=0.6)
    S = layout.size
    ramp = np.linspace(0.8, 1.2, S, dtype=np.float32)[None, :]  # plus an albedo gradient
    d = di.estimate_detail(_srgb8(base * (shade * ramp)[..., None]), mask, layout, normals)
    assert np.isfinite(d).all()
    assert np.abs(d).max() < 2e-5  # vs ~1e-4 for a real crease


def test_hair_coloured_blob_is_suppressed(setup):
    layout, normals, base, mask = setup
    S = layout.size
    rr, cc = np.mgrid[:S, :S]
    disc = ((rr - 250) ** 2 + (cc - 150) ** 2) < 4 ** 2
    skin = _lin(SKIN)
    # Dark brown (hair/eyebrow chroma) scaled to 60 % of the skin's luminance, and a
    # luminance-only blob (skin chroma) of the same 60 %.
    brown = _lin((90, 55, 30))
    brown = brown * (0.6 * _luma(skin) / _luma(brown))
    hair = base.copy()
    hair[disc] = brown
    dark = base.copy()
    dark[disc] = 0.6 * skin
    d_hair = di.estimate_detail(_srgb8(hair), mask, layout, normals)
    d_dark = di.estimate_detail(_srgb8(dark), mask, layout, normals)
    assert d_dark[250, 150] < -3e-5  # a luminance dip reads as a dent
    assert np.abs(d_hair).max() < 0.25 * np.abs(d_dark).max()


def test_only_observed_texels_carry_detail(setup):
    layout, normals, base, mask = setup
    S = layout.size
    rng = np.random.default_rng(0)
    lin = base * rng.uniform(0.85, 1.15, (S, S, 1)).astype(np.float32)  # pore-like noise
    half = mask.copy()
    half[:, S // 2:] = 0
    d = di.estimate_detail(_srgb8(lin), half, layout, normals)
    assert np.isfinite(d).all()
    assert (d[:, S // 2:] == 0).all()
    assert (d[~layout.chart] == 0).all()
    inner = d[:, 40:S // 2 - 20][layout.chart[:, 40:S // 2 - 20]]
    assert np.abs(inner).max() > 1e-5
    # Fades smoothly toward the unobserved border (no cliff at the mask edge).
    edge_col = np.abs(d[:, S // 2 - 2]).max()
    assert edge_col < 0.2 * np.abs(inner).max()
    assert np.abs(d).max() < 2e-3


def test_nothing_observed_gives_zeros(setup):
    layout, normals, base, mask = setup
    d = di.estimate_detail(_srgb8(base), np.zeros_like(mask), layout, normals)
    assert d.dtype == np.float32 and not d.any()


def test_shade_preview(setup):
    layout, normals, base, mask = setup
    S = layout.size
    d = np.zeros((S, S), np.float32)
    d[100:110, 100:300] = -2e-4
    p = di.shade_preview(d)
    assert p.shape == (S, S, 3) and p.dtype == np.uint8
    flat = int(p[300, 300, 0])
    assert abs(flat - 128) <= 2
    # Raking light from the upper left: a dent's upper wall is dark, its lower wall lit.
    assert p[100, 200, 0] < flat - 20 and p[110, 200, 0] > flat + 20
