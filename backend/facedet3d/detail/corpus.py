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

Where each AU's folds lie, and their sizes and depths, is in ``detail.corpus_folds`` (one
function per fold family); the identity-level numbers are ``CorpusParams``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

# AU_INDEX, FOLD_DEPTH_GAIN and Line are re-exported: they were defined here before.
from facedet3d.detail.corpus_folds import AU_INDEX, FOLD_DEPTH_GAIN, FoldDrawer, Line, draw_folds  # noqa: F401
from facedet3d.rig.facs import AU_IDS

N_AU = len(AU_IDS)
EMBED_DIM = 512
_LATENT = 16


@functools.lru_cache(maxsize=1)
def landmarks_uv() -> np.ndarray:
    """(68, 2) float64 UV positions of the iBUG-68 landmarks on the BFM layout."""
    from facedet3d.assets import bfm as bfm_mod

    return bfm_mod.load_bfm().landmark_uv()


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


@dataclass(frozen=True)
class CorpusParams:
    """The identity-level numbers of :func:`make_identity` (the folds' own are in
    ``corpus_folds.FOLDS``). Lengths in UV units (the map spans about 250 mm of face, so
    0.004 UV is about 1 mm), heights and depths in metres; (lo, hi) pairs are uniform draws."""

    age_years: tuple[float, float] = (18, 80)
    landmark_jitter: float = 0.004          # UV sigma (~1 mm) moving each landmark, so anatomy varies
    embedding_noise: float = 0.05           # sigma added to the projected latent before normalising
    # Fold depth multiplier exp(depth_log_sigma z0) * (depth_young + depth_per_age * age factor).
    depth_log_sigma: float = 0.25
    depth_young: float = 0.55
    depth_per_age: float = 0.6
    # Resting share of every fold: clip(rest_base + rest_per_age * age factor + rest_sigma z1, 0, rest_max).
    rest_base: float = 0.1
    rest_per_age: float = 0.3
    rest_sigma: float = 0.05
    rest_max: float = 0.55
    # Per-AU expression gain exp(N(0, gain_sigma_au) + N(0, gain_sigma_side) per side).
    gain_sigma_au: float = 0.15
    gain_sigma_side: float = 0.1
    pore_m: float = 6e-6                    # pore relief amplitude (6 µm), x (1 + age factor)
    pore_log_sigma: float = 0.3
    blotch_m: tuple[float, float] = (0.5e-5, 2.5e-5)  # broad blotches, 5-25 µm
    chin_m: float = 6e-5                    # AU17 chin dimpling amplitude (60 µm)
    chin_log_sigma: float = 0.3
    # Etched (persistent) lines: a fold is etched with chance etched_p + etched_p_per_age x age factor
    # and gains etched_extra resting share, up to etched_max.
    etched_p: float = 0.25
    etched_p_per_age: float = 0.3
    etched_extra: tuple[float, float] = (0.1, 0.3)
    etched_max: float = 0.7
    # Moles: count rng.integers(lo, hi), centre u, v, radius (0.5-1.25 mm), height +-(50-150 µm).
    moles: tuple[int, int] = (0, 4)
    mole_u: tuple[float, float] = (0.2, 0.8)
    mole_v: tuple[float, float] = (0.3, 0.95)
    mole_radius: tuple[float, float] = (0.002, 0.005)
    mole_height_m: tuple[float, float] = (0.5e-4, 1.5e-4)
    # Nuisance strokes of photo estimates (glasses rims, brow and hair edges): Poisson count,
    # 7.5-30 mm half-length, 0.4-1.5 mm wide, log-uniform 30-200 µm deep, fully at rest.
    strokes_mean: float = 3.0
    stroke_u: tuple[float, float] = (0.2, 0.8)
    stroke_v: tuple[float, float] = (0.35, 0.95)
    stroke_half: tuple[float, float] = (0.03, 0.12)
    stroke_sag_sigma: float = 0.02
    stroke_width: tuple[float, float] = (0.0015, 0.006)
    stroke_depth_m: tuple[float, float] = (0.3e-4, 2.0e-4)
    # Half-face fade (an unseen side in a photo's estimate): chance, and where it starts
    # (distance from the mirror line on the faded side, mirrored to u).
    fade_p: float = 0.2
    fade_start: tuple[float, float] = (0.58, 0.8)


PARAMS = CorpusParams()


def make_identity(seed: int, age: float | None = None, p: CorpusParams = PARAMS) -> Identity:
    """Draw one identity (see the module docstring) from ``seed``. The order of the draws
    is fixed: a seed always gives the same identity (the shipped weights depend on it)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=_LATENT)
    age = float(rng.uniform(*p.age_years) if age is None else age)
    fa = _age_factor(age)
    lm = landmarks_uv() + rng.normal(scale=p.landmark_jitter, size=(68, 2))
    ident = Identity(seed=seed, age=age)
    emb = _proj() @ z + p.embedding_noise * rng.normal(size=EMBED_DIM)
    ident.embedding = (emb / np.linalg.norm(emb)).astype(np.float32)
    depth_scale = float(np.exp(p.depth_log_sigma * z[0])) * (p.depth_young + p.depth_per_age * fa)
    rest = float(np.clip(p.rest_base + p.rest_per_age * fa + p.rest_sigma * z[1], 0.0, p.rest_max))
    ident.gain = np.exp(p.gain_sigma_au * rng.normal(size=(N_AU, 1)) + p.gain_sigma_side * rng.normal(size=(N_AU, 2)))
    ident.pore_amp = float(p.pore_m * (1 + fa) * np.exp(p.pore_log_sigma * z[2]))
    ident.blotch_amp = float(rng.uniform(*p.blotch_m))
    ident.chin_amp = float(p.chin_m * np.exp(p.chin_log_sigma * z[3]))
    draw_folds(FoldDrawer(rng, depth_scale, rest, ident.lines), lm, fa)
    _etch(ident.lines, rng, fa, p)
    ident.moles.extend(_moles(rng, p))
    ident.lines.extend(_strokes(rng, p))
    if rng.random() < p.fade_p:
        ident.fade = (float(rng.choice([-1, 1])), float(rng.uniform(*p.fade_start)))
    return ident


def _etch(lines: list[Line], rng: np.random.Generator, fa: float, p: CorpusParams) -> None:
    """Persistent lines: some folds keep a larger resting share (the identity's etched lines)."""
    for ln in lines:
        if ln.sign < 0 and rng.random() < p.etched_p + p.etched_p_per_age * fa:
            ln.rest = min(p.etched_max, ln.rest + rng.uniform(*p.etched_extra))


def _moles(rng: np.random.Generator, p: CorpusParams) -> list[tuple]:
    """(u, v, radius, signed height) of a few moles (or pits)."""
    return [(rng.uniform(*p.mole_u), rng.uniform(*p.mole_v), rng.uniform(*p.mole_radius),
             rng.uniform(*p.mole_height_m) * rng.choice([-1, 1])) for _ in range(int(rng.integers(*p.moles)))]


def _strokes(rng: np.random.Generator, p: CorpusParams) -> list[Line]:
    """Photo-estimate nuisance strokes: real faces' estimates carry many, some deep (glasses
    rims, brow and hair edges reach 0.2 mm), a heavy tail so real inputs are not out of
    distribution. Not AU-driven, fully present at rest, either sign."""
    lo, hi = np.log(p.stroke_depth_m[0]), np.log(p.stroke_depth_m[1])
    return [Line((rng.uniform(*p.stroke_u), rng.uniform(*p.stroke_v)), rng.uniform(0, np.pi),
                 rng.uniform(*p.stroke_half), rng.normal(scale=p.stroke_sag_sigma), rng.uniform(*p.stroke_width),
                 float(np.exp(rng.uniform(lo, hi))), (), 1.0, float(rng.choice([-1, 1])))
            for _ in range(int(rng.poisson(p.strokes_mean)))]


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
