"""Non-skin parts in UV (eyes and lashes, brows, lips, nostrils) are not read as creases."""

from __future__ import annotations

import numpy as np
import pytest
from facedet3d.fit import detail_input as di
from facedet3d.fit import skin_regions as sr
from facedet3d.fit import texture
from facedet3d.geometry import raster
from facedet3d.imaging.color import SRGB8_TO_LINEAR


def _px(uv, S):
    return int(round((1 - uv[1]) * S - 0.5)), int(round(uv[0] * S - 0.5))  # row, col


def test_regions_sit_on_their_landmarks(bfm):
    S = 512
    lm = bfm.uv[bfm.landmarks].astype(np.float64)
    R = sr.nonskin_regions(S)
    for i, part in [(37, "eyes"), (44, "eyes"), (19, "brows"), (24, "brows"), (51, "lips"), (57, "lips")]:
        r, c = _px(lm[i], S)
        assert R[part][r, c], (i, part)
    eye_c = _px(lm[36:42].mean(0), S)
    assert R["eyes"][eye_c]
    # the fold regions DetP must learn (cheeks, forehead, crow's feet) stay skin
    for i, up in [(2, 0.0), (14, 0.0), (27, 0.12), (45, 0.0)]:
        p = lm[i] + np.array([0.04 * np.sign(lm[i, 0] - 0.5), up])
        assert not any(m[_px(p, S)] for m in R.values()), i
    f = sr.fractions(S, texture.uv_layout(S).chart)
    assert 0.03 < f["all"] < 0.09 and all(f[k] > 0 for k in ("eyes", "brows", "lips", "nostrils"))
    w = sr.skin_weight(S)
    assert w.min() == 0.0 and w.max() == 1.0 and (w[R["lips"]] < 0.5).all()


def test_dark_eyes_and_nostrils_leave_no_bumps(bfm):
    """A dark disc at each eye opening and nostril (the skin's hue, so the colour cue cannot
    catch it) gives D(I) 0 there; the same disc on the cheek is read as a pit."""
    layout = texture.uv_layout(512)
    S = layout.size
    normals = raster.vertex_normals(bfm.mean, bfm.faces)
    lin = np.ones((S, S, 3), np.float32) * SRGB8_TO_LINEAR[[200, 150, 130]]
    lm = bfm.uv[bfm.landmarks].astype(np.float64)
    rr, cc = np.mgrid[:S, :S]
    spots = {"eye": _px(lm[36:42].mean(0), S), "nostril": _px(0.5 * (lm[31] + lm[33]) + [0, 0.014], S),
             "cheek": _px(lm[41] + [0.0, -0.07], S)}
    for r, c in spots.values():
        lin[(rr - r) ** 2 + (cc - c) ** 2 < 5 ** 2] *= 0.5
    s = np.clip(lin, 0, 1)
    srgb = np.clip(np.rint(np.where(s <= 0.0031308, s * 12.92, 1.055 * s ** (1 / 2.4) - 0.055) * 255), 0, 255)
    d = di.estimate_detail(srgb.astype(np.uint8), (layout.chart * 255).astype(np.uint8), layout, normals)
    at = {k: float(d[r - 2:r + 3, c - 2:c + 3].mean()) for k, (r, c) in spots.items()}
    assert at["cheek"] < -3e-5, at
    assert abs(at["eye"]) < 0.05 * -at["cheek"] and abs(at["nostril"]) < 0.05 * -at["cheek"], at
