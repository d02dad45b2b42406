"""The 53 ICT-FaceKit FACS expression shapes transferred onto the BFM no-neck topology.

Transfer (once per asset version, cached as ``.npz`` keyed by the source checksums):

1. Similarity (Umeyama) from the ICT neutral to the BFM mean on the iBUG-68 landmarks both
   models define — jaw contour excluded, because BFM's jaw landmarks are fixed 3D points
   while ICT's follow the outline (assets README), so they are not the same anatomy.
2. Non-rigid registration: a 3D thin-plate-spline warp of the aligned ICT skin driven by the
   landmarks (exact), then two rounds of closest-point correspondences from BFM sample
   vertices (smoothed TPS, i.e. a regularised non-rigid ICP) that pull the ICT surface onto
   the BFM's.
3. Every BFM vertex is projected onto the warped ICT skin (closest point on a triangle, lid
   and lip skin only onto the same side); its barycentric coordinates on that ICT triangle
   carry each shape's displacement: ``delta_bfm = (s R) @ sum_j b_j delta_ict[j]``, with
   ``s R`` the similarity (centimetres -> micrometres, rotation). The warp's local Jacobian
   is deliberately *not* applied: ICT's inner lip landmarks are 0.7 mm apart, the BFM's
   3 mm, so the warp stretches 3x vertically between the lips and would triple every lip
   motion (lips crossing, folds); lid closure is made exact in step 6 instead.
4. BFM parts the ICT face does not cover (closest-point distance large) get a weight that
   falls smoothly to zero (smoothstep).
5. The motion is smoothed (label-aware: never across the lid/lip contact lines), and per
   shape the lips may close at most ``LIP_CLOSE_MAX`` of the BFM's rest gap between them
   (``_limit_lip_closure``): ICT's lips touch, the BFM's are a few mm apart with skin in
   between, so ICT's lip-pressing shapes would push the BFM's lips through each other.
6. The openings (the BFM has no eyeballs or mouth hole: skin runs over them) are filled
   from their rims (``_fill_opening``). Blinks: the strip between the lids' rims (rims
   included) collapses, in order, into a 0.3 mm band on the lower lid's closed line
   (``_close_lids``).
7. Nearly flat triangles (slivers) move affinely with their longest edge in every shape
   (``flatten_slivers``: any motion of their own tips them, alone or in blends of shapes).
   Any triangle still folded is relaxed away locally (``relax_folds``), then folded and
   nearly folded triangles are removed by the least vertex moves (``unfold``, a linear
   program per axis), so that blends of shapes do not fold either.

Units: BFM units (micrometres) inside; ``subject_blendshapes`` returns metres.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from facedet3d.assets import files as assets
from facedet3d.assets import bfm as bfm_mod
from facedet3d.assets import ict as ict_mod
from facedet3d.rig import seam
from facedet3d.rig.register import ICP_SMOOTHING, NO_JAW, register_skin  # noqa: F401  (re-exported)
from facedet3d.rig.geometry import (  # noqa: F401  (re-exported: tests and tools use rig.side_labels etc.)
    face_normals, flatten_slivers, lip_sides, flipped_faces, mesh_adjacency, mesh_edges, opening_masks, points_in_polygon,
    project_by_side, project_to_mesh, relax_folds, rims as _rims, side_labels, sliver_tips, smoothstep, umeyama,
    unfold,
)

RIG_VERSION = 5  # bump when the transfer algorithm changes (part of the cache key)
FALLOFF_MM = (3.0, 8.0)  # full motion below 3 mm from the ICT skin, none beyond 8 mm
SMOOTH_ITERS = 10  # ~2 mm smoothing radius on the BFM's ~1 mm edges
LID_STRIP_UM = 300.0  # closed lids: the skin between the rims' outer rows ends 0.3 mm high
LIP_CLOSE_MAX = 0.4  # a shape may close the lips by at most this fraction of their rest gap
STIFF = 0.15  # unfold: triangles whose normal keeps < 15 % of its rest projection are stiffened
FADE_UM = 6_000.0  # lid/lip rim corrections fade to zero this far from the rim
SLIT_RAMP_UM = 3_000.0  # the lips' inner skin parts fully 3 mm inside the slit's ends (x)
PART_GATE_UM = 500.0  # lips parting (lower rim down from the upper) by 0.5 mm: own rims


# --- motion post-processing ----------------------------------------------------------------

def _smooth_deltas(deltas: np.ndarray, faces: np.ndarray, labels: np.ndarray, hole: np.ndarray,
                   iterations: int = SMOOTH_ITERS, step: float = 0.5) -> np.ndarray:
    """Uniform Laplacian smoothing of the (K, N, 3) displacement field, ``iterations`` times.
    Edges between upper (label 1) and lower (label 2) lid/lip skin and edges into the
    openings are cut, so lids and lips keep moving independently."""
    n = deltas.shape[1]
    e = mesh_edges(faces)
    la, lb = labels[e[:, 0]], labels[e[:, 1]]
    keep = ~(((la == 1) & (lb == 2)) | ((la == 2) & (lb == 1))) & ~hole[e[:, 0]] & ~hole[e[:, 1]]
    e = e[keep]
    a = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    a = (a + a.T).tocsr()
    deg = np.asarray(a.sum(1)).ravel()
    avg = sp.diags(1.0 / np.maximum(deg, 1)) @ a
    flat = deltas.transpose(1, 0, 2).reshape(n, -1).astype(np.float64)
    movable = deg > 0
    for _ in range(iterations):
        flat[movable] += step * ((avg @ flat)[movable] - flat[movable])
    return flat.reshape(n, deltas.shape[0], 3).transpose(1, 0, 2).astype(np.float32)


def _rim_band(verts: np.ndarray, labels: np.ndarray, inside: np.ndarray, rim: np.ndarray,
              sign: float) -> tuple[np.ndarray, np.ndarray]:
    """The lid (lip) skin a correction made on ``rim`` (ids sorted by x) spreads to: the
    vertices on the rim's side (label 1 above for sign=+1, 2 below for -1) outside the
    opening, up to ``FADE_UM`` from the rim and 3 mm beyond its ends in x. Returns their ids
    and weights: 1 on the rim, falling smoothly to 0 at those distances."""
    x = verts[:, 0]
    off = sign * (verts[:, 1] - np.interp(x, verts[rim, 0], verts[rim, 1]))
    beyond = np.maximum(verts[rim[0], 0] - x, 0) + np.maximum(x - verts[rim[-1], 0], 0)
    ids = np.flatnonzero((labels == (1 if sign > 0 else 2)) & ~inside & (beyond < 3_000)
                         & (off > -2_000) & (off < FADE_UM))
    fade = (1.0 - smoothstep(np.maximum(off[ids], 0.0), 0.0, FADE_UM)) \
        * (1.0 - smoothstep(beyond[ids], 0.0, 3_000.0))
    return ids, fade


def _limit_lip_closure(deltas: np.ndarray, verts: np.ndarray, faces: np.ndarray,
                       inside: np.ndarray, labels: np.ndarray, limit: float = LIP_CLOSE_MAX) -> None:
    """In place, per shape of deltas (K, N, 3): where the lower lip's rim would rise towards
    the upper lip's rim by more than ``limit`` times their rest gap (mm at the middle, zero
    at the corners), take the excess out of both lips, half each, vertically, fading over
    ``FADE_UM`` into the lips. ICT's lips touch at rest, so its pressing/raising shapes
    (mouthShrugLower, mouthPress, mouthDimple) move them towards each other by more than the
    BFM's lip gap; applied as-is they cross and the skin between folds."""
    up, lo = _rims(verts, faces, inside, labels)
    xs = np.linspace(verts[inside, 0].min(), verts[inside, 0].max(), 400)
    gap = np.maximum(np.interp(xs, verts[up, 0], verts[up, 1]) - np.interp(xs, verts[lo, 0], verts[lo, 1]), 0)
    (cu, fu), (cl, fl) = _rim_band(verts, labels, inside, up, +1.0), _rim_band(verts, labels, inside, lo, -1.0)
    step = xs[1] - xs[0]
    for d in deltas:
        closing = np.interp(xs, verts[lo, 0], d[lo, 1]) - np.interp(xs, verts[up, 0], d[up, 1])
        excess = np.maximum(closing - limit * gap, 0.0)
        if not excess.any():
            continue
        # widen (1.5 mm), then smooth (1 mm) along the mouth so the correction has no kinks
        excess = gaussian_filter1d(maximum_filter1d(excess, int(3_000 / step) | 1), 1_000 / step)
        d[cu, 1] += 0.5 * fu * np.interp(verts[cu, 0], xs, excess)
        d[cl, 1] -= 0.5 * fl * np.interp(verts[cl, 0], xs, excess)


def _bound(x: np.ndarray, y: np.ndarray, sign: float, margin: float = 200.0) -> np.ndarray:
    """Smooth upper (sign=+1) / lower (-1) bound of the points (x, y), evaluated at x: their
    extreme over +-1 mm in x, widened (+-1 mm) and smoothed (Gaussian, 1 mm), then lifted
    so that it clears every point by at least ``margin``."""
    grid = np.linspace(x.min(), x.max(), 200)
    step = grid[1] - grid[0]
    ext = np.array([(sign * y[np.abs(x - g) < 1_000.0 + step]).max() for g in grid])
    ext = gaussian_filter1d(maximum_filter1d(ext, int(2_000 / step) | 1), 1_000 / step, mode="nearest")
    env = np.interp(x, grid, ext)
    return sign * (env + max((sign * y - env).max(), 0.0) + margin)


def _close_lids(delta: np.ndarray, verts: np.ndarray, faces: np.ndarray, inside: np.ndarray,
                labels: np.ndarray, strip_um: float = LID_STRIP_UM) -> None:
    """In place, for one eyeBlink shape delta (N, 3) (smoothed, opening filled): close the
    lids exactly, with no smoothing afterwards.

    The strip between the rims' outer rows (both rims and the skin over the eyeball) is
    parametrised at rest by ``t = (y - l(x)) / H`` (l, u: smooth bounds below / above the
    strip, H the largest u - l, so t is in [0, 1] and affine in y in every column). At
    full blink each strip vertex goes to ``L(x) + (0, t strip_um, 0)``, L(x) the lower
    rim's posed position as a smooth function of rest x: the strip collapses into a thin
    band (thinner towards the corners) keeping its vertical order, the rims end ~0.2-0.35
    mm apart, and the few strip triangles this tips over (the lid crease, steep at rest)
    are left to ``unfold``. The rims' change is spread over ``FADE_UM`` into the lids.
    """
    up, lo = _rims(verts, faces, inside, labels)
    new = verts + delta
    strip = np.concatenate([up, lo, np.flatnonzero(inside)])
    x, y = verts[strip, 0], verts[strip, 1]
    u_y, l_y = _bound(x, y, +1.0), _bound(x, y, -1.0)
    t = (y - l_y) / (u_y - l_y).max()
    # a smooth function (Gaussian kernel, 1 mm): linear interpolation between the rim's
    # vertices has kinks, and at this strip's thinness a kink inside a triangle tips it
    w = np.exp(-0.5 * ((x[:, None] - verts[lo, 0][None, :]) / 1_000.0) ** 2)
    target = (w @ new[lo]) / w.sum(1)[:, None]
    target[:, 1] += t * strip_um
    corr = target - new[strip]
    for rim, c_rim, sign in ((up, corr[:len(up)], +1.0), (lo, corr[len(up):len(up) + len(lo)], -1.0)):
        cand, fade = _rim_band(verts, labels, inside, rim, sign)
        for c in range(3):
            delta[cand, c] += fade * np.interp(verts[cand, 0], verts[rim, 0], c_rim[:, c])
    delta[strip] = target - verts[strip]


def _fill_opening(deltas: np.ndarray, verts: np.ndarray, faces: np.ndarray,
                  inside: np.ndarray, labels: np.ndarray, slit: np.ndarray | None = None) -> None:
    """In place: give the BFM skin inside one opening (over an eyeball / between the lips)
    the motion interpolated vertically between its upper and lower rims.

    deltas (K, N, 3); verts (N, 3) neutral; inside (N,) bool; labels (N,) from side_labels.
    A vertex at height y between the rims yL(x) < y < yU(x) gets
    ``d = s dU(x) + (1 - s) dL(x)`` with ``s = (y - yL) / (yU - yL)``: its new height is an
    affine function of s, so the interior stays ordered between the rims (no crossing) and
    collapses onto the lid line when the rims meet (blink). A harmonic fill does not have
    this property near the corners, where it lags behind the lids and folds.

    The mouth (``slit``: its hole loop) is an opening between two lips, not a lid over an
    eyeball: where a shape parts the lips (the lower rim moves down from the upper one,
    jawOpen), each lip's inner skin moves with its own rim (``geometry.lip_sides``) instead of
    stretching between both: interpolated, the upper lip's inner curl (the slit's upper
    edge) dropped 13 mm at jawOpen 1, its outer rim 2.6 mm. Where a shape closes the lips
    the interpolation stays (the interior collapses in order, no crossing).
    """
    inner = np.flatnonzero(inside)
    x, y = verts[inner, 0], verts[inner, 1]
    up, lo = _rims(verts, faces, inside, labels)

    def along(ids, values):  # values (..., R) on a rim, interpolated at the interior's x
        return np.interp(x, verts[ids, 0], values)

    y_up, y_lo = along(up, verts[up, 1]), along(lo, verts[lo, 1])
    gap = np.maximum(y_up - y_lo, 1e-6)
    s = np.clip((y - y_lo) / gap, 0.0, 1.0)
    # the interior's bulge (eyeball, lip fold) relative to the straight rim-to-rim strip
    base = np.stack([s * along(up, verts[up, c]) + (1 - s) * along(lo, verts[lo, c]) for c in range(3)], 1)
    bulge = verts[inner] - base
    side, part = lip_sides(verts, faces, inside, slit, SLIT_RAMP_UM) if slit is not None else (None, None)
    for k in range(deltas.shape[0]):
        d_up = np.stack([along(up, deltas[k, up, c]) for c in range(3)], 1)
        d_lo = np.stack([along(lo, deltas[k, lo, c]) for c in range(3)], 1)
        # the bulge shrinks with the opening (closing lids/lips flatten over it), so a
        # closed eye is a thin flat strip instead of a crumpled fold
        openness = np.clip((gap + d_up[:, 1] - d_lo[:, 1]) / gap, 0.0, 1.0)
        fill = s[:, None] * d_up + (1 - s[:, None]) * d_lo + (openness[:, None] - 1) * bulge
        if side is not None:
            own = np.where(side[:, None] > 0, d_up, d_lo)  # each lip's skin with its own rim
            parting = 1.0 - smoothstep(d_lo[:, 1] - d_up[:, 1], -PART_GATE_UM, PART_GATE_UM)
            fill += (part * parting)[:, None] * (own - fill)
        deltas[k, inner] = fill



# --- the transfer -------------------------------------------------------------------------

def build_transfer(progress=None) -> dict[str, np.ndarray]:
    """Run the ICT -> BFM transfer. Returns the arrays cached by ``load_rig`` (see Rig)."""
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    bfm, ict = bfm_mod.load_bfm(), ict_mod.load_ict()
    target = bfm.mean.astype(np.float64)  # micrometres
    mm = 1e-3  # micrometres -> millimetres
    # 1) similarity + landmark-only TPS, 2) regularised non-rigid ICP (rig.register)
    reg = register_skin(bfm, ict, lambda msg: say(f"{msg} ({time.perf_counter() - t0:.1f} s)"))
    s, rot, warped, tris = reg.scale, reg.rot, reg.warped, reg.tris
    in_hole, hole, plab, tlab, lm_residual_mm = reg.in_hole, reg.hole, reg.plab, reg.tlab, reg.landmark_residual_mm

    # 3) final correspondence of every BFM vertex; barycentric transfer (one triangle corner
    # at a time, no (K, N, 3, 3) temporary), similarity-scaled, with the coverage falloff.
    tri, bary, _, dist = project_by_side(target, plab, warped, tris, tlab)
    covered = ~hole & (dist < FALLOFF_MM[1] * 1000)
    residual_mm = float(dist[~hole & (dist < 10_000)].mean() * mm)
    weight = 1.0 - smoothstep(dist * mm, *FALLOFF_MM)
    weight[hole] = 0.0
    b32 = bary.astype(np.float32)
    d_ict = sum(ict.deltas[:, tris[tri, c]] * b32[None, :, c, None] for c in range(3))
    deltas = (d_ict @ (s * rot).T.astype(np.float32)) * weight[None, :, None].astype(np.float32)
    say(f"barycentric transfer done ({time.perf_counter() - t0:.1f} s)")

    # 4) label-aware smoothing: removes triangle-scale aliasing from projecting onto ICT's
    # finely folded lid and lip margins, without blurring across the contact lines.
    deltas = _smooth_deltas(deltas, bfm.faces, plab, hole)
    # 5) lips, then lids (exact, after smoothing), then the skin over the openings.
    _limit_lip_closure(deltas, target, bfm.faces, in_hole["mouth"], plab)
    names = list(ict.names)
    slit = min(seam.boundary_loops(bfm.faces), key=len)  # the hole between the lips
    for key, mask in in_hole.items():
        _fill_opening(deltas, target, bfm.faces, mask, plab, slit if key == "mouth" else None)
    for side, eye in (("R", "eye_r"), ("L", "eye_l")):
        _close_lids(deltas[names.index(f"eyeBlink_{side}")], target, bfm.faces, in_hole[eye], plab)
    say(f"smoothed, lips and lids fixed, openings filled ({time.perf_counter() - t0:.1f} s)")

    # 6) slivers move with their base; remaining folds are relaxed away locally, then folded
    # and nearly folded triangles unfolded by least moves; slivers stay put, lid rims nearly.
    tips = sliver_tips(target, bfm.faces)
    flatten_slivers(deltas, tips)
    rim = np.zeros(len(target), bool)
    for eye in ("eye_r", "eye_l"):
        rim[np.concatenate(_rims(target, bfm.faces, in_hole[eye], plab))] = True
    hard = np.zeros(len(target), bool)
    hard[[v for tip, a, b, _ in tips for v in (tip, a, b)]] = True  # slivers stay affine
    keep = rim | hard
    adj = mesh_adjacency(bfm.faces, len(target))
    for k in range(len(deltas)):
        deltas[k] = relax_folds(target, deltas[k], bfm.faces, keep, adj=adj)[0]
        # stiffen nearly folded triangles too (they fold in blends of shapes), except in
        # the blinks, whose closed lid strip is thin by construction
        stiff = 0.0 if names[k].startswith("eyeBlink") else STIFF
        deltas[k] = unfold(target, deltas[k], bfm.faces, adj, hard, soft=rim & ~hard,
                           trigger=stiff, margin=max(stiff * 1.5, 0.01))[0]
    say(f"folds relaxed ({time.perf_counter() - t0:.1f} s)")

    return {
        "landmark_residual_mm": np.float64(lm_residual_mm),
        "names": ict.names,
        "deltas": deltas.astype(np.float32),
        "weight": weight.astype(np.float32),
        "hole_eye_r": in_hole["eye_r"], "hole_eye_l": in_hole["eye_l"], "hole_mouth": in_hole["mouth"],
        "residual_mm": np.float64(residual_mm),
        "scale": np.float64(s),
        "dist_um": dist.astype(np.float32),
        "covered": covered,
        "build_s": np.float64(time.perf_counter() - t0),
    }
# --- the cached rig and per-subject shapes ------------------------------------------------

@dataclass(frozen=True)
class Rig:
    """The FACS blendshapes on the BFM no-neck topology (on the BFM mean face).

    names:        (K,) str ARKit-style names, K = 53 (``ict.ICTModel.names`` order).
    deltas:       (K, N, 3) float32 displacement of each shape at weight 1, BFM units (um).
    weight:       (N,) float32 coverage falloff in [0, 1] (0 where ICT skin is far).
    landmarks:    (68,) int64 BFM landmark vertex ids.
    residual_mm:  mean closest-point distance BFM -> registered ICT skin (outside the
                  eye/mouth openings), millimetres; ``landmark_residual_mm`` the same after
                  the landmark-only warp.
    """

    names: np.ndarray
    deltas: np.ndarray
    weight: np.ndarray
    landmarks: np.ndarray
    residual_mm: float
    landmark_residual_mm: float
    openings: dict

    def pose(self, weights: np.ndarray, vertices: np.ndarray | None = None) -> np.ndarray:
        """(N, 3) vertices (BFM units) posed with (K,) blendshape weights on ``vertices``
        (default the BFM mean) — shapes scaled to that face (``subject_deltas``)."""
        base = bfm_mod.load_bfm().mean if vertices is None else np.asarray(vertices, np.float32)
        d = self.deltas if vertices is None else self.subject_deltas(base)
        return base + np.tensordot(np.asarray(weights, np.float32), d, axes=1)

    def subject_deltas(self, subject_vertices: np.ndarray) -> np.ndarray:
        """(K, N, 3) float32 shapes on a fitted identity, BFM units.

        Method: uniform scaling by the subject's face size relative to the BFM mean (RMS
        spread of the 51 inner landmarks). Why not deformation transfer: the subject is the
        BFM mean plus a 40-PC identity offset, so the mean->subject deformation gradient is
        close to a uniform scale over the face; scaling keeps the lid-closure and lip
        geometry of the transfer exact in proportion (a blink still closes), costs nothing,
        and cannot introduce the per-triangle noise a deformation-transfer solve brings.
        """
        v = np.asarray(subject_vertices, np.float64)
        mean = bfm_mod.load_bfm().mean.astype(np.float64)
        ids = self.landmarks[NO_JAW]

        def spread(x):
            p = x[ids]
            return np.sqrt(((p - p.mean(0)) ** 2).sum(1).mean())

        return (self.deltas * np.float32(spread(v) / spread(mean))).astype(np.float32)


def subject_blendshapes(rig: Rig, subject_vertices: np.ndarray) -> np.ndarray:
    """(K, N, 3) float32 blendshape displacements for a fitted subject, in METRES (same
    model space as the subject's mesh; ``bfm.METRES_PER_UNIT``). subject_vertices (N, 3)
    in BFM units."""
    return (rig.subject_deltas(subject_vertices) * bfm_mod.METRES_PER_UNIT).astype(np.float32)


def _cache_path() -> Path:
    h = hashlib.sha256(f"rig-v{RIG_VERSION}-{ict_mod.cache_key()}-{bfm_mod._cache_key()}".encode())
    return assets.converted_dir() / f"rig_bfm_ict_{h.hexdigest()[:16]}.npz"


@functools.lru_cache(maxsize=1)
def load_rig(progress=None) -> Rig:
    """The rig, built once per asset version (~10 s) and cached as .npz (loads in ~0.2 s)."""
    arrays = assets.cached_arrays(_cache_path(), lambda: build_transfer(progress))
    return Rig(
        names=arrays["names"], deltas=arrays["deltas"], weight=arrays["weight"],
        landmarks=bfm_mod.load_bfm().landmarks,
        residual_mm=float(arrays["residual_mm"]), landmark_residual_mm=float(arrays["landmark_residual_mm"]),
        openings={k: arrays[f"hole_{k}"] for k in ("eye_r", "eye_l", "mouth")},
    )
