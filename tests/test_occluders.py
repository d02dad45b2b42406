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


def _spectacles(bfm, layout, tex, bar=True, arms=True):
    """Paint rims around both eyes, optionally a thin dark top bar along the brows (inside
    the brow band, which the darkness tests never look at) and light temple arms leaving
    the outer rims toward the ears. Returns (bar pixels, arm pixels) as bool maps."""
    lm = bfm.landmarks
    s = layout.size
    bar_px, arm_px = np.zeros((s, s), np.uint8), np.zeros((s, s), np.uint8)
    tops, outer = [], []
    for a, b, ear in ((36, 39, 0), (42, 45, 16)):
        (x1, y1), (x2, y2) = _uv_px(bfm, layout, lm[a]), _uv_px(bfm, layout, lm[b])
        c = ((x1 + x2) // 2, (y1 + y2) // 2 + 4)
        # a plastic frame (~2.5 mm) around a lens ~2 eye widths wide: in the texture the rim
        # runs beyond both eye corners, as a real frame in front of the face unwraps
        ax = (int(abs(x2 - x1) * 1.05), int(abs(x2 - x1) * 0.75))
        cv2.ellipse(tex, c, ax, 0, 0, 360, (45, 40, 40), 3)
        tops.append((c[0], c[1] - ax[1]))
        xo = min(x1, x2) - (ax[0] - abs(x2 - x1) // 2) if a == 36 else max(x1, x2) + (ax[0] - abs(x2 - x1) // 2)
        xe, _ = _uv_px(bfm, layout, lm[ear])
        outer.append(((xo, c[1]), (xe, c[1] - 2)))
    if bar:  # straight across the brow band, from one rim's top to the other's
        cv2.line(bar_px, (tops[0][0] - 10, tops[0][1]), (tops[1][0] + 10, tops[1][1]), 1, 2)
    if arms:
        for p, q in outer:
            cv2.line(arm_px, p, q, 1, 3)
    tex[bar_px > 0] = (45, 40, 40)
    tex[arm_px > 0] = (160, 128, 112)  # ~11 L below the skin: lighter than any darkness test
    return bar_px > 0, arm_px > 0


def _brows(bfm, layout, tex):
    """Paint fuzzy eyebrows (a dark, ~8 mm tall blob with hair noise) along landmarks 17..26."""
    lm = bfm.landmarks
    s = layout.size
    blob = np.zeros((s, s), np.uint8)
    for ids in (np.r_[17:22], np.r_[22:27]):
        pts = np.array([_uv_px(bfm, layout, lm[i]) for i in ids], np.int32)
        cv2.polylines(blob, [pts], False, 1, 7)
    rng = np.random.default_rng(1)
    hair = np.clip(np.array([85, 60, 45]) + rng.normal(0, 18, (s, s, 1)), 0, 255)
    tex[blob > 0] = hair[blob > 0].astype(np.uint8)
    return blob > 0


def test_whole_frame_goes_brows_stay(bfm, setup):
    """The frame's top bar inside the brow band and light temple arms are removed with the
    rims (lines continuing the rims); the eyebrows right above the bar stay."""
    from facedet3d.fit import occluders

    layout, rig, tex0, mask = setup
    tex = tex0.copy()
    brow = _brows(bfm, layout, tex)
    bar, arms = _spectacles(bfm, layout, tex)
    bar &= ~brow
    occ = occluders.detect(tex, mask, layout, bfm, rig.openings)
    assert (occ & bar).sum() / bar.sum() > 0.8
    assert (occ & arms).sum() / arms.sum() > 0.8
    assert (occ & brow).sum() / brow.sum() < 0.1


def test_no_spectacles_no_lines(bfm, setup):
    """Without rims nothing grows: brows, a lid-crease line and a light line on the temple
    (a wrinkle, a shadow) are the person; dark under-eye creases (eye-wide and flat: found
    as dark, but not rims) do not make them a frame either."""
    from facedet3d.fit import occluders

    layout, rig, tex0, mask = setup
    tex = tex0.copy()
    brow = _brows(bfm, layout, tex)
    bar, arms = _spectacles(bfm, layout, tex.copy())  # where a frame would be, not painted
    tex[bar & ~brow] = (165, 125, 108)  # a soft lid-crease-like line
    tex[arms] = (160, 128, 112)
    occ = occluders.detect(tex, mask, layout, bfm, rig.openings)
    assert occ.sum() < 0.002 * layout.chart.sum()
    lm = bfm.landmarks
    wrinkle = np.zeros(mask.shape, np.uint8)
    for a, b, lo, out in ((36, 39, 41, -1), (42, 45, 46, 1)):
        (x1, _), (x2, _), (_, y) = (_uv_px(bfm, layout, lm[i]) for i in (a, b, lo))
        cv2.line(tex, (min(x1, x2), y + 7), (max(x1, x2), y + 7), (60, 45, 40), 3)
        end = max(x1, x2) if out > 0 else min(x1, x2)
        cv2.line(wrinkle, (end, y + 7), (end + out * 18, y + 2), 1, 2)  # a soft wrinkle from its end
    tex[wrinkle > 0] = (165, 125, 108)
    occ = occluders.detect(tex, mask, layout, bfm, rig.openings)
    assert occ.any() and not (occ & (bar | arms)).any()
    assert (occ & (wrinkle > 0)).sum() < 0.3 * (wrinkle > 0).sum()


LIGHT = (235, 192, 168)  # 11 L above the skin with its hue: no colour test finds it, only lightness


def _light_rims(bfm, layout, tex, colour=LIGHT):
    """Thin light (metal) rims around both eyes, as ``_spectacles`` places its dark ones;
    returns their pixels."""
    lm = bfm.landmarks
    rims = np.zeros(tex.shape[:2], np.uint8)
    for a, b in ((36, 39), (42, 45)):
        (x1, y1), (x2, y2) = _uv_px(bfm, layout, lm[a]), _uv_px(bfm, layout, lm[b])
        c = ((x1 + x2) // 2, (y1 + y2) // 2 + 4)
        cv2.ellipse(rims, c, (int(abs(x2 - x1) * 1.05), int(abs(x2 - x1) * 0.75)), 0, 0, 360, 1, 2)
    tex[rims > 0] = colour
    return rims > 0


def test_light_metal_rims_go(bfm, setup):
    """Metal rims are neither dark nor coloured: found as thin light lines that make rims at
    both eyes. Their lower halves (where a smile pushes them up the cheek) go; the eyes stay."""
    from facedet3d.fit import occluders

    layout, rig, tex0, mask = setup
    tex = tex0.copy()
    rims = _light_rims(bfm, layout, tex)
    occ = occluders.detect(tex, mask, layout, bfm, rig.openings)
    assert occ.any()
    lm = bfm.landmarks
    eye_y = max(_uv_px(bfm, layout, lm[i])[1] for i in (40, 41, 46, 47))
    lower = rims & (np.arange(rims.shape[0])[:, None] > eye_y)
    assert (occ & lower).sum() / lower.sum() > 0.8
    for vid in lm[np.r_[36:48]]:
        x, y = _uv_px(bfm, layout, vid)
        assert not occ[y, x]


def test_light_lines_without_rims_stay(bfm, setup):
    """Light lines that are the face: a highlight along the nose ridge, an eye-wide flat one
    under each eye, short light ridges between crow's feet. None spans the eye's width under
    it and rises beside it, so none is a rim and nothing goes."""
    from facedet3d.fit import occluders

    layout, rig, tex0, mask = setup
    tex = tex0.copy()
    lm = bfm.landmarks
    light = LIGHT
    (x0, y0), (_, y1) = _uv_px(bfm, layout, lm[27]), _uv_px(bfm, layout, lm[30])
    cv2.line(tex, (x0, y0), (x0, y1), light, 2)
    for a, b, lo, out in ((36, 39, 41, -1), (42, 45, 46, 1)):
        (x1, _), (x2, _), (_, y) = (_uv_px(bfm, layout, lm[i]) for i in (a, b, lo))
        cv2.line(tex, (min(x1, x2), y + 7), (max(x1, x2), y + 7), light, 2)
        end = max(x1, x2) if out > 0 else min(x1, x2)
        for k in range(3):  # crow's-feet ridges fanning out of the eye corner
            cv2.line(tex, (end + out * 6, y - 6 + 4 * k), (end + out * 16, y - 10 + 6 * k), light, 1)
    occ = occluders.detect(tex, mask, layout, bfm, rig.openings)
    assert occ.sum() < 0.002 * layout.chart.sum()
