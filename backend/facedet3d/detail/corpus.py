"""Procedural wrinkle corpus in the BFM UV layout (training data where no real detail maps are).

Every map is (S, S) float32, signed displacement in METRES along the normal (negative = into
the skin), row 0 = top of UV space (v = 1), the same layout as ``FaceAsset.detail_input``.
Maps are rendered analytically from (u, v), so any resolution or window of the same
identity is consistent (256² for DetP, 1024²/4096²-scale patches for the super-resolution).

Anatomy is placed from the 68 landmarks' UV positions (``bfm.uv[bfm.landmarks]``; u = 0.5
is the face's mirror line, u < 0.5 the subject's right). Each AU deepens its folds:
AU1 medial / AU2 lateral horizontal forehead lines (one shared set of lines, so 1+2 joins
them), AU4 vertical glabellar lines and the nasion crease, AU6 crow's feet, lower-lid folds
and a cheek bulge, AU7 the lower-lid folds, AU9 bunny lines and the nasal-root crease,
AU10 the upper nasolabial fold, AU12 the whole nasolabial fold and a cheek bulge, AU14
dimples lateral to the mouth corners, AU15 the marionette lines, AU15/AU17 the
mentolabial crease, AU17 chin dimpling (peau d'orange), AU20 oblique lower-face stretch
lines, AU23 vertical perioral lines; AU5 adds a little to the forehead lines, AU25/26 to
the nasolabial folds, AU45 to the crow's feet.

Identity (``Identity``, drawn from one seed): age in years (depth and number of lines grow
with it), the exact positions/curvature/spacing of every line, left-right asymmetric gains,
persistent lines (each fold keeps a share of its depth at rest, growing with age), pores,
moles, broad blotches and photo-estimate nuisance strokes, an optional half-face fade (as an
unseen side in a photo's estimate), and a synthetic identity code standing in for a FaceNet
embedding. All static features are identical in every expression of the identity.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from facedet3d.rig.facs import AU_IDS

N_AU = len(AU_IDS)
AU_INDEX = {au: i for i, au in enumerate(AU_IDS)}
EMBED_DIM = 512
_LATENT = 16
# Fold depths below are for a mid-aged face at rest share 0; dynamic wrinkles at full AU
# intensity are deeper than the etched ones (forehead furrows and crow's feet of raised brows
# and a broad smile reach several tenths of a millimetre), hence this common factor.
FOLD_DEPTH_GAIN = 1.6


@functools.lru_cache(maxsize=1)
def landmarks_uv() -> np.ndarray:
    """(68, 2) float64 UV positions of the iBUG-68 landmarks on the BFM layout."""
    from facedet3d.assets import bfm as bfm_mod

    b = bfm_mod.load_bfm()
    return b.uv[b.landmarks].astype(np.float64)


@functools.lru_cache(maxsize=1)
def _chart_1024() -> np.ndarray:
    from facedet3d.fit.texture import uv_layout

    c = uv_layout(1024).chart.astype(np.float32)
    c = cv2.erode(c, np.ones((5, 5), np.uint8))
    return cv2.GaussianBlur(c, (0, 0), 4.0)


def chart_weight(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Soft chart mask (1 inside the UV chart, fading to 0 over ~1 % of the map at its
    border) at arbitrary UV positions (bilinear lookup of a 1024² map)."""
    c = _chart_1024()
    x = (u * 1024 - 0.5).astype(np.float32)
    y = ((1 - v) * 1024 - 0.5).astype(np.float32)
    return cv2.remap(c, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def uv_grid(size: int, window: tuple[float, float, float, float] | None = None):
    """(u, v) pixel-centre coordinates of a ``size``² map, or of the (rows, cols) pixels of
    ``window = (row0, col0, rows, cols)`` of it. Row 0 = v 1."""
    r0, c0, nr, nc = window if window is not None else (0, 0, size, size)
    u = (np.arange(c0, c0 + nc, dtype=np.float64) + 0.5) / size
    v = 1.0 - (np.arange(r0, r0 + nr, dtype=np.float64) + 0.5) / size
    return np.meshgrid(u, v)


def value_noise(u, v, cell: float, seed: int) -> np.ndarray:
    """Smooth lattice value noise in [-1, 1] with feature size ``cell`` (UV units),
    resolution independent (hashed integer lattice, smoothstep interpolation)."""
    x, y = u / cell, v / cell
    xi, yi = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - xi, y - yi
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)

    def h(a, b):
        n = (a * 374761393 + b * 668265263 + seed * 2147483647) & 0xFFFFFFFF
        n = ((n ^ (n >> 13)) * 1274126177) & 0xFFFFFFFF
        return ((n ^ (n >> 16)) & 0xFFFF) / 32767.5 - 1.0

    top = h(xi, yi) * (1 - fx) + h(xi + 1, yi) * fx
    bot = h(xi, yi + 1) * (1 - fx) + h(xi + 1, yi + 1) * fx
    return top * (1 - fy) + bot * fy


@dataclass
class Line:
    """One fold: a parabolic arc from its centre along direction ``angle``.

    centre (u, v); angle radians (chord direction); half: chord half-length; sag: offset of
    the arc's middle from the chord (UV units, toward the chord normal); width: Gaussian
    sigma across (UV units); depth: metres at full drive; drivers: ((AU index, gain,
    s_lo, s_hi), ...) — the AU deepens the part of the arc with s/half in [s_lo, s_hi];
    rest: share of the depth present at rest (persistent line); sign: -1 fold, +1 bulge.
    """

    centre: tuple[float, float]
    angle: float
    half: float
    sag: float
    width: float
    depth: float
    drivers: tuple = ()
    rest: float = 0.0
    sign: float = -1.0
    side: int = 0  # -1 subject's right half, +1 left, 0 both/midline (picks the AU gain)


@dataclass
class Identity:
    seed: int
    age: float
    lines: list = field(default_factory=list)
    embedding: np.ndarray | None = None  # (512,) unit vector, synthetic identity code
    pore_amp: float = 1e-5
    blotch_amp: float = 1e-5
    chin_amp: float = 5e-5
    moles: list = field(default_factory=list)  # (u, v, radius, height)
    fade: tuple | None = None  # (side -1/+1, u_start) unseen half face
    gain: np.ndarray | None = None  # (N_AU, 2) per-side expression gain
    _cache: dict = field(default_factory=dict, repr=False)  # grid + static part, per size/window


def _age_factor(age: float) -> float:
    return float(np.clip((age - 15.0) / 50.0, 0.0, 1.3))


@functools.lru_cache(maxsize=1)
def _proj() -> np.ndarray:
    """Fixed random projection latent -> synthetic 512-d identity code."""
    return np.random.default_rng(12345).normal(size=(EMBED_DIM, _LATENT)) / np.sqrt(_LATENT)


def make_identity(seed: int, age: float | None = None) -> Identity:
    """Draw one identity (see the module docstring) from ``seed``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=_LATENT)
    age = float(rng.uniform(18, 80) if age is None else age)
    fa = _age_factor(age)
    lm = landmarks_uv() + rng.normal(scale=0.004, size=(68, 2)) * np.r_[1, 1]
    ident = Identity(seed=seed, age=age)
    emb = _proj() @ z + 0.05 * rng.normal(size=EMBED_DIM)
    ident.embedding = (emb / np.linalg.norm(emb)).astype(np.float32)
    depth_scale = float(np.exp(0.25 * z[0])) * (0.55 + 0.6 * fa)  # metres multiplier
    rest = float(np.clip(0.1 + 0.3 * fa + 0.05 * z[1], 0.0, 0.55))
    ident.gain = np.exp(0.15 * rng.normal(size=(N_AU, 1)) + 0.1 * rng.normal(size=(N_AU, 2)))
    ident.pore_amp = float(6e-6 * (1 + fa) * np.exp(0.3 * z[2]))
    ident.blotch_amp = float(rng.uniform(0.5e-5, 2.5e-5))
    ident.chin_amp = float(6e-5 * np.exp(0.3 * z[3]))
    A = AU_INDEX
    L = ident.lines

    def add(c, ang, half, sag, width, depth, drivers, sign=-1.0, rest_=None, side=0):
        L.append(Line((float(c[0]), float(c[1])), float(ang), float(half), float(sag), float(width),
                      float(depth * depth_scale * FOLD_DEPTH_GAIN), tuple(drivers), rest if rest_ is None else rest_,
                      sign, side))

    jit = lambda s=1.0: rng.normal(scale=s)  # noqa: E731
    brow_v = lm[[19, 24], 1].mean()
    # Forehead: one set of long lines; AU1 drives the middle, AU2 the sides.
    n_fh = int(rng.integers(3, 5) + round(2 * fa))
    spacing = rng.uniform(0.0205, 0.0235)
    for k in range(n_fh):
        v = brow_v + 0.035 + k * spacing + jit(0.001)
        if v > 0.985:
            break
        half = rng.uniform(0.17, 0.26) * (1 - 0.04 * k)
        add((0.5 + jit(0.004), v), jit(0.01), half, rng.uniform(0.0, 0.02), rng.uniform(0.0022, 0.0035),
            rng.uniform(1.3e-4, 2.2e-4), [(A[1], 1.0, -0.45, 0.45), (A[2], 1.0, -1, -0.3), (A[2], 1.0, 0.3, 1),
                                          (A[5], 0.25, -1, 1)])
    # Glabella (AU4): vertical lines either side of the midline, and the nasion crease.
    for s in (-1, 1):
        for k in range(int(rng.integers(1, 3) + (fa > 0.5))):
            du = 0.016 + 0.014 * k + jit(0.0015)
            add((0.5 + s * du, brow_v - 0.005 + jit(0.002)), np.pi / 2 - s * (0.12 + 0.08 * k + jit(0.03)),
                rng.uniform(0.025, 0.04), jit(0.004), rng.uniform(0.0022, 0.0032), rng.uniform(1.6e-4, 2.6e-4),
                [(A[4], 1.0, -1, 1)], side=s)
    add((0.5, lm[27, 1] + 0.012 + jit(0.0015)), jit(0.02), rng.uniform(0.025, 0.04), -0.004,
        0.003, rng.uniform(0.8e-4, 1.4e-4), [(A[4], 0.6, -1, 1), (A[9], 1.0, -1, 1)])
    for s in (-1, 1):
        eo = lm[36] if s < 0 else lm[45]  # outer eye corner
        ei = lm[39] if s < 0 else lm[42]
        lower = lm[[40, 41]].mean(0) if s < 0 else lm[[46, 47]].mean(0)
        # Crow's feet (AU6, some AU45): a fan of lines from the outer canthus.
        for k in range(min(6, int(rng.integers(3, 5) + round(1.5 * fa)))):
            ang = (-0.5, 0.45, -0.05, 0.2, -0.3, 0.65)[k] + jit(0.04)
            half = rng.uniform(0.018, 0.024)
            r = 0.022 + half
            c = eo + np.array([s * np.cos(ang), np.sin(ang)]) * r
            add(c, ang if s > 0 else np.pi - ang, half, jit(0.002), rng.uniform(0.0018, 0.0026),
                rng.uniform(1.2e-4, 2.0e-4), [(A[6], 1.0, -1, 1), (A[45], 0.3, -1, 1)], side=s)
        # Lower-lid folds (AU6, AU7), following the lid.
        for k in range(int(rng.integers(1, 3))):
            c = (ei + eo) / 2 * np.r_[1, 0] + np.r_[0, lower[1] - 0.02 - 0.013 * k + jit(0.001)]
            add(c, (0.15 if s > 0 else -0.15) + jit(0.02), abs(eo[0] - ei[0]) * 0.55, -0.006,
                rng.uniform(0.0022, 0.003), rng.uniform(0.9e-4, 1.5e-4), [(A[6], 0.8, -1, 1), (A[7], 1.0, -1, 1)],
                side=s)
        # Cheek bulge (AU6 + AU12): broad, positive.
        add(np.array([eo[0] * 0.6 + ei[0] * 0.4, lower[1] - 0.1]), 0.0, 0.04, 0.0, 0.02,
            rng.uniform(1.0e-4, 2.0e-4), [(A[6], 0.5, -1, 1), (A[12], 1.0, -1, 1)], sign=1.0, rest_=0.0, side=s)
        # Bunny lines (AU9): short oblique lines on the side of the nasal bridge.
        for k in range(int(rng.integers(2, 4))):
            c = np.array([0.5 + s * (0.033 + jit(0.002)), lm[28, 1] + 0.011 * k + jit(0.0015)])
            ang = 0.7 + jit(0.06)  # down-and-outward
            add(c, -ang if s > 0 else ang, rng.uniform(0.012, 0.02), jit(0.002), 0.0022,
                rng.uniform(1.2e-4, 2.0e-4), [(A[9], 1.0, -1, 1)], side=s)
        # Nasolabial fold: nose wing -> lateral of the mouth corner (AU10 upper, AU12 all).
        ala, corner = (lm[31] if s < 0 else lm[35]), (lm[48] if s < 0 else lm[54])
        p0 = ala + np.r_[s * rng.uniform(0.024, 0.03), rng.uniform(0.006, 0.014)]
        p1 = corner + np.r_[s * rng.uniform(0.026, 0.034), -rng.uniform(0.03, 0.045)]
        ch = p1 - p0
        add((p0 + p1) / 2, np.arctan2(ch[1], ch[0]), np.linalg.norm(ch) / 2, -s * np.sign(ch[1]) * rng.uniform(0.008, 0.02),
            rng.uniform(0.003, 0.0045), rng.uniform(2.0e-4, 3.2e-4),
            [(A[12], 1.0, -1, 1), (A[10], 0.8, -1, 0.1), (A[26], 0.25, -1, 1), (A[25], 0.15, -1, 1)], side=s)
        # Dimples (AU14): a short crease lateral to the mouth corner.
        add(corner + np.r_[s * rng.uniform(0.028, 0.032), jit(0.002)], np.pi / 2 + s * 0.2, rng.uniform(0.01, 0.016),
            s * 0.003, rng.uniform(0.003, 0.004), rng.uniform(1.5e-4, 2.5e-4), [(A[14], 1.0, -1, 1)], side=s)
        # Marionette lines (AU15): from the mouth corner down and out.
        add(corner + np.r_[s * 0.012, -0.035 + jit(0.0015)], -np.pi / 2 + s * 0.25, rng.uniform(0.025, 0.035),
            s * 0.004, 0.003, rng.uniform(1.2e-4, 2.0e-4), [(A[15], 1.0, -1, 1)], side=s)
        # Lower-face stretch (AU20): oblique lines lateral to the mouth.
        for k in range(int(rng.integers(2, 4))):
            c = corner + np.r_[s * (0.045 + 0.015 * k + jit(0.0015)), -0.02 - 0.012 * k]
            add(c, -np.pi / 2 + s * (0.47 + jit(0.04)), rng.uniform(0.02, 0.03), jit(0.002), 0.0022,
                rng.uniform(0.8e-4, 1.3e-4), [(A[20], 1.0, -1, 1)], side=s)
        # Perioral lines (AU23): short vertical lines on the upper lip.
        for k in range(int(rng.integers(2, 4) + round(2 * fa))):
            c = np.array([0.5 + s * (0.01 + 0.008 * k + jit(0.0015)), (lm[51, 1] + lm[33, 1]) / 2 + jit(0.002)])
            add(c, np.pi / 2 + s * 0.1 * k + jit(0.05), rng.uniform(0.008, 0.014), 0.0, 0.0016, rng.uniform(0.8e-4, 1.3e-4),
                [(A[23], 1.0, -1, 1)], side=s)
    # Mentolabial crease (AU17 most, AU15 some): an arc between lower lip and chin.
    mv = lm[57, 1] * 0.55 + lm[8, 1] * 0.45 + jit(0.002)
    add((0.5 + jit(0.002), mv), jit(0.02), rng.uniform(0.04, 0.06), -rng.uniform(0.006, 0.012), 0.004,
        rng.uniform(1.8e-4, 2.8e-4), [(A[17], 1.0, -1, 1), (A[15], 0.5, -1, 1)])
    # Persistent lines: a few drawn lines get a larger resting share (the identity's etched lines).
    for ln in L:
        if ln.sign < 0 and rng.random() < 0.25 + 0.3 * fa:
            ln.rest = min(0.7, ln.rest + rng.uniform(0.1, 0.3))
    # Moles and nuisance strokes (photo-estimate artefacts: glasses rims, hair edges).
    for _ in range(int(rng.integers(0, 4))):
        ident.moles.append((rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.95), rng.uniform(0.002, 0.005),
                            rng.uniform(0.5e-4, 1.5e-4) * rng.choice([-1, 1])))
    # Photo estimates of real faces carry many such strokes, some deep (glasses rims, brow and
    # hair edges reach 0.2 mm there): a heavy tail, so real inputs are not out of distribution.
    for _ in range(int(rng.poisson(3.0))):
        L.append(Line((rng.uniform(0.2, 0.8), rng.uniform(0.35, 0.95)), rng.uniform(0, np.pi), rng.uniform(0.03, 0.12),
                      rng.normal(scale=0.02), rng.uniform(0.0015, 0.006), float(np.exp(rng.uniform(np.log(0.3e-4),
                                                                                                   np.log(2.0e-4)))),
                      (), 1.0, float(rng.choice([-1, 1]))))
    if rng.random() < 0.2:
        ident.fade = (float(rng.choice([-1, 1])), float(rng.uniform(0.58, 0.8)))
    return ident


def _drive(ln: Line, s: np.ndarray, au: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Depth envelope along the arc (s in [-1, 1]) for AU vector ``au``."""
    env = np.full_like(s, ln.rest)
    side = ln.side
    for a, g, lo, hi in ln.drivers:
        inten = float(au[a])
        if inten <= 0:
            continue
        gsel = gain[a, 0] if side < 0 else gain[a, 1] if side > 0 else gain[a].mean()
        win = np.clip((s - lo) / 0.25 + 1, 0, 1) * np.clip((hi - s) / 0.25 + 1, 0, 1) if (lo > -1 or hi < 1) \
            else np.ones_like(s)
        env = env + (1 - ln.rest) * g * gsel * inten ** 1.3 * win
    taper = np.clip(1 - s * s, 0, 1) ** 0.7
    return env * taper


def render(ident: Identity, aus, size: int = 256, window=None, static: bool = True) -> np.ndarray:
    """The identity's detail map under AU vector ``aus`` ((17,) in [0, 1], AU_IDS order).

    size: map side in texels; window: optional (row0, col0, rows, cols) part of it.
    static: include pores, blotches, moles (the expression-free part is computed once per
    identity, size and window, and reused). Returns float32 metres.
    """
    key = (size, window, static)
    if key not in ident._cache:
        ident._cache.clear()  # one grid at a time (pairs share it)
        u, v = uv_grid(size, window)
        base = _static_part(ident, u, v) if static else np.zeros_like(u)
        ident._cache[key] = (u, v, base, _weight(ident, u, v))
    u, v, base, wgt = ident._cache[key]
    out = ((base + _lines_part(ident, aus, u, v, size)) * wgt).astype(np.float32)
    out[np.abs(out) < 1e-15] = 0.0  # no float32 denormals (they make convolutions crawl)
    return out


def _weight(ident: Identity, u, v) -> np.ndarray:
    wgt = chart_weight(u, v)
    if ident.fade is not None:
        side, start = ident.fade
        x = 0.5 + side * (u - 0.5)
        wgt = wgt * np.clip((start + 0.08 - x) / 0.08, 0, 1)
    return wgt


def _static_part(ident: Identity, u, v) -> np.ndarray:
    out = ident.pore_amp * (value_noise(u, v, 0.0022, ident.seed) - 0.6 * value_noise(u, v, 0.006, ident.seed + 1))
    out += ident.blotch_amp * value_noise(u, v, 0.03, ident.seed + 2)
    for mu, mv, r, h in ident.moles:
        out += h * np.exp(-0.5 * ((u - mu) ** 2 + (v - mv) ** 2) / r ** 2)
    return out


def _lines_part(ident: Identity, aus, u, v, size: int) -> np.ndarray:
    au = np.clip(np.asarray(aus, np.float64).reshape(N_AU), 0, 1)
    out = np.zeros_like(u)
    texel = 1.0 / size
    for ln in ident.lines:
        cu, cv = ln.centre
        reach = ln.half + abs(ln.sag) + 4 * ln.width + 2 * texel
        box = (np.abs(u[0] - cu) < reach), (np.abs(v[:, 0] - cv) < reach)
        if not box[0].any() or not box[1].any():
            continue
        cols, rows = np.flatnonzero(box[0]), np.flatnonzero(box[1])
        sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        du, dv = u[sl] - cu, v[sl] - cv
        ca, sa = np.cos(ln.angle), np.sin(ln.angle)
        t, n = du * ca + dv * sa, -du * sa + dv * ca
        s = t / ln.half
        n0 = ln.sag * (1 - s * s)
        slope = -2 * ln.sag * s / ln.half
        dist = (n - n0) / np.sqrt(1 + slope * slope)
        w = np.sqrt(ln.width ** 2 + (0.35 * texel) ** 2)  # never thinner than the texel grid
        env = _drive(ln, np.clip(s, -1, 1), au, ident.gain) * (np.abs(s) < 1)
        if ln.sign < 0:  # a fold: a valley with faint shoulders
            prof = np.exp(-0.5 * (dist / w) ** 2) - 0.25 * np.exp(-0.5 * (dist / (2.2 * w)) ** 2)
        else:  # a bulge: smoother ends
            prof = np.exp(-0.5 * (dist / w) ** 2) * np.clip(1 - s * s, 0, 1)
        out[sl] += ln.sign * ln.depth * env * prof * (ln.width / w)
    # Chin dimpling (AU17): pits over the chin pad.
    a17 = float(au[AU_INDEX[17]])
    if a17 > 0:
        lm = landmarks_uv()
        cu, cv = 0.5, lm[8, 1] * 0.6 + lm[57, 1] * 0.4
        bump = np.exp(-0.5 * (((u - cu) / 0.045) ** 2 + ((v - cv) / 0.03) ** 2))
        pits = np.minimum(value_noise(u, v, 0.006, ident.seed + 7), 0.2)
        out += ident.chin_amp * a17 ** 1.3 * bump * pits
    return out


def au_region(au: int, size: int = 256, margin: float = 0.03) -> np.ndarray:
    """(size, size) bool: the anatomical region of an AU's folds, from the landmarks alone
    (independent of ``render``), with ``margin`` UV units around it. Used by the tests."""
    lm = landmarks_uv()
    u, v = uv_grid(size)
    m = margin
    brow_v = lm[[19, 24], 1].mean()
    face_u = (lm[0, 0], lm[16, 0])
    ad = np.abs(u - 0.5)

    def box(u0, u1, v0, v1, mirrored=True):
        uu = ad + 0.5 if mirrored else u
        return (uu >= u0 - m) & (uu <= u1 + m) & (v >= v0 - m) & (v <= v1 + m)

    eo, ei = lm[45], lm[42]
    corner, ala = lm[54], lm[35]
    R = {
        1: box(0.5, 0.5 + 0.26, brow_v + 0.01, 1.0),
        2: box(0.5 + 0.05, face_u[1], brow_v - 0.01, 1.0),
        4: box(0.5, 0.56, lm[27, 1], brow_v + 0.04),
        5: box(0.5, face_u[1], brow_v + 0.01, 1.0),
        6: box(ei[0] - 0.04, eo[0] + 0.07, eo[1] - 0.16, eo[1] + 0.06),
        7: box(ei[0] - 0.02, eo[0] + 0.03, eo[1] - 0.07, eo[1]),
        9: box(0.5, 0.56, lm[29, 1] - 0.02, lm[27, 1] + 0.03),
        10: box(0.5 + 0.02, ala[0] + 0.08, corner[1] - 0.02, ala[1] + 0.04),
        12: box(0.5 + 0.02, eo[0] + 0.02, corner[1] - 0.08, ala[1] + 0.1),
        14: box(corner[0], corner[0] + 0.06, corner[1] - 0.04, corner[1] + 0.04),
        15: box(0.5, corner[0] + 0.04, lm[8, 1], corner[1]),
        17: box(0.5, 0.58, lm[8, 1] - 0.01, lm[57, 1]),
        20: box(corner[0], corner[0] + 0.12, corner[1] - 0.1, corner[1] + 0.02),
        23: box(0.5, 0.56, lm[51, 1], lm[33, 1]),
        25: box(0.5 + 0.02, ala[0] + 0.08, corner[1] - 0.08, ala[1] + 0.04),
        26: box(0.5 + 0.02, ala[0] + 0.08, corner[1] - 0.08, ala[1] + 0.04),
        45: box(eo[0], eo[0] + 0.07, eo[1] - 0.06, eo[1] + 0.06),
    }
    return R[au]


def random_aus(rng: np.random.Generator) -> np.ndarray:
    """An AU vector for training: sparse random AUs, or a scaled EMFACS preset, or neutral."""
    from facedet3d.rig.facs import PRESETS, normalise_aus

    r = rng.random()
    if r < 0.12:
        return np.zeros(N_AU, np.float32)
    if r < 0.45:
        name = list(PRESETS)[int(rng.integers(len(PRESETS)))]
        vec = normalise_aus(PRESETS[name]) * rng.uniform(0.3, 1.0)
        return np.clip(vec + (rng.random(N_AU) < 0.1) * rng.uniform(0, 0.5, N_AU), 0, 1).astype(np.float32)
    vec = (rng.random(N_AU) < rng.uniform(0.05, 0.3)) * rng.uniform(0, 1, N_AU)
    return vec.astype(np.float32)
