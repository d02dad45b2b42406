"""A small vectorised software rasteriser (numpy only).

Used for visibility in the texture unwrap, UV-space rasters, synthetic test images and,
later, the neural renderer. It is deliberately simple: screen-space linear interpolation
(correct for orthographic / weak-perspective image-space meshes, which is what the fit
produces), no culling, no anti-aliasing.

Conventions
-----------
- Vertices are (N, 3) ``[x, y, z]``: x in pixels to the right, y in pixels downward,
  z in any unit where LARGER = CLOSER to the camera (the z-test keeps the max z).
- Pixel (row r, col c) has its centre at x = c, y = r (0-based pixel centres). A pixel is
  covered when its centre lies inside (or on an edge of) a triangle.
- Both windings are rasterised; culling back faces is the caller's business.

Method: every triangle enumerates the pixel centres of its integer bounding box (one
``np.repeat``), the barycentric weights of each (triangle, pixel) candidate come from
per-triangle affine coefficients, and the depth test is resolved with ``np.maximum.at``.
Triangles are processed in chunks so memory stays bounded for large triangles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Candidate (triangle, pixel) pairs per chunk: bounds memory (~40 bytes per pair).
_CHUNK_PAIRS = 4_000_000
# Tolerance on barycentric weights so pixel centres exactly on a shared edge are never
# dropped by rounding (double coverage is resolved by the z-test).
_EDGE_EPS = 1e-5


@dataclass(frozen=True)
class Raster:
    """Result of :func:`rasterize` for an image of H rows and W columns.

    tri_id: (H, W) int32, index of the visible triangle, -1 where empty.
    bary:   (H, W, 3) float32, barycentric weights of that triangle's three vertices
            (in ``faces`` order); zeros where empty. Weights sum to 1.
    depth:  (H, W) float32, interpolated z of the visible surface; -inf where empty.
    faces:  (F, 3) int64, the faces that were rasterised (``tri_id`` indexes them).
    """

    tri_id: np.ndarray
    bary: np.ndarray
    depth: np.ndarray
    faces: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        """(H, W) bool, True where some triangle covers the pixel centre."""
        return self.tri_id >= 0


def _tri_setup(verts: np.ndarray, faces: np.ndarray, height: int, width: int):
    """Per-triangle integer bbox and affine barycentric/depth maps relative to its corner.

    For triangle t with bbox corner (cx0, cy0) (the first pixel centre inside its float
    bbox), a pixel at (cx0 + i, cy0 + j) has
        w0 = g[0,t] + g[1,t] * i + g[2,t] * j
        w1 = g[3,t] + g[4,t] * i + g[5,t] * j
        z  = g[6,t] + g[7,t] * i + g[8,t] * j
    Working relative to the corner keeps float32 exact enough per candidate (the large
    constant terms are computed once per triangle in float64).
    Returns (tris, cx0, cy0, nx, ny, g) for the non-degenerate, on-screen triangles.
    """
    # Per-corner coordinate arrays; elementwise min/max of three 1-D arrays is much
    # faster than axis reductions over a trailing axis of length 3.
    x0, x1, x2 = (verts[faces[:, k], 0] for k in range(3))
    y0, y1, y2 = (verts[faces[:, k], 1] for k in range(3))
    area2 = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)  # twice the signed area
    cx0 = np.maximum(np.ceil(np.minimum(np.minimum(x0, x1), x2) - _EDGE_EPS), 0)
    cx1 = np.minimum(np.floor(np.maximum(np.maximum(x0, x1), x2) + _EDGE_EPS), width - 1)
    cy0 = np.maximum(np.ceil(np.minimum(np.minimum(y0, y1), y2) - _EDGE_EPS), 0)
    cy1 = np.minimum(np.floor(np.maximum(np.maximum(y0, y1), y2) + _EDGE_EPS), height - 1)
    nx, ny = cx1 - cx0 + 1, cy1 - cy0 + 1
    # NaN coordinates make every comparison False, so they drop out here as well.
    ok = (nx > 0) & (ny > 0) & (np.abs(area2) > 1e-12)
    t = np.nonzero(ok)[0]
    inv = 1.0 / area2[t]
    x0, x1, x2, y0, y1, y2 = (a[t] for a in (x0, x1, x2, y0, y1, y2))
    ox, oy = cx0[t], cy0[t]
    # w0 is the signed, normalised area of the sub-triangle opposite vertex 0, etc.
    a0, b0 = (y1 - y2) * inv, (x2 - x1) * inv
    a1, b1 = (y2 - y0) * inv, (x0 - x2) * inv
    w0 = ((x1 - ox) * (y2 - oy) - (x2 - ox) * (y1 - oy)) * inv
    w1 = ((x2 - ox) * (y0 - oy) - (x0 - ox) * (y2 - oy)) * inv
    z0, z1, z2 = (verts[faces[t, k], 2] for k in range(3))
    dz0, dz1 = z0 - z2, z1 - z2
    # Rows (not columns) so a bucket's gather g[:, sel] yields contiguous rows.
    g = np.stack([w0, a0, b0, w1, a1, b1,
                  z2 + w0 * dz0 + w1 * dz1, a0 * dz0 + a1 * dz1, b0 * dz0 + b1 * dz1], axis=0)
    return t, ox.astype(np.int64), oy.astype(np.int64), nx[t].astype(np.int64), \
        ny[t].astype(np.int64), g.astype(np.float32)


def _pow2(n: np.ndarray) -> np.ndarray:
    """Smallest power of two >= n (n >= 1), elementwise."""
    return (1 << np.ceil(np.log2(np.maximum(n, 1))).astype(np.int64)).astype(np.int64)


def rasterize(verts: np.ndarray, faces: np.ndarray, height: int, width: int) -> Raster:
    """Rasterise a triangle mesh into an (height, width) image.

    verts: (N, 3) float, [x px right, y px down, z larger = closer].
    faces: (F, 3) int vertex indices (either winding).
    Returns a :class:`Raster` (tri_id, bary, depth, faces); see the module docstring for
    the pixel-centre and depth conventions.
    """
    H, W = int(height), int(width)
    verts = np.asarray(verts, np.float64)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    depth = np.full(H * W, -np.inf, np.float32)
    tri_id = np.full(H * W, -1, np.int32)
    bary = np.zeros((H * W, 3), np.float32)
    if faces.shape[0] and H > 0 and W > 0:
        tris, ox, oy, nx, ny, g = _tri_setup(verts, faces, H, W)
        # Bucket triangles by power-of-two bbox size: within a bucket all candidates are
        # a dense (n, by, bx) broadcast, which avoids per-candidate gathers (the slow
        # part of a repeat-based enumeration). Waste is < 4x candidates, all cheap.
        bx, by = _pow2(nx), _pow2(ny)
        key = bx * (1 << 20) + by
        order = np.argsort(key, kind="stable")
        ukeys, first = np.unique(key[order], return_index=True)
        last = np.append(first[1:], order.size)
        for kk, s0, s1 in zip(ukeys, first, last):
            bxk, byk = int(kk >> 20), int(kk & ((1 << 20) - 1))
            step = max(1, _CHUNK_PAIRS // (bxk * byk))
            for c0 in range(s0, s1, step):
                sel = order[c0:min(c0 + step, s1)]
                _raster_bucket(sel, tris, ox, oy, nx, ny, g, bxk, byk, W,
                               depth, tri_id, bary)
        covered = tri_id >= 0
        # Clamp rounding so the weights are a proper convex combination.
        b = np.clip(bary[covered], 0.0, None)
        bary[covered] = b / np.maximum(b.sum(1, keepdims=True), 1e-12)
    return Raster(tri_id.reshape(H, W), bary.reshape(H, W, 3), depth.reshape(H, W), faces)


def _raster_bucket(sel, tris, ox, oy, nx, ny, g, bx, by, W, depth, tri_id, bary) -> None:
    """Rasterise triangles ``sel`` (indices into the setup arrays) whose bboxes fit in
    (by, bx) pixels, z-testing into the flat ``depth``/``tri_id``/``bary`` buffers."""
    gs = g[:, sel][:, :, None, None]  # (9, n, 1, 1)
    i = np.arange(bx, dtype=np.float32)[None, None, :]
    j = np.arange(by, dtype=np.float32)[None, :, None]
    w0 = gs[0] + gs[1] * i + gs[2] * j  # (n, by, bx)
    w1 = gs[3] + gs[4] * i + gs[5] * j
    w2 = 1.0 - w0 - w1
    inside = (w0 >= -_EDGE_EPS) & (w1 >= -_EDGE_EPS) & (w2 >= -_EDGE_EPS)
    if bx > 1:
        inside &= i < nx[sel][:, None, None]
    if by > 1:
        inside &= j < ny[sel][:, None, None]
    t_loc, jj, ii = np.nonzero(inside)
    if t_loc.size == 0:
        return
    w0, w1, w2 = w0[inside], w1[inside], w2[inside]
    z = (gs[6, t_loc, 0, 0] + gs[7, t_loc, 0, 0] * ii.astype(np.float32)
         + gs[8, t_loc, 0, 0] * jj.astype(np.float32))
    s = sel[t_loc]
    pix = (oy[s] + jj) * W + (ox[s] + ii)
    # z-test: the per-pixel max over this chunk, then keep candidates that reach it and
    # beat what earlier chunks wrote (strictly, so earlier ties stay).
    before = depth[pix]
    np.maximum.at(depth, pix, z)
    win = (z >= depth[pix]) & (z > before)
    pw = pix[win]
    tri_id[pw] = tris[s[win]].astype(np.int32)
    bary[pw] = np.stack([w0[win], w1[win], w2[win]], axis=1)


def interpolate(raster: Raster, vertex_attr: np.ndarray) -> np.ndarray:
    """Interpolate per-vertex attributes over a raster.

    raster:      a :class:`Raster` of shape (H, W) (it carries its faces).
    vertex_attr: (N, C) or (N,) float per-vertex values.
    Returns (H, W, C) float32 (or (H, W) for 1-D input), zeros where empty.
    """
    attr = np.asarray(vertex_attr, np.float32)
    flat = attr.ndim == 1
    if flat:
        attr = attr[:, None]
    H, W = raster.tri_id.shape
    out = np.zeros((H * W, attr.shape[1]), np.float32)
    tid = raster.tri_id.reshape(-1)
    sel = np.nonzero(tid >= 0)[0]
    if sel.size:
        vid = raster.faces[tid[sel]]  # (K, 3)
        b = raster.bary.reshape(-1, 3)[sel]
        out[sel] = (attr[vid[:, 0]] * b[:, 0:1] + attr[vid[:, 1]] * b[:, 1:2]
                    + attr[vid[:, 2]] * b[:, 2:3])
    out = out.reshape(H, W, -1)
    return out[..., 0] if flat else out


def face_normals(verts: np.ndarray, faces: np.ndarray, normalize: bool = True, dtype=np.float32) -> np.ndarray:
    """(F, 3) triangle normals ``(v1 - v0) x (v2 - v0)`` (right-hand rule), computed in
    float64 and returned as ``dtype``.

    Unnormalised, the length is twice the triangle area (used for area weighting).
    Degenerate triangles give zero vectors.
    """
    v = np.asarray(verts, np.float64)
    f = np.asarray(faces, np.int64)
    # Explicit component-wise cross on contiguous columns (np.cross is several x slower).
    p0, p1, p2 = ([v[f[:, k], c] for c in range(3)] for k in range(3))
    e1 = [p1[c] - p0[c] for c in range(3)]
    e2 = [p2[c] - p0[c] for c in range(3)]
    n = np.stack([e1[1] * e2[2] - e1[2] * e2[1],
                  e1[2] * e2[0] - e1[0] * e2[2],
                  e1[0] * e2[1] - e1[1] * e2[0]], axis=1)
    if normalize:
        n /= np.maximum(np.sqrt((n * n).sum(1, keepdims=True)), 1e-30)
    return n.astype(dtype, copy=False)


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 3) float32 unit vertex normals, area-weighted average of adjacent face normals.

    Orientation follows the right-hand rule on ``faces``: for the BFM (counter-clockwise
    seen from +Z in model space, +Y up) they point out of the face. In a y-down image frame
    the handedness flips, so pass ``verts * [1, -1, 1]`` to get camera-frame normals.
    Isolated vertices get (0, 0, 1).
    """
    fn = face_normals(verts, faces, normalize=False)  # |fn| = 2 * area: area weighting
    return vertex_normals_from_faces(fn, faces, np.asarray(verts).shape[0])


def vertex_normals_from_faces(face_n: np.ndarray, faces: np.ndarray, n_vertices: int
                              ) -> np.ndarray:
    """(N, 3) float32 unit vertex normals as the normalised sum of the (F, 3) per-face
    vectors ``face_n`` over each vertex's faces (pass unnormalised normals for area
    weighting). Isolated vertices get (0, 0, 1)."""
    idx = np.asarray(faces, np.int64).reshape(-1)
    n = np.empty((n_vertices, 3), np.float64)
    for c in range(3):
        # bincount is much faster than np.add.at for scatter-add.
        n[:, c] = np.bincount(idx, weights=np.repeat(face_n[:, c].astype(np.float64), 3),
                              minlength=n_vertices)
    norm = np.sqrt((n * n).sum(1))
    bad = norm <= 1e-30
    n /= np.where(bad, 1.0, norm)[:, None]
    n[bad] = (0.0, 0.0, 1.0)
    return n.astype(np.float32)
