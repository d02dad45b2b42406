"""Mesh boundaries and the strip of triangles that joins two boundary loops.

Used by ``rig.parts`` to join the ICT head skin to the BFM face's outer border and the ICT
mouth socket to the BFM mouth opening: the strip's vertices on one side are copies of the
BFM border vertices (same positions, same motion in every shape), so the two objects meet
exactly, with no crack, at any expression.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """The closed boundary loops of a triangle mesh, each an (L,) vertex id array ordered
    along the loop in the direction of the faces' winding (a face's boundary edge a->b is
    followed a->b). Raises ValueError on a non-manifold boundary (a vertex with two exits)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.sort(e, 1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    bnd = e[cnt[inv.ravel()] == 1]
    nxt: dict[int, int] = {}
    for a, b in bnd:
        if int(a) in nxt:
            raise ValueError(f"non-manifold boundary at vertex {a}")
        nxt[int(a)] = int(b)
    loops, seen = [], set()
    for start in nxt:
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt.get(v, start)
        loops.append(np.asarray(loop, np.int64))
    return loops


def largest_component(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """(F,) bool: the faces of the largest edge-connected component."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    a = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_vertices, n_vertices))
    _, lab = connected_components(a, directed=False)
    flab = lab[faces[:, 0]]
    best = np.bincount(flab).argmax()
    return flab == best


def _arc(p: np.ndarray) -> np.ndarray:
    """(L+1,) normalised arc length along the closed polyline p (L, 3), ending at 1."""
    seg = np.linalg.norm(np.roll(p, -1, 0) - p, axis=1)
    return np.r_[0.0, np.cumsum(seg)] / seg.sum()


def _zip(pa, pb, order_a, order, anchors) -> np.ndarray:
    """The strip for one pairing of the loops (see ``zip_loops``): A visited in ``order_a``,
    B in ``order``, both from their start."""
    la, lb = len(pa), len(pb)
    ta, tb = _arc(pa[order_a]), _arc(pb[order])
    if anchors is not None:
        pos_a = np.array([int(np.flatnonzero(order_a == int(i))[0]) for i, _ in anchors] + [la])
        pos_b = np.array([int(np.flatnonzero(order == int(j))[0]) for _, j in anchors] + [lb])
        if np.any(np.diff(pos_a) <= 0) or np.any(np.diff(pos_b) <= 0):
            return None  # the anchors come in another order along B this way round
        ta = np.interp(ta, ta[pos_a], tb[pos_b])
    tris, i, j = [], 0, 0
    while i < la or j < lb:
        a0, a1 = order_a[i % la], order_a[(i + 1) % la]
        b0, b1 = la + order[j % lb], la + order[(j + 1) % lb]
        if j >= lb or (i < la and ta[i + 1] <= tb[j + 1]):
            tris.append((a0, a1, b0))
            i += 1
        else:
            tris.append((a0, b1, b0))
            j += 1
    return np.asarray(tris, np.int64)


def zip_loops(pa: np.ndarray, pb: np.ndarray, anchors=None) -> np.ndarray:
    """Triangles (T, 3) joining closed loop A (positions pa (La, 3), ids 0..La-1) to loop B
    (pb (Lb, 3), ids La..La+Lb-1). Loop B is re-indexed to start at the vertex nearest A's
    first and reversed if it runs the other way; the strip advances along both loops by
    normalised arc length (the shorter next step first), so each triangle spans the gap
    once. Winding: (a_i, a_i+1, b) and (a_i+1, b_j+1, b_j) — consistent along the strip;
    the caller flips all if it faces the wrong way.

    ``anchors``: optional pairs (i in A, j in B) of vertices that must meet (the mouth's
    corners): the strip starts at the first pair, A's arc length is remapped piecewise so
    that every pair is reached on both loops at once, and B runs the way round that gives
    the shorter strip (at a corner both of B's neighbours are equally near A's). Without
    them two loops of different shape (the BFM's lip slit, ICT's socket rim) drift apart
    along the way and triangles join one lip to the other, spanning the mouth when it opens."""
    la, lb = len(pa), len(pb)
    start = 0 if anchors is None else int(anchors[0][0])
    order_a = np.roll(np.arange(la), -start)
    j0 = int(np.linalg.norm(pb - pa[start], axis=1).argmin()) if anchors is None else int(anchors[0][1])
    order = np.roll(np.arange(lb), -j0)
    if anchors is None:
        # direction: B's neighbour after j0 should be nearer A's second vertex than B's before
        if np.linalg.norm(pb[order[1]] - pa[order_a[1]]) > np.linalg.norm(pb[order[-1]] - pa[order_a[1]]):
            order = np.r_[order[0], order[1:][::-1]]
        return _zip(pa, pb, order_a, order, None)
    pts = np.concatenate([pa, pb])
    best = None
    for o in (order, np.r_[order[0], order[1:][::-1]]):
        tris = _zip(pa, pb, order_a, o, anchors)
        if tris is None:
            continue
        length = sum(np.linalg.norm(pts[tris[:, k]] - pts[tris[:, (k + 1) % 3]], axis=1).sum() for k in range(3))
        if best is None or length < best[0]:
            best = (length, tris)
    if best is None:
        raise ValueError("zip_loops: the anchors are not in one order along both loops")
    return best[1]
