"""Geometry helpers of the ICT -> BFM FACS transfer (``rig.transfer``): similarity alignment,
closest points on triangle meshes, folded triangles, and the BFM's eye/mouth openings and
upper/lower (lid, lip) side labels, all derived from the iBUG-68 landmarks. Face normals
and smoothstep are the stage-neutral ones (``facedet3d.geometry``), re-exported here.

Coordinates are whatever the caller passes (the transfer works in BFM units, micrometres;
the band widths below are micrometres).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from facedet3d.geometry.ramps import smoothstep  # noqa: F401  (re-exported to rig.transfer)
from facedet3d.geometry.raster import face_normals

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


def rims(verts, faces, inside, labels):
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


def loop_chains(verts: np.ndarray, loop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A mouth-like closed loop split at its least- and largest-x vertices (the corners,
    left out): (upper chain ids, lower chain ids), by their mean y."""
    ends = int(np.argmin(verts[loop, 0])), int(np.argmax(verts[loop, 0]))
    a, b = min(ends), max(ends)
    arcs = loop[a + 1:b], np.r_[loop[b + 1:], loop[:a]]
    upper, lower = sorted(arcs, key=lambda arc: -verts[arc, 1].mean())
    return upper, lower


def loop_sides(verts: np.ndarray, faces: np.ndarray, ids: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """(len(ids),) +1 / -1: whether each vertex ``ids`` is nearer, along the mesh (graph
    distance over ``ids`` and the loop), to the loop's upper or lower chain
    (``loop_chains``); a loop vertex is on its own chain."""
    upper, lower = loop_chains(verts, loop)
    nodes = np.unique(np.r_[ids, loop])
    pos = np.full(len(verts), -1)
    pos[nodes] = np.arange(len(nodes))
    e = mesh_edges(faces)
    e = e[(pos[e[:, 0]] >= 0) & (pos[e[:, 1]] >= 0)]
    w = np.linalg.norm(verts[e[:, 0]] - verts[e[:, 1]], axis=1)
    g = sp.coo_matrix((w, (pos[e[:, 0]], pos[e[:, 1]])), shape=(len(nodes), len(nodes))).tocsr()
    dist_up, dist_lo = (dijkstra(g, directed=False, indices=pos[arc], min_only=True) for arc in (upper, lower))
    return np.where(dist_up[pos[ids]] <= dist_lo[pos[ids]], 1.0, -1.0)


def lip_sides(verts: np.ndarray, faces: np.ndarray, inside: np.ndarray, slit: np.ndarray,
              ramp: float) -> tuple[np.ndarray, np.ndarray]:
    """For the interior vertices of the mouth opening (``inside``), which lip's inner skin
    each belongs to, and how fully it may part from the other lip.

    The BFM's lips curl inwards and meet at a slit (``slit``, the mesh's mouth hole loop):
    the skin above it is the upper lip's, below it the lower lip's. The slit's ends (its
    least and largest x) split the loop into an upper and a lower chain; every interior
    vertex takes the chain nearer along the skin (graph distance over the interior: the
    hole is in between, so the curl's far side is not mistaken for the other lip, as a
    straight-line distance would). Returns ``side`` (+1 upper, -1 lower) and ``part``
    in [0, 1]: 1 more than ``ramp`` in x inside the slit's ends, 0 at and beyond
    them (there both lips meet, as the corners must)."""
    inner = np.flatnonzero(inside)
    side = loop_sides(verts, faces, inner, slit)
    x = verts[inner, 0]
    into = np.minimum(x - verts[slit, 0].min(), verts[slit, 0].max() - x)
    return side, smoothstep(np.maximum(into, 0.0), 0.0, ramp)


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


def catmull_rom(pts: np.ndarray, closed: bool, per: int = 8) -> np.ndarray:
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
    return {k: points_in_polygon(points[:, :2], catmull_rom(lm[ids, :2], closed=True))
            for k, ids in _OPENINGS.items()}


def side_labels(points: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """(P,) int8: 1 above / 2 below an eye's or the mouth's mid-line (within its band and
    x-range), 0 elsewhere. Upper-lid (lip) skin must only follow upper-lid (lip) skin, or a
    closest-point search near the contact line would tear the lids (lips) apart."""
    lab = np.zeros(len(points), np.int8)
    for pairs, band in _MIDLINES.values():
        line = np.array([(lm[a, :2] + lm[b, :2]) / 2 for a, b in pairs])
        line = catmull_rom(line, closed=False)
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




def mesh_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) unique undirected edges (i < j) of a triangle mesh."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(e, 1), axis=0)


def flipped_faces(rest: np.ndarray, posed: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Indices of the triangles whose normal turned by more than 90 degrees from rest to
    posed (normal dot product < 0) — folds of the surface."""
    return np.flatnonzero((face_normals(rest, faces, dtype=np.float64)
                           * face_normals(posed, faces, dtype=np.float64)).sum(1) < 0)


def mesh_adjacency(faces: np.ndarray, n: int):
    """(n, n) scipy CSR vertex adjacency (1 per edge, symmetric) of a triangle mesh."""
    import scipy.sparse as sp

    e = mesh_edges(faces)
    return sp.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                         shape=(n, n)).tocsr()


def relax_folds(rest: np.ndarray, delta: np.ndarray, faces: np.ndarray, keep: np.ndarray | None = None,
                rings: int = 2, rounds: int = 6, adj=None) -> tuple[np.ndarray, int]:
    """Remove folds from one displacement field delta (N, 3) on the mesh (rest, faces),
    locally: the motion of the vertices within ``rings`` rings of the folded triangles is
    replaced by the harmonic (uniform-Laplacian) interpolation of the motion around them,
    everything else (and the vertices where the (N,) bool ``keep`` is set) held fixed.
    Repeats with one more ring each round while folds remain, at most ``rounds`` times
    (``adj``: ``mesh_adjacency``, to reuse). Cheap (sparse solves over a few hundred
    vertices) and leaves fold-free shapes (and ones it cannot improve) untouched. Returns
    (new delta, triangles still folded)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    n = len(rest)
    out = np.asarray(delta, np.float64).copy()
    bad = flipped_faces(rest, rest + out, faces)
    n_before = len(bad)
    if n_before == 0:
        return delta, 0
    adj = mesh_adjacency(faces, n) if adj is None else adj
    lap = (sp.diags(np.asarray(adj.sum(1)).ravel()) - adj).tocsr()
    for r in range(rounds):
        if len(bad) == 0:
            break
        region = _fold_region(faces, bad, adj, n, rings + r, keep)
        free = np.flatnonzero(region)
        fixed = np.flatnonzero(~region)
        a = lap[free][:, free].tocsc()
        rhs = -(lap[free][:, fixed] @ out[fixed])
        out[free] = np.column_stack([spsolve(a, rhs[:, c]) for c in range(3)])
        bad = flipped_faces(rest, rest + out, faces)
    if len(bad) >= n_before:  # no better (e.g. folds pinned by ``keep``): leave it as it was
        return delta, n_before
    return out.astype(delta.dtype), len(bad)


def _fold_region(faces: np.ndarray, bad: np.ndarray, adj, n: int, rings: int, keep: np.ndarray | None) -> np.ndarray:
    """(n,) bool: the vertices of the ``bad`` triangles grown by ``rings`` rings of the
    adjacency ``adj``, less the pinned ``keep`` — the vertices a fold repair may move."""
    region = np.zeros(n, bool)
    region[faces[bad].ravel()] = True
    for _ in range(rings):
        region |= (adj @ region.astype(np.float64)) > 0
    if keep is not None:
        region &= ~keep
    return region


def unfold(rest: np.ndarray, delta: np.ndarray, faces: np.ndarray, adj, keep: np.ndarray | None = None,
           rings: int = 2, rounds: int = 4, margin: float = 0.01, max_move: float = 1_000.0,
           soft: np.ndarray | None = None, soft_move: float = 50.0, trigger: float = 0.0) -> tuple[np.ndarray, int]:
    """Remove folds from one displacement field delta (N, 3) by the smallest moves of the
    vertices near them, one coordinate axis at a time (y, x, z).

    With the other two coordinates fixed, a triangle's normal ``n = (b - a) x (c - a)`` is
    affine in its vertices' third coordinate, so "every triangle touching a moved vertex
    keeps ``n . n_rest >= margin * |n_rest|²``" (n_rest unnormalised at rest) is a set of
    linear constraints, and the least (L1) moves satisfying them a linear program (slack
    variables take what cannot be met). The free vertices are those within ``rings`` rings
    (one more each round) of the triangles with ``n . n_rest < trigger * |n_rest|²``
    (folded for trigger 0; a positive trigger also stiffens nearly folded ones), less the
    (N,) bool ``keep``; moves are bounded by ``max_move`` (``soft_move`` per axis and round
    where the (N,) bool ``soft`` is set). Returns (new delta, triangles still folded)."""
    import scipy.sparse as sp
    from scipy.optimize import linprog

    n = len(rest)
    out = np.asarray(delta, np.float64).copy()
    r0 = np.cross(rest[faces[:, 1]] - rest[faces[:, 0]], rest[faces[:, 2]] - rest[faces[:, 0]])
    a2 = np.maximum((r0 ** 2).sum(1), 1e-30)

    def weak(d):
        p = rest + d
        n1 = np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])
        return np.flatnonzero((n1 * r0).sum(1) < trigger * a2)

    bad = weak(out)
    for r in range(rounds):
        if len(bad) == 0:
            break
        region = _fold_region(faces, bad, adj, n, rings + r, keep)
        free = np.flatnonzero(region)
        col = np.full(n, -1)
        col[free] = np.arange(len(free))
        tri = np.flatnonzero(region[faces].any(1))
        f = faces[tri]
        for axis in (1, 0, 2):
            p = rest + out
            pa, pb, pc = p[f[:, 0]], p[f[:, 1]], p[f[:, 2]]
            e = np.zeros(3)
            e[axis] = 1.0
            # d(n . n_rest)/d(coordinate `axis` of a, b, c), scaled by 1/|n_rest|²
            grads = [(np.cross(e, q) * r0[tri]).sum(1) / a2[tri] for q in (pb - pc, pc - pa, pa - pb)]
            s0 = (np.cross(pb - pa, pc - pa) * r0[tri]).sum(1) / a2[tri]
            m, k = len(tri), len(free)
            ok = [col[f[:, j]] >= 0 for j in range(3)]
            g = sp.coo_matrix((np.concatenate([grads[j][ok[j]] for j in range(3)]),
                               (np.concatenate([np.flatnonzero(ok[j]) for j in range(3)]),
                                np.concatenate([col[f[ok[j], j]] for j in range(3)]))), shape=(m, k)).tocsr()
            # variables [up (k), down (k), slack (m)] >= 0; -(g (up - down)) - slack <= s0 - margin
            a_ub = sp.hstack([-g, g, -sp.identity(m)]).tocsr()
            cost = np.r_[np.ones(2 * k) / max_move, np.full(m, 1e3)]
            cap = np.where(soft[free], soft_move, max_move) if soft is not None else np.full(k, max_move)
            bounds = [(0, c) for c in np.r_[cap, cap]] + [(0, None)] * m
            res = linprog(cost, A_ub=a_ub, b_ub=s0 - margin, bounds=bounds, method="highs")
            if res.status == 0:
                out[free, axis] += res.x[:k] - res.x[k:2 * k]
        bad = weak(out)
    return out.astype(np.asarray(delta).dtype), len(flipped_faces(rest, rest + out, faces))


def sliver_tips(rest: np.ndarray, faces: np.ndarray, rel_area: float = 0.05) -> list[tuple[int, int, int, float]]:
    """The nearly flat triangles (area below ``rel_area`` of the median): (tip, a, b, s) per
    sliver, tip the vertex opposite the longest edge (a, b) and s its projection's parameter
    on that edge (clipped to [0, 1])."""
    p = rest[faces]
    area = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
    out = []
    for t in np.flatnonzero(area < rel_area * np.median(area)):
        f = faces[t]
        lens = [np.linalg.norm(rest[f[(j + 1) % 3]] - rest[f[(j + 2) % 3]]) for j in range(3)]
        j = int(np.argmax(lens))  # the tip is opposite the longest edge
        tip, a, b = f[j], f[(j + 1) % 3], f[(j + 2) % 3]
        ab = rest[b] - rest[a]
        s = float(np.clip((rest[tip] - rest[a]) @ ab / (ab @ ab), 0.0, 1.0))
        out.append((int(tip), int(a), int(b), s))
    return out


def flatten_slivers(deltas: np.ndarray, tips, passes: int = 3) -> None:
    """In place on (K, N, 3) shapes: every sliver's tip moves as the straight-line blend of
    its base edge's ends (``sliver_tips``), so the sliver moves affinely with its base and
    cannot tip over in any shape or blend of shapes (any motion tips a flat triangle that
    moves on its own). Repeated ``passes`` times, for tips that are on another's base."""
    for _ in range(passes):
        for tip, a, b, s in tips:
            deltas[:, tip] = (1 - s) * deltas[:, a] + s * deltas[:, b]
