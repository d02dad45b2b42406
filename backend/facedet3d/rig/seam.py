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


def zip_loops(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Triangles (T, 3) joining closed loop A (positions pa (La, 3), ids 0..La-1) to loop B
    (pb (Lb, 3), ids La..La+Lb-1). Loop B is re-indexed to start at the vertex nearest A's
    first and reversed if it runs the other way; the strip advances along both loops by
    normalised arc length (the shorter next step first), so each triangle spans the gap
    once. Winding: (a_i, a_i+1, b) and (a_i+1, b_j+1, b_j) — consistent along the strip;
    the caller flips all if it faces the wrong way."""
    la, lb = len(pa), len(pb)
    j0 = int(np.linalg.norm(pb - pa[0], axis=1).argmin())
    order = np.roll(np.arange(lb), -j0)
    # direction: B's neighbour after j0 should be nearer A's second vertex than B's before
    if np.linalg.norm(pb[order[1]] - pa[1]) > np.linalg.norm(pb[order[-1]] - pa[1]):
        order = np.r_[order[0], order[1:][::-1]]
    qb = pb[order]
    ta, tb = _arc(pa), _arc(qb)
    tris, i, j = [], 0, 0
    while i < la or j < lb:
        a0, a1 = i % la, (i + 1) % la
        b0, b1 = la + order[j % lb], la + order[(j + 1) % lb]
        if j >= lb or (i < la and ta[i + 1] <= tb[j + 1]):
            tris.append((a0, a1, b0))
            i += 1
        else:
            tris.append((a0, b1, b0))
            j += 1
    return np.asarray(tris, np.int64)
