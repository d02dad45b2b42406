"""Where the face is not skin, in UV: eyes and lashes, eyebrows, lips, nostrils (issue 11).

D(I) reads dark texels as creases. The colour cue of ``detail_input`` (chroma far from the
skin's) catches red lips and dark hair but not every eyebrow (blond, thin), lashes, the
dark eye opening of a pale iris, or nostrils, which have the skin's hue. These parts sit at
fixed places of the BFM's UV layout (the fit registers the mesh to the face's landmarks, so
they land within a few texels), so they are masked here by geometry: polygons and bands
around the iBUG-68 landmark vertices' UV positions, with margins in millimetres (1 UV unit
is about 0.31 m on this layout: the 30 mm eye opening spans 0.096 UV).

``nonskin_regions(size)`` gives each part's hard mask; ``skin_weight(size)`` the soft
weight (1 = skin, 0 inside a part, a 1.5 mm feather) that ``estimate_detail`` multiplies
into D(I). ``fractions`` reports how much of the face chart each part removes.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

UV_PER_MM = 0.096 / 30.0  # eye opening (landmarks 36 -> 39) ~30 mm wide, 0.096 UV on the BFM layout

# margins in millimetres
EYE_MARGIN_MM = 4.0     # lids' lash line and lashes beyond the opening's landmarks
BROW_HALF_MM = 5.5      # half the eyebrow's height around the brow landmarks' line
BROW_OUTER_MM = 4.0     # the brow's tail beyond its outermost landmark
BROW_DOWN_MM = 2.0      # iBUG brow points trace the brow's upper half: centre the band lower
LIP_MARGIN_MM = 1.5     # vermilion border beyond the outer lip contour
NOSTRIL_RADII_MM = (5.5, 3.5)  # half width, half height of each nostril opening
NOSTRIL_UP_MM = 4.5     # the openings' centre above the wing-base / subnasale midpoint (looked at)
FEATHER_MM = 1.5


def _px(uv: np.ndarray, size: int) -> np.ndarray:
    """UV (v up) -> pixel (col, row) of a size² map (row 0 = v 1), int32 for cv2 drawing."""
    uv = np.atleast_2d(uv)
    return np.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5], -1).round().astype(np.int32)


def _dilate(mask: np.ndarray, mm: float, size: int) -> np.ndarray:
    r = max(int(round(mm * UV_PER_MM * size)), 0)
    if r == 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), k) > 0


@functools.lru_cache(maxsize=4)
def nonskin_regions(size: int) -> dict[str, np.ndarray]:
    """{"eyes", "brows", "lips", "nostrils"}: (size, size) bool masks, both sides."""
    from facedet3d.assets import bfm as bfm_mod

    lm = bfm_mod.load_bfm().landmark_uv()
    out = {}
    canvas = lambda: np.zeros((size, size), np.uint8)
    eyes = canvas()
    for idx in (range(36, 42), range(42, 48)):
        cv2.fillPoly(eyes, [_px(lm[list(idx)], size)], 1)
    out["eyes"] = _dilate(eyes, EYE_MARGIN_MM, size)
    brows = canvas()
    thick = max(int(round(2 * BROW_HALF_MM * UV_PER_MM * size)), 1)
    for idx, outer in ((range(17, 22), 17), (range(22, 27), 26)):
        pts = lm[list(idx)] - np.array([0.0, BROW_DOWN_MM * UV_PER_MM])
        side = np.sign(lm[outer, 0] - 0.5)
        tail = pts[0 if outer == 17 else -1] + np.array([side * BROW_OUTER_MM * UV_PER_MM, -0.5 * BROW_OUTER_MM * UV_PER_MM])
        line = np.vstack([tail, pts]) if outer == 17 else np.vstack([pts, tail])
        cv2.polylines(brows, [_px(line, size)], False, 1, thickness=thick, lineType=cv2.LINE_8)
    out["brows"] = brows > 0
    lips = canvas()
    cv2.fillPoly(lips, [_px(lm[48:60], size)], 1)
    out["lips"] = _dilate(lips, LIP_MARGIN_MM, size)
    nos = canvas()
    rx, ry = (max(int(round(r * UV_PER_MM * size)), 1) for r in NOSTRIL_RADII_MM)
    for wing in (31, 35):  # centre between the wing's base and the columella (33), moved up
        c = 0.5 * (lm[wing] + lm[33]) + np.array([0.0, NOSTRIL_UP_MM * UV_PER_MM])
        cv2.ellipse(nos, tuple(int(v) for v in _px(c, size)[0]), (rx, ry), 0.0, 0.0, 360.0, 1, -1)
    out["nostrils"] = nos > 0
    return out


@functools.lru_cache(maxsize=4)
def skin_weight(size: int) -> np.ndarray:
    """(size, size) float32 in [0, 1]: 0 inside every non-skin part, 1 on skin, feathered."""
    any_part = np.zeros((size, size), bool)
    for m in nonskin_regions(size).values():
        any_part |= m
    w = 1.0 - any_part.astype(np.float32)
    s = FEATHER_MM * UV_PER_MM * size / 2.0
    w = np.minimum(w, cv2.GaussianBlur(w, (0, 0), s)) if s > 0.3 else w  # feather inward only
    w.setflags(write=False)
    return w


def fractions(size: int, chart: np.ndarray) -> dict[str, float]:
    """Share of the face chart (bool (size, size)) each part removes, and all together."""
    n = max(int(chart.sum()), 1)
    regs = nonskin_regions(size)
    out = {k: float((m & chart).sum() / n) for k, m in regs.items()}
    allm = np.zeros_like(chart, bool)
    for m in regs.values():
        allm |= m
    out["all"] = float((allm & chart).sum() / n)
    return out
