"""Occluders out of the texture T(Ix) and the detail input D(Ix): glasses, a microphone, a
hand, hair over the forehead.

Detection works in UV space on the unwrapped texture (every texel knows where it is on the
face, so landmarks give regions directly), with no learned model (no segmentation network
is available offline here):

1. A skin reference: observed texels of the cheek/nose band (between the lower lids and
   the upper lip, in the BFM mean's geometry), robust statistics (median, MAD) of their
   CIE Lab colour.
2. Non-skin colour anywhere on the skin: chroma (a, b) more than ``CHROMA_Z`` robust
   deviations from the skin's (a microphone, coloured frames, a glove, a sleeve).
3. Dark matter on the upper face: lightness more than ``DARK_Z`` robust deviations (and at
   least ``DARK_MIN_L``) below the skin's, above the nose tip, outside the eyes and the
   eyebrows (glasses rims, hair over the forehead). The lower face is not tested for
   darkness: beards and the mouth's shadows are the person, not an occluder.
4. The rest of a spectacle frame: its top bar runs along the brows (a region step 3 never
   tests, so that eyebrows and lid creases stay), its temple arms are often lighter than
   the rims, and parts of the rims are faint. They are thin dark LINES: a small black-hat
   (``LINE_HAT_PX``, wider than a frame bar, narrower than an eyebrow's height, so a brow's
   body gives no response) opened along straight segments of ``LINE_LEN_PX`` in 12
   directions (fuzzy hair, pores and a brow's texture do not persist along a straight
   run); wider ones (temple arms) are the rim black-hat opened along ``ARM_LEN_PX``, outside
   the brows, or grey (``GREY_C`` less chroma than the skin, a little darker). Such lines
   darker than their surroundings (relative: ``LINE_HAT_L``, ``ARM_HAT_L``, not an absolute
   darkness) are kept only when they connect to a RIM that steps 2-3 found (hysteresis):
   a piece spanning ``RIM_SPAN`` of the eye's width under each eye (a rim is wider than
   the eye) and rising ``RIM_RISE`` of it (up beside the eye). A face without glasses has
   no such rims (a lid-corner or nose shadow is short, an under-eye shadow or crease is no
   wider than the eye and flat), so nothing grows there and its brows, lid creases and wrinkles stay.
   The frame so found takes a margin of ``FRAME_GROW_PX`` (the lens bevel's glint).
   Thin metal rims (silver, gold, rimless bevels) are neither dark nor coloured: they are
   thin LIGHT lines, found as the dark ones with a top-hat instead of the black-hat
   (``LIGHT_LINE_L`` lighter than the line opening). When steps 2-3 found no rims, light
   lines that pass the same rim test at both eyes are the rims; either way light lines that
   connect to the rims belong to the frame. A face without glasses has light lines too (the
   nose ridge, a lid crease's highlight, the skin between crow's feet), but none spans the
   eye's width under it and rises beside it, so nothing is taken there.
5. Clean-up: an opening removes isolated texels (pores, moles), a dilation takes the
   occluder's soft edge and cast shadow (``GROW_PX`` at 1024²).

Removal: occluded texels take the mirrored texel's colour where that one is observed and
not occluded (the face is nearly symmetric; glasses are too, so both sides are often
occluded), the rest is inpainted by push-pull from the surrounding skin. They are removed
from the observation mask, so ``detail_input`` (which uses observed texels only) never
turns a rim into a bump, and the mask records what was replaced.

A skin-coloured hand is not separable by colour from the face it covers; it is found only
where its shading or shadow line darkens the upper face. The mask is written to the
FaceAsset as ``occluder_mask.png`` (UV space, 255 = occluder removed).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

CHROMA_Z = 7.0
DARK_Z = 5.0
DARK_MIN_L = 28.0  # Lab L units (0..100)
GROW_PX = 4  # at 1024 texels; scaled with the texture size
RIM_PX = 61  # black-hat window at 1024 texels (~14 mm): wider than a spectacle frame
RIM_HAT_L = 16.0  # Lab L units darker than the closing: a rim, not a pore or a wrinkle
EYE_MARGIN_UM = 4_500.0  # lids, lashes and eyeliner are the person
BROW_BAND_UM = (-5_000.0, 8_000.0)  # eyebrows: from 5 mm below to 8 mm above their landmarks
LINE_HAT_PX = 25  # line black-hat window at 1024 texels (~6 mm): a frame bar is 1-4 mm, a brow ~10 mm tall
LINE_LEN_PX = 31  # a line persists along ~7 mm straight at 1024 texels
LINE_HAT_L = 6.0  # Lab L units darker than the line closing, along the whole run
ARM_LEN_PX = 61  # temple arms: the rim black-hat opened along ~14 mm straight runs at 1024 texels
ARM_HAT_L = 8.0  # ... and this much darker than the closing all along (arms are lighter than rims)
LIGHT_LINE_L = 6.0  # Lab L units lighter than the line opening, along the whole run: a metal rim's glint
LIGHT_RIM_SPAN = 1.1  # a light rim's span under the eye (eye widths): its glint breaks where the rim curves up
LIGHT_RIM_RISE = 0.8  # ... and its rise (eye widths): up around the eye, not a highlight joined to crow's feet
LIGHT_GAP_PX = 9  # at 1024 texels (~2.7 mm): gaps in a light rim's glint that a closing bridges
NOSE_RIDGE_UM = 7_000.0  # the nose's ridge below the inner eye corners (half-width): skin, however light
GREY_C = 6.0  # Lab chroma below the skin's: a grey frame part (temple arms), ...
GREY_DL = 5.0  # ... and at least this much darker (Lab L)
FRAME_GROW_PX = 10  # at 1024 texels (~2.3 mm): the frame's margin (lens bevel glints, soft edge)
MIRROR_CLEAR_PX = 8  # at 1024 texels (~2 mm): a mirror fill's source keeps this clear of any occluder
RIM_SPAN = 1.25  # a rim spans this share of the eye's corner-to-corner width under the eye (beyond both corners) ...
RIM_RISE = 0.4  # ... and its piece rises this share of the eye's width (up beside the eye)


def _lab(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb.astype(np.uint8).reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
    lab[:, 0] *= 100.0 / 255.0  # OpenCV's 8-bit L is 0..255
    lab[:, 1:] -= 128.0
    return lab


def _texel_points(layout, mean: np.ndarray) -> np.ndarray:
    """(K, 3) BFM-mean position (um) of every chart texel."""
    return (mean[layout.texel_vid] * layout.texel_bary[..., None]).sum(1)


def mirror_texels(layout, mean: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(K,) flat texel index of each chart texel's mirror image (x -> -x on the BFM mean)."""
    flip = mean * np.array([-1.0, 1.0, 1.0])
    _, mir = cKDTree(mean).query(flip)
    muv = (uv[mir[layout.texel_vid]] * layout.texel_bary[..., None]).sum(1)
    s = layout.size
    col = np.clip((muv[:, 0] * s).astype(int), 0, s - 1)
    row = np.clip(((1.0 - muv[:, 1]) * s).astype(int), 0, s - 1)
    return row * s + col


@dataclass(frozen=True)
class _Regions:
    """What depends only on the UV layout and the BFM mean (cached per texture size): each
    chart texel's skin band, 'natural' (eyes, brows, lid creases, lips, nostrils) and 'upper
    face' flags, and its mirror texel."""

    band: np.ndarray
    natural: np.ndarray
    hard: np.ndarray  # eyes (with their margin), lips, nostrils: not even a frame line is taken there
    upper: np.ndarray
    mirror: np.ndarray
    upper_box: tuple  # (row0, row1, col0, col1) texels holding the upper-face texels
    under_eye: np.ndarray  # (K,) int8: 1 / 2 under the left / right eye (where a lower rim runs), else 0
    nose_ridge: np.ndarray  # (K,) bool: the nose's ridge below the inner eye corners
    x_um: np.ndarray  # (K,) float32 BFM-mean x of each chart texel
    y_um: np.ndarray  # (K,) float32 BFM-mean y of each chart texel
    eye_width_um: float


_REGIONS: dict = {}


def _regions(layout, bfm, openings: dict) -> _Regions:
    key = (layout.size, id(bfm), id(openings))
    if key not in _REGIONS:
        if len(_REGIONS) >= 4:
            _REGIONS.clear()
        _REGIONS[key] = _build_regions(layout, bfm, openings)
    return _REGIONS[key]


def _build_regions(layout, bfm, openings: dict) -> _Regions:
    mean = bfm.mean.astype(np.float64)
    lm = mean[bfm.landmarks]
    pts = _texel_points(layout, mean)
    y = pts[:, 1]
    # the reference skin: cheeks and nose between the lower lids and the upper lip
    band = (y < lm[[40, 41, 46, 47], 1].min()) & (y > lm[51, 1]) & (np.abs(pts[:, 0]) < np.abs(lm[[2, 14], 0]).min())
    # regions that are not skin by nature: eyes (with a margin), eyebrows, lips, nostrils
    eye_v = np.flatnonzero(openings["eye_l"] | openings["eye_r"] | openings["mouth"])
    near_eye = cKDTree(mean[eye_v]).query(pts)[0] < EYE_MARGIN_UM
    brow_y = np.interp(pts[:, 0], *zip(*sorted(zip(lm[17:27, 0], lm[17:27, 1]))))
    brow = ((pts[:, 1] - brow_y) > BROW_BAND_UM[0]) & ((pts[:, 1] - brow_y) < BROW_BAND_UM[1]) \
        & (pts[:, 0] > lm[17, 0] - 8_000) & (pts[:, 0] < lm[26, 0] + 8_000)
    # the lid creases between the eyes and the brows (shadows, make-up): not tested for
    # darkness; a frame's top bar there is found as a line continuing the rims (step 4)
    lid_top = lm[[37, 38, 43, 44], 1].min()
    brow |= (pts[:, 1] > lid_top) & (pts[:, 1] < brow_y) & (pts[:, 0] > lm[17, 0]) & (pts[:, 0] < lm[26, 0]) \
        & (np.abs(pts[:, 0]) > 0.5 * np.abs(lm[[39, 42], 0]).min())
    lips = cKDTree(lm[48:68]).query(pts)[0] < 8_000
    nostrils = cKDTree(lm[31:36]).query(pts)[0] < 5_000
    upper = y > lm[30, 1]  # above the nose tip
    rows, cols = np.divmod(layout.texel_index[upper], layout.size)
    box = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1) if upper.any() else (0, 0, 0, 0)
    # under each eye: from the lower lid down to the nose tip, the eye's width plus 5 mm a side
    under = np.zeros(len(pts), np.int8)
    for side, (a, b, lo) in enumerate(((36, 39, [40, 41]), (42, 45, [46, 47])), start=1):
        x0, x1 = sorted((lm[a, 0], lm[b, 0]))
        under[(pts[:, 0] > x0 - 5_000) & (pts[:, 0] < x1 + 5_000) & (y < lm[lo, 1].min()) & (y > lm[30, 1])] = side
    width = float(np.mean([np.linalg.norm(lm[39] - lm[36]), np.linalg.norm(lm[45] - lm[42])]))
    ridge = (np.abs(pts[:, 0]) < NOSE_RIDGE_UM) & (y < lm[[39, 42], 1].mean()) & (y > lm[33, 1])
    return _Regions(band, near_eye | brow | lips | nostrils, near_eye | lips | nostrils, upper,
                    mirror_texels(layout, mean, bfm.uv), box, under, ridge, pts[:, 0].astype(np.float32),
                    pts[:, 1].astype(np.float32), width)


def detect(texture: np.ndarray, mask: np.ndarray, layout, bfm, openings: dict) -> np.ndarray:
    """(S, S) bool occluder mask in UV space (see the module docstring)."""
    s = layout.size
    reg = _regions(layout, bfm, openings)
    flat = layout.texel_index
    obs = mask.reshape(-1)[flat] > 0
    lab = _lab(texture.reshape(-1, 3)[flat])
    ref = lab[reg.band & obs]
    if len(ref) < 200:  # too little skin seen to judge: nothing is removed
        return np.zeros((s, s), bool)
    med = np.median(ref, 0)
    mad = np.maximum(np.median(np.abs(ref - med), 0) * 1.4826, [2.0, 1.5, 1.5])
    z_chroma = np.sqrt((((lab[:, 1:] - med[1:]) / mad[1:]) ** 2).sum(1))
    natural, upper = reg.natural, reg.upper
    dark = (lab[:, 0] < med[0] - max(DARK_Z * mad[0], DARK_MIN_L)) & upper
    # thin dark structures (glasses rims, strands of hair): a black-hat (closing minus the
    # image) of the lightness, wider than a rim and narrower than a brow or a lid crease
    light = np.zeros(s * s, np.float32)
    light[flat] = lab[:, 0]
    k = max(int(round(RIM_PX * s / 1024)) | 1, 3)
    # only the upper face uses it: work on its bounding box plus the closing's reach (2k px),
    # which gives the same values there at a fraction of the 1024² cost
    r0, r1, c0, c1 = reg.upper_box
    pad = 2 * k
    r0, c0, r1, c1 = max(r0 - pad, 0), max(c0 - pad, 0), min(r1 + pad, s), min(c1 + pad, s)
    box = light.reshape(s, s)[r0:r1, c0:c1]
    hat_img = np.zeros((s, s), np.float32)
    hat_img[r0:r1, c0:c1] = cv2.morphologyEx(box, cv2.MORPH_BLACKHAT,
                                             cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    hat = hat_img.reshape(-1)[flat]
    dark |= (hat > RIM_HAT_L) & upper
    occ = obs & ~natural & ((z_chroma > CHROMA_Z) | dark)
    out = np.zeros(s * s, np.uint8)
    out[flat[occ]] = 255
    out = out.reshape(s, s)
    out = cv2.morphologyEx(out, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    strong = _rims(out, layout, reg)
    # the line responses run at half resolution from 1024² on (the lines are >= 4 texels wide
    # there): 4x less work
    f = 2 if s >= 1024 else 1
    # thin light lines (metal rims): seeds of their own when no dark or coloured rim was found
    bright_img = np.zeros((s, s), np.float32)
    bright_img[r0:r1, c0:c1] = _at_scale(lambda x: line_response(x, s // f, dark=False), box, f)
    # not in the brows or lid creases (the skin between a brow and a dark top bar is a light
    # line), nor on the nose's ridge: a light rim's upper half there stays
    bright = (bright_img.reshape(-1)[flat] > LIGHT_LINE_L) & obs & upper & ~natural & ~reg.nose_ridge
    if strong is None:
        seeds = np.zeros(s * s, np.uint8)
        seeds[flat[bright]] = 255
        g = max(int(round(LIGHT_GAP_PX * s / 1024)), 1)
        closed = cv2.morphologyEx(seeds.reshape(s, s), cv2.MORPH_CLOSE,
                                  cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * g + 1, 2 * g + 1)))
        strong = _rims(closed, layout, reg, LIGHT_RIM_SPAN, LIGHT_RIM_RISE)
        if strong is not None:
            strong &= seeds.reshape(s, s) > 0  # the glint itself, not the bridged gaps
            out[strong] = 255
    if strong is not None:  # spectacles: complete the frame (step 4), only texels the photo saw
        line_img = np.zeros((s, s), np.float32)
        line_img[r0:r1, c0:c1] = _at_scale(lambda x: line_response(x, s // f), box, f)
        arm_img = np.zeros((s, s), np.float32)
        arm_n = max(int(round(ARM_LEN_PX * s / f / 1024)) | 1, 5)
        arm_img[r0:r1, c0:c1] = _at_scale(lambda x: _open_lines(x, arm_n), hat_img[r0:r1, c0:c1], f)
        thin = (line_img.reshape(-1)[flat] > LINE_HAT_L) & ~reg.hard
        # wide, long and straight (temple arms): not in the brow band, where a brow is all three
        wide = (arm_img.reshape(-1)[flat] > ARM_HAT_L) & ~natural
        # grey (a metal or translucent frame is far less coloured than skin) and darker
        chroma = np.hypot(lab[:, 1], lab[:, 2])
        grey = (chroma < np.hypot(med[1], med[2]) - GREY_C) & (lab[:, 0] < med[0] - GREY_DL) & ~natural
        cand = np.zeros(s * s, np.uint8)
        cand[flat[obs & upper & (thin | wide | grey)]] = 255
        cand[flat[bright]] = 255
        out, frame = _grow(out, strong, cand.reshape(s, s))
        # a lens bevel glints next to the rims: the frame takes a wider margin
        g = max(int(round(FRAME_GROW_PX * s / 1024)), 1)
        out[cv2.dilate(frame.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * g + 1, 2 * g + 1))) > 0] = 255
    k = max(int(round(GROW_PX * s / 1024)), 1)
    out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    seen = (out > 0) & layout.chart & (mask > 0)
    # texels the photo did not see were filled from their mirror by the unwrap: where that
    # mirror is an occluder, the fill copied it (glasses on the hidden side): out too
    hidden = ~obs & seen.reshape(-1)[reg.mirror]
    full = seen.reshape(-1).copy()
    full[flat[hidden]] = True
    return full.reshape(s, s)


def line_response(light: np.ndarray, size: int, dark: bool = True) -> np.ndarray:
    """(H, W) float32 Lab-L units: how much darker (``dark``; else lighter) than its
    surroundings each texel is along a thin straight-ish line (see step 4 of the module
    docstring): the black-hat (top-hat) of the lightness ``light`` with a ``LINE_HAT_PX`` disc,
    opened with line segments of ``LINE_LEN_PX`` in 12 directions (max over directions).
    ``size``: the texture's side."""
    k = max(int(round(LINE_HAT_PX * size / 1024)) | 1, 3)
    hat = cv2.morphologyEx(np.ascontiguousarray(light, np.float32), cv2.MORPH_BLACKHAT if dark else cv2.MORPH_TOPHAT,
                           cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return _open_lines(hat, max(int(round(LINE_LEN_PX * size / 1024)) | 1, 5))


def _at_scale(fn, img: np.ndarray, f: int) -> np.ndarray:
    """``fn`` applied to ``img`` shrunk by ``f`` (area average), brought back to its size."""
    if f == 1:
        return fn(img)
    h, w = img.shape
    small = cv2.resize(img, (max(w // f, 1), max(h // f, 1)), interpolation=cv2.INTER_AREA)
    return cv2.resize(fn(small), (w, h), interpolation=cv2.INTER_LINEAR)


def _open_lines(hat: np.ndarray, n: int) -> np.ndarray:
    """(H, W): the max over 12 directions of ``hat`` opened with an n-texel line segment:
    at each texel, the largest value held all along some straight run of n through it."""
    best = np.zeros_like(hat)
    for ang in np.arange(12) * np.pi / 12:
        se = np.zeros((n, n), np.uint8)
        h = (n - 1) / 2
        dx, dy = h * np.cos(ang), h * np.sin(ang)
        cv2.line(se, (int(round(h - dx)), int(round(h - dy))), (int(round(h + dx)), int(round(h + dy))), 1, 1)
        np.maximum(best, cv2.morphologyEx(hat, cv2.MORPH_OPEN, se), out=best)
    return best


def _rims(seeds: np.ndarray, layout, reg: _Regions, span: float = RIM_SPAN,
          rise: float = RIM_RISE) -> np.ndarray | None:
    """(S, S) bool: the seed components that are spectacle rims (each spans ``span`` of
    the eye width under an eye and rises ``rise`` of it), or None unless there are such
    rims at both eyes."""
    n, lab = cv2.connectedComponents((seeds > 0).astype(np.uint8), connectivity=8)
    lab_k = lab.reshape(-1)[layout.texel_index]
    rim = np.zeros(n, bool)
    on = lab_k > 0
    ylo, yhi = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(ylo, lab_k[on], reg.y_um[on])
    np.maximum.at(yhi, lab_k[on], reg.y_um[on])
    rises = (yhi - ylo) >= rise * reg.eye_width_um
    for side in (1, 2):
        sel = (reg.under_eye == side) & (lab_k > 0)
        lo = np.full(n, np.inf)
        hi = np.full(n, -np.inf)
        np.minimum.at(lo, lab_k[sel], reg.x_um[sel])
        np.maximum.at(hi, lab_k[sel], reg.x_um[sel])
        ok = ((hi - lo) >= span * reg.eye_width_um) & rises
        if not ok.any():
            return None  # no rim under this eye: no spectacles to complete
        rim |= ok
    return rim[lab]


def _grow(seeds: np.ndarray, strong: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((S, S) uint8 ``seeds`` plus every connected piece of ``cand`` that touches
    ``strong`` (hysteresis), (S, S) bool: the whole frame so found)."""
    both = ((cand > 0) | strong).astype(np.uint8)
    n, lab = cv2.connectedComponents(both, connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(lab[strong])] = True
    keep[0] = False
    out = seeds.copy()
    frame = keep[lab]
    out[frame & (cand > 0)] = 255
    return out, frame & ((cand > 0) | strong)


def remove(texture: np.ndarray, mask: np.ndarray, occ: np.ndarray, layout, bfm,
           openings: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(texture, mask) with the occluded texels replaced (mirror, else push-pull inpaint)
    and dropped from the observation mask. Inputs are not modified."""
    from facedet3d.fit.texture import push_pull_fill

    if not occ.any():
        return texture, mask
    s = layout.size
    tex = texture.reshape(-1, 3).copy()
    flat = layout.texel_index
    mir = _regions(layout, bfm, openings).mirror if openings is not None else \
        mirror_texels(layout, bfm.mean.astype(np.float64), bfm.uv)
    occ_f, obs_f = occ.reshape(-1), mask.reshape(-1) > 0
    # the mirror texel must be clear of the occluder by a margin: the two sides never match
    # to the texel, and a mirror just beside the other side's rim copies its glint or shadow
    g = max(int(round(MIRROR_CLEAR_PX * s / 1024)), 1)
    near = cv2.dilate(occ.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * g + 1, 2 * g + 1)))
    use = occ_f[flat] & obs_f[flat] & obs_f[mir] & (near.reshape(-1)[mir] == 0)
    tex[flat[use]] = texture.reshape(-1, 3)[mir[use]]
    filled = np.zeros(s * s, bool)
    filled[flat[use]] = True
    hole = occ_f & ~filled
    if hole.any():
        w = (~hole.reshape(s, s) & layout.chart).astype(np.float32)
        pp = push_pull_fill(tex.reshape(s, s, 3).astype(np.float32), w)
        tex[hole] = np.clip(np.round(pp.reshape(-1, 3)[hole]), 0, 255)
    new_mask = mask.copy()
    new_mask[occ] = 0
    return tex.reshape(s, s, 3).astype(np.uint8), new_mask
