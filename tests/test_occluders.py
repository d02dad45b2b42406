"""Occluders (fit/occluders.py): a dark spectacle-like frame and a blue microphone painted
onto a skin texture are detected, replaced by skin and dropped from the observation mask
(so D(Ix) carries no detail there); a clean face loses (almost) nothing; eyes, brows and
lips are never taken for occluders."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="module")
def setup(bfm):
    from facedet3d.fit import texture
    from facedet3d.rig.transfer import load_rig

    layout = texture.uv_layout(256)
    rig = load_rig()
    rng = np.random.default_rng(0)
    s = layout.size
    tex = np.zeros((s, s, 3), np.uint8)
    base = np.array([205, 160, 135], np.float64)
    tex[:] = np.clip(base + rng.normal(0, 3, (s, s, 3)), 0, 255).astype(np.uint8)
    mask = (layout.chart * 255).astype(np.uint8)
    return layout, rig, tex, mask


def _uv_px(bfm, layout, vid):
    s = layout.size
    u, v = bfm.uv[vid]
    return int(u * s), int((1 - v) * s)


def test_clean_face_keeps_its_texture(bfm, setup):
    from facedet3d.fit import occluders

    layout, rig, tex, mask = setup
    occ = occluders.detect(tex, mask, layout, bfm, rig.openings)
    assert occ.sum() < 0.002 * layout.chart.sum()


def test_frame_and_microphone_are_removed(bfm, setup):
    from facedet3d.fit import occluders

    layout, rig, tex0, mask = setup
    tex = tex0.copy()
    lm = bfm.landmarks
    # a dark ring below and around each eye (a spectacle rim) and a bridge over the nose
    for a, b in ((36, 39), (42, 45)):
        (x1, y1), (x2, y2) = _uv_px(bfm, layout, lm[a]), _uv_px(bfm, layout, lm[b])
        c = ((x1 + x2) // 2, (y1 + y2) // 2 + 2)
        cv2.ellipse(tex, c, (int(abs(x2 - x1) * 0.85), int(abs(x2 - x1) * 0.6)), 0, 0, 360, (45, 40, 40), 2)
    # a blue microphone on the cheek
    cx, cy = _uv_px(bfm, layout, lm[3])
    cx2, cy2 = _uv_px(bfm, layout, lm[31])
    mic = ((cx + cx2) // 2, (cy + cy2) // 2)
    cv2.circle(tex, mic, 6, (40, 60, 200), -1)
    occ = occluders.detect(tex, mask, layout, bfm, rig.openings)
    painted = np.abs(tex.astype(int) - tex0.astype(int)).max(2) > 40
    mic_px = np.zeros_like(painted)
    cv2.circle(mic_px.view(np.uint8), mic, 6, 1, -1)
    ring = painted & ~mic_px
    assert (occ & mic_px).sum() / mic_px.sum() > 0.95
    # the rims' upper halves cross the lid creases, which are kept by design (make-up and
    # shadows there are the person): more than half of the ring goes
    assert (occ & ring).sum() / ring.sum() > 0.5
    clean, new_mask = occluders.remove(tex, mask, occ, layout, bfm)
    # the painted pixels now look like skin again, and are no longer "observed"
    err = np.abs(clean[painted & occ].astype(float) - np.array([205, 160, 135])).max(1)
    assert np.median(err) < 20
    assert (new_mask[occ] == 0).all() and (new_mask[~occ] == mask[~occ]).all()
    # what is natural stays: the eye, lip and brow landmarks' texels are not occluders
    for vid in lm[np.r_[17:27, 36:48, 48:68]]:
        x, y = _uv_px(bfm, layout, vid)
        assert not occ[y, x]


def test_detail_input_ignores_removed_texels(bfm, setup):
    """D(Ix) comes from observed texels only: a removed occluder leaves no detail."""
    from facedet3d.fit import detail_input, occluders

    layout, rig, tex0, mask = setup
    tex = tex0.copy()
    x, y = _uv_px(bfm, layout, bfm.landmarks[21])
    cv2.line(tex, (x - 40, y + 12), (x + 60, y + 12), (40, 35, 35), 2)  # a dark rim across the brow ridge
    occ = occluders.detect(tex, mask, layout, bfm, rig.openings)
    clean, new_mask = occluders.remove(tex, mask, occ, layout, bfm)
    normals = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (bfm.n_vertices, 1))
    d = detail_input.estimate_detail(clean, new_mask, layout, normals)
    assert occ.any() and np.abs(d[occ]).max() < 1e-5
