"""The 53 ICT-FaceKit FACS expression shapes transferred onto the BFM no-neck topology.

Transfer (once per asset version, cached as ``.npz`` keyed by the source checksums):

1. Similarity (Umeyama) from the ICT neutral to the BFM mean on the iBUG-68 landmarks both
   models define — jaw contour excluded, because BFM's jaw landmarks are fixed 3D points
   while ICT's follow the outline (assets README), so they are not the same anatomy.
2. Non-rigid registration: a 3D thin-plate-spline warp of the aligned ICT skin driven by the
   landmarks (exact), then two rounds of closest-point correspondences from BFM sample
   vertices (smoothed TPS, i.e. a regularised non-rigid ICP) that pull the ICT surface onto
   the BFM's.
3. Every BFM vertex is projected onto the warped ICT skin (closest point on a triangle);
   its barycentric coordinates on that ICT triangle carry each shape's displacement:
   ``delta_bfm = J(x) @ (s R) @ sum_j b_j delta_ict[j]``, with ``s R`` the similarity
   (centimetres -> micrometres) and ``J`` the warp's local Jacobian. J matters: where the
   BFM is taller or wider than ICT (e.g. its eye opening) the same warp that stretched the
   neutral stretches the motion, so lids that meet on ICT meet on the BFM.
4. BFM parts the ICT face does not cover (closest-point distance large) get a weight that
   falls smoothly to zero (smoothstep). The eye openings (the BFM has no eyeballs: skin runs
   over them) and the lip contact line are filled harmonically from their rims, so the
   interior follows the lids/lips monotonically and cannot cross them.

Units: BFM units (micrometres) inside; ``subject_blendshapes`` returns metres.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import RBFInterpolator
from scipy.spatial import cKDTree

from . import assets, bfm as bfm_mod, ict as ict_mod

RIG_VERSION = 1  # bump when the transfer algorithm changes (part of the cache key)
NO_JAW = np.r_[17:68]  # landmarks used for alignment/warp (jaw contour 0..16 excluded)
FALLOFF_MM = (3.0, 8.0)
SMOOTH_ITERS = 10  # ~2 mm smoothing radius on the BFM's ~1 mm edges
LID_GAP_UM = 100.0
ICP_SMOOTHING = (10.0, 1.0)  # TPS regularisation (mm²) of the two non-rigid ICP rounds  # closed lids rest 0.1 mm apart, so the skin between never degenerates  # full motion below 3 mm from the ICT skin, none beyond 8 mm


# --- geometry helpers ---------------------------------------------------------------------

def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ s R src + t`` (Umeyama 1991). src, dst (M, 3).
    Returns scale s, rotation R (3, 3) with det +1, translation t (3,)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt))  # forbid reflections
    r = u @ np.diag(d) @ vt
    s = float((sig * d).sum() / (a**2).sum(1).mean())
    return s, r, mu_d - s * r @ mu_s


def closest_point_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """Closest points of points p (..., 3) on triangles (a, b, c) (..., 3), vectorised
    (Ericson, Real-Time Collision Detection, 5.1.5). Returns barycentrics (..., 3)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    eps = 1e-30
    # interior by default
    den = va + vb + vc
    v = vb / np.where(np.abs(den) < eps, eps, den)
    w = vc / np.where(np.abs(den) < eps, eps, den)
    bary = np.stack([1 - v - w, v, w], -1)

    def put(mask, u0, u1, u2):
        bary[mask] = np.stack([u0, u1, u2], -1)[mask]

    # edges (checked before vertices so that vertex regions win where they overlap)
    t = d1 / np.where(np.abs(d1 - d3) < eps, eps, d1 - d3)
    put((vc <= 0) & (d1 >= 0) & (d3 <= 0), 1 - t, t, 0 * t)
    t = d2 / np.where(np.abs(d2 - d6) < eps, eps, d2 - d6)
    put((vb <= 0) & (d2 >= 0) & (d6 <= 0), 1 - t, 0 * t, t)
    t = (d4 - d3) / np.where(np.abs((d4 - d3) + (d5 - d6)) < eps, eps, (d4 - d3) + (d5 - d6))
    put((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), 0 * t, 1 - t, t)
    one, zero = np.ones_like(d1), np.zeros_like(d1)
    put((d1 <= 0) & (d2 <= 0), one, zero, zero)
    put((d3 >= 0) & (d4 <= d3), zero, one, zero)
    put((d6 >= 0) & (d5 <= d6), zero, zero, one)
    return bary


def project_to_mesh(points: np.ndarray, verts: np.ndarray, tris: np.ndarray, k: int = 24):
    """Closest point of each query point on a triangle mesh (exact among the k triangles
    whose centroids are nearest, plenty for a near-uniform mesh like ICT's face).

    points (P, 3), verts (V, 3), tris (T, 3). Returns tri index (P,), barycentrics (P, 3),
    closest points (P, 3), distances (P,).
    """
    tree = cKDTree(verts[tris].mean(1))
    _, cand = tree.query(points, k=k)
    a, b, c = (verts[tris[cand, i]] for i in range(3))
    q = points[:, None, :]
    bary = closest_point_on_triangles(np.broadcast_to(q, a.shape), a, b, c)
    cp = bary[..., :1] * a + bary[..., 1:2] * b + bary[..., 2:] * c
    d2 = ((cp - q) ** 2).sum(-1)
    best = d2.argmin(1)
    rows = np.arange(len(points))
    return cand[rows, best], bary[rows, best], cp[rows, best], np.sqrt(d2[rows, best])


def _smooth_deltas(deltas: np.ndarray, faces: np.ndarray, labels: np.ndarray, hole: np.ndarray,
                   iterations: int = SMOOTH_ITERS, step: float = 0.5) -> np.ndarray:
    """Uniform Laplacian smoothing of the (K, N, 3) displacement field, ``iterations`` times.
    Edges between upper (label 1) and lower (label 2) lid/lip skin and edges into the
    openings are cut, so lids and lips keep moving independently."""
    import scipy.sparse as sp

    n = deltas.shape[1]
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, 1), axis=0)
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
    return flat.reshape(n, deltas.shape[0], 3).transpose(1, 0, 2).astype(np.float32), avg.tocsr()


def face_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """(F, 3) unit face normals (zero for degenerate triangles)."""
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)


def _rims(verts, faces, inside, labels):
    """Vertices just outside an opening (its 1-ring): (upper rim ids, lower rim ids), each
    sorted by x."""
    inner = np.flatnonzero(inside)
    ring = np.unique(faces[np.isin(faces, inner).any(1)])
    ring = ring[~inside[ring]]
    out = []
    for lab in (1, 2):
        r = ring[labels[ring] == lab]
        out.append(r[np.argsort(verts[r, 0])])
    return out


def _close_lids(delta: np.ndarray, verts: np.ndarray, faces: np.ndarray, inside: np.ndarray,
                labels: np.ndarray, gap_um: float = LID_GAP_UM, reach_um: float = 6_000.0) -> None:
    """In place, for one eyeBlink shape delta (N, 3): move the upper lid so that, at full
    blink, its rim rests ``gap_um`` above the lower rim at every x.

    The transferred ICT blink closes the BFM eye only to within about +-1 mm (ICT's lids
    leave a sliver, and its lid line differs from the BFM's between the landmarks), which
    shows as a slit or as lids crossing. The correction is vertical, largest on the rim and
    fading to zero ``reach_um`` above it, so the lid skin above stays smooth and ordered.
    """
    up, lo = _rims(verts, faces, inside, labels)
    new = verts + delta
    x_lo, y_lo = new[lo, 0], new[lo, 1]
    order = np.argsort(x_lo)
    want = np.interp(new[up, 0], x_lo[order], y_lo[order]) + gap_um
    corr_rim = want - new[up, 1]  # per upper-rim vertex, along y
    # smooth along x (Gaussian, 1.5 mm): the rim zig-zags between mesh rows
    dx = verts[up, 0][:, None] - verts[up, 0][None, :]
    g = np.exp(-0.5 * (dx / 1500.0) ** 2)
    corr_rim = (g @ corr_rim) / g.sum(1)
    x0, x1 = verts[inside, 0].min(), verts[inside, 0].max()
    cand = np.flatnonzero((labels == 1) & ~inside & (verts[:, 0] >= x0) & (verts[:, 0] <= x1))
    rim_y = np.interp(verts[cand, 0], verts[up, 0], verts[up, 1])
    height = verts[cand, 1] - rim_y
    fade = 1.0 - smoothstep(height, 0.0, reach_um)
    fade[height < -1.0] = 0.0
    delta[cand, 1] += fade * np.interp(verts[cand, 0], verts[up, 0], corr_rim)


def _fill_opening(deltas: np.ndarray, verts: np.ndarray, faces: np.ndarray,
                  inside: np.ndarray, labels: np.ndarray) -> None:
    """In place: give the BFM skin inside one opening (over an eyeball / between the lips)
    the motion interpolated vertically between its upper and lower rims.

    deltas (K, N, 3); verts (N, 3) neutral; inside (N,) bool; labels (N,) from side_labels.
    A vertex at height y between the rims yL(x) < y < yU(x) gets
    ``d = s dU(x) + (1 - s) dL(x)`` with ``s = (y - yL) / (yU - yL)``: its new height is an
    affine function of s, so the interior stays ordered between the rims (no crossing) and
    collapses onto the lid line when the rims meet (blink). A harmonic fill does not have
    this property near the corners, where it lags behind the lids and folds.
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
    for k in range(deltas.shape[0]):
        d_up = np.stack([along(up, deltas[k, up, c]) for c in range(3)], 1)
        d_lo = np.stack([along(lo, deltas[k, lo, c]) for c in range(3)], 1)
        # the bulge shrinks with the opening (closing lids/lips flatten over it), so a
        # closed eye is a thin flat strip instead of a crumpled fold
        openness = np.clip((gap + d_up[:, 1] - d_lo[:, 1]) / gap, 0.0, 1.0)
        deltas[k, inner] = s[:, None] * d_up + (1 - s[:, None]) * d_lo + (openness[:, None] - 1) * bulge


def points_in_polygon(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(P,) bool: points xy (P, 2) inside the closed polygon poly (M, 2) (even-odd rule)."""
    inside = np.zeros(len(xy), bool)
    x, y = xy[:, 0], xy[:, 1]
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < xc)
    return inside


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


# --- the transfer -------------------------------------------------------------------------

def _warp(src_mm: np.ndarray, dst_mm: np.ndarray, smoothing: np.ndarray | float) -> RBFInterpolator:
    """3D thin-plate spline (affine part included) mapping src -> dst as a displacement
    field, in millimetres (so ``smoothing`` is a plain mm² regulariser)."""
    return RBFInterpolator(src_mm, dst_mm - src_mm, kernel="thin_plate_spline",
                           smoothing=smoothing, degree=1)


def _jacobian(field: RBFInterpolator, x_mm: np.ndarray, h: float = 0.25) -> np.ndarray:
    """(P, 3, 3) Jacobian of x -> x + field(x) by central differences (h in mm)."""
    jac = np.empty((len(x_mm), 3, 3))
    for i in range(3):
        dx = np.zeros(3)
        dx[i] = h
        jac[:, :, i] = (field(x_mm + dx) - field(x_mm - dx)) / (2 * h)
    jac += np.eye(3)
    return jac


def _catmull_rom(pts: np.ndarray, closed: bool, per: int = 8) -> np.ndarray:
    """Dense points on a Catmull-Rom spline through pts (M, D) (the BFM's lid and lip
    contours are curved between their few landmarks)."""
    p = np.concatenate([pts[-1:], pts, pts[:2]]) if closed else np.concatenate([pts[:1], pts, pts[-1:]])
    segs = len(pts) if closed else len(pts) - 1
    t = np.linspace(0, 1, per, endpoint=False)[:, None]
    out = []
    for i in range(segs):
        p0, p1, p2, p3 = p[i], p[i + 1], p[i + 2], p[i + 3]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))
    if not closed:
        out.append(pts[-1:])
    return np.concatenate(out)


# Landmark contours (iBUG numbering) of the openings the BFM skins over, and the mid-lines
# that split each region into an upper and a lower part (lids, lips).
# The mouth's contour runs from the outer corners (48, 54) along the inner lip landmarks:
# the BFM's lips touch all the way to the outer corners, and the tiny folded triangles
# there must move with the opening rather than with either lip.
_OPENINGS = {"eye_r": list(range(36, 42)), "eye_l": list(range(42, 48)),
             "mouth": [48, 61, 62, 63, 54, 65, 66, 67]}
_MIDLINES = {  # (pairs averaged along the line, half-height of the band in micrometres)
    "eye_r": ([(36, 36), (37, 41), (38, 40), (39, 39)], 12_000),
    "eye_l": ([(42, 42), (43, 47), (44, 46), (45, 45)], 12_000),
    "mouth": ([(48, 48), (60, 60), (61, 67), (62, 66), (63, 65), (64, 64), (54, 54)], 20_000),
}


def opening_masks(points: np.ndarray, lm: np.ndarray) -> dict[str, np.ndarray]:
    """(P,) bool per opening: points (P, 3) whose xy lies inside the spline through that
    opening's landmarks lm (68, 3) — the BFM skin over its eyeballs / between its lips."""
    return {k: points_in_polygon(points[:, :2], _catmull_rom(lm[ids, :2], closed=True))
            for k, ids in _OPENINGS.items()}


def side_labels(points: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """(P,) int8: 1 above / 2 below an eye's or the mouth's mid-line (within its band and
    x-range), 0 elsewhere. Upper-lid (lip) skin must only follow upper-lid (lip) skin, or a
    closest-point search near the contact line would tear the lids (lips) apart."""
    lab = np.zeros(len(points), np.int8)
    for pairs, band in _MIDLINES.values():
        line = np.array([(lm[a, :2] + lm[b, :2]) / 2 for a, b in pairs])
        line = _catmull_rom(line, closed=False)
        x, y = points[:, 0], points[:, 1]
        inx = (x > line[0, 0]) & (x < line[-1, 0])
        yc = np.interp(x, line[:, 0], line[:, 1])
        near = inx & (np.abs(y - yc) < band)
        lab[near] = np.where(y[near] > yc[near], 1, 2)
    return lab


def project_by_side(points, plab, verts, tris, tlab):
    """``project_to_mesh`` restricted so that label-1 (2) points only reach label-0/1 (0/2)
    triangles. Returns the same tuple as ``project_to_mesh``."""
    out = [np.empty(len(points), np.int64), np.empty((len(points), 3)),
           np.empty((len(points), 3)), np.empty(len(points))]
    for lab, allowed in ((0, (0, 1, 2)), (1, (0, 1)), (2, (0, 2))):
        sel = np.flatnonzero(plab == lab)
        keep = np.flatnonzero(np.isin(tlab, allowed))
        if len(sel) == 0:
            continue
        res = project_to_mesh(points[sel], verts, tris[keep])
        out[0][sel] = keep[res[0]]
        for o, r in zip(out[1:], res[1:]):
            o[sel] = r
    return tuple(out)


def build_transfer(progress=None, icp=ICP_SMOOTHING, use_jacobian=True) -> dict[str, np.ndarray]:
    """Run the ICT -> BFM transfer. Returns the arrays cached by ``load_rig`` (see Rig)."""
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    bfm, ict = bfm_mod.load_bfm(), ict_mod.load_ict()
    target = bfm.mean.astype(np.float64)  # micrometres
    n = len(target)
    s, rot, t = umeyama(ict.neutral[ict.landmarks][NO_JAW], target[bfm.landmarks][NO_JAW])
    aligned = ict.neutral @ (s * rot).T + t  # ICT in BFM space, micrometres
    tris = ict.skin_triangles()
    skin = np.unique(tris)
    mm = 1e-3  # micrometres -> millimetres for the warp
    lm_src, lm_dst = aligned[ict.landmarks][NO_JAW] * mm, target[bfm.landmarks][NO_JAW] * mm

    # 1) landmark-only TPS: exact at the 51 inner landmarks.
    field = lm_field = _warp(lm_src, lm_dst, 0.0)
    warped = aligned.copy()
    warped[skin] = aligned[skin] + field(aligned[skin] * mm) / mm
    lm_bfm = target[bfm.landmarks]
    in_hole = opening_masks(target, lm_bfm)
    hole = np.logical_or.reduce(list(in_hole.values()))
    plab = side_labels(target, lm_bfm)
    # ICT triangles labelled in the warped space, where the ICT landmarks sit on the BFM's.
    tlab = side_labels(warped[tris].mean(1), lm_bfm)
    lm_residual_mm = float(project_by_side(target, plab, warped, tris, tlab)[3][~hole].mean() * mm)
    say(f"landmark warp done ({time.perf_counter() - t0:.1f} s)")

    # 2) regularised non-rigid ICP: BFM samples pull the ICT skin along its normals.
    rng = np.random.default_rng(0)
    for it, lam in enumerate(icp):
        tri, bary, _, dist = project_by_side(target, plab, warped, tris, tlab)
        ok = np.flatnonzero(~hole & (dist < 10_000))
        pick = rng.choice(ok, size=min(1500, len(ok)), replace=False)
        pre = (bary[pick, :, None] * aligned[tris[tri[pick]]]).sum(1) * mm
        src = np.concatenate([lm_src, pre])
        dst = np.concatenate([lm_dst, target[pick] * mm])
        smooth = np.concatenate([np.zeros(len(lm_src)), np.full(len(pick), lam)])
        field = _warp(src, dst, smooth)
        warped[skin] = aligned[skin] + field(aligned[skin] * mm) / mm
        say(f"ICP round {it + 1} done ({time.perf_counter() - t0:.1f} s)")

    # 3) final correspondence of every BFM vertex.
    tri, bary, _, dist = project_by_side(target, plab, warped, tris, tlab)
    covered = ~hole & (dist < FALLOFF_MM[1] * 1000)
    residual_mm = float(dist[~hole & (dist < 10_000)].mean() * mm)
    pre = (bary[:, :, None] * aligned[tris[tri]]).sum(1) * mm
    jac = _jacobian(lm_field, pre)
    # similarity part (cm -> um, rotation) then the warp's local linear map
    lin = (jac if use_jacobian else np.broadcast_to(np.eye(3), jac.shape)) @ (s * rot)
    weight = 1.0 - smoothstep(dist * mm, *FALLOFF_MM)
    weight[hole] = 0.0

    # barycentric interpolation, one triangle corner at a time (no (K, N, 3, 3) temporary)
    b32 = bary.astype(np.float32)
    d_ict = sum(ict.deltas[:, tris[tri, c]] * b32[None, :, c, None] for c in range(3))
    deltas = np.einsum("nab,knb->kna", lin, d_ict) * weight[None, :, None]
    say(f"barycentric transfer done ({time.perf_counter() - t0:.1f} s)")

    # 4) label-aware smoothing of the motion: removes triangle-scale aliasing from projecting
    # onto ICT's finely folded lid and lip margins, without blurring across the contact lines.
    deltas, avg = _smooth_deltas(deltas, bfm.faces, plab, hole)
    say(f"smoothed ({time.perf_counter() - t0:.1f} s)")

    # 5) blinks: make the lids meet exactly (see _close_lids), then fill the openings.
    names = list(ict.names)
    for side, eye in (("R", "eye_r"), ("L", "eye_l")):
        _close_lids(deltas[names.index(f"eyeBlink_{side}")], target, bfm.faces, in_hole[eye], plab)
    for mask in in_hole.values():
        _fill_opening(deltas, target, bfm.faces, mask, plab)
    say(f"openings filled ({time.perf_counter() - t0:.1f} s)")

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
    cache = _cache_path()
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    else:
        arrays = build_transfer(progress)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        Path(tmp).replace(cache)
    return Rig(
        names=arrays["names"], deltas=arrays["deltas"], weight=arrays["weight"],
        landmarks=bfm_mod.load_bfm().landmarks,
        residual_mm=float(arrays["residual_mm"]), landmark_residual_mm=float(arrays["landmark_residual_mm"]),
        openings={k: arrays[f"hole_{k}"] for k in ("eye_r", "eye_l", "mouth")},
    )
