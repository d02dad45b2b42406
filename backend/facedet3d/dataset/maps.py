"""Depth, normals and mask of a fitted (or posed) mesh, aligned with the output frame.

One software raster (``geometry.raster``, z-buffered) of the mesh in output pixels gives
the mask (covered pixels), the depth (interpolated camera-frame z, see ``camera``) and the
normals (interpolated vertex normals of the same mesh in the same metric camera frame,
renormalised). ``add_detail`` adds a UV-space displacement map (metres along the normal:
the photo's own D(Ix), or DetP's prediction) to both, consistently.

Arrays: depth (H, W) float32 metres, 0 where the mask is 0; normals (H, W, 3) float32
unit (x right, y up, z toward the camera), 0 outside; mask (H, W) bool.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facedet3d.assets.bfm import METRES_PER_UNIT
from facedet3d.dataset.camera import Camera, Frame
from facedet3d.geometry import raster as rz


@dataclass
class Maps:
    depth: np.ndarray
    normals: np.ndarray
    mask: np.ndarray
    raster: rz.Raster
    uv: np.ndarray | None = None  # (H, W, 2) per-pixel texture coordinates, when asked


def image_vertices(x_units: np.ndarray, projection: np.ndarray, rotation: np.ndarray, frame: Frame) -> np.ndarray:
    """(N, 3): [x, y] output pixels (the fit's projection P, then the frame), z metres
    toward the camera from the model origin (rotation R, the orthonormal part of P)."""
    P = np.asarray(projection, np.float64)
    X = np.asarray(x_units, np.float64)
    xy = X @ P[:2, :3].T + P[:2, 3]
    z = (X @ np.asarray(rotation, np.float64)[2]) * METRES_PER_UNIT
    return np.column_stack([frame.to_out(xy), z])


def camera_vertices(verts_img: np.ndarray, cam: Camera) -> np.ndarray:
    """The same points in the metric camera frame (x right, y up, z toward the camera)."""
    s = cam.s_px_per_m
    return np.column_stack([verts_img[:, 0] / s, -verts_img[:, 1] / s, verts_img[:, 2]])


def render_maps(verts_img: np.ndarray, faces: np.ndarray, frame: Frame, cam: Camera,
                uv: np.ndarray | None = None) -> Maps:
    """Rasterise ``verts_img`` (``image_vertices``) into depth / normals / mask.
    Per-pixel work touches only the covered pixels (a face is a fraction of a photo)."""
    H, W = frame.height, frame.width
    ras = rz.rasterize(verts_img, faces, H, W)
    tri = ras.tri_id.reshape(-1)
    sel = np.flatnonzero(tri >= 0)
    vid = ras.faces[tri[sel]]
    b = ras.bary.reshape(-1, 3)[sel]

    def interp(attr):
        return attr[vid[:, 0]] * b[:, 0:1] + attr[vid[:, 1]] * b[:, 1:2] + attr[vid[:, 2]] * b[:, 2:3]

    depth = np.zeros(H * W, np.float32)
    depth[sel] = cam.distance_m - ras.depth.reshape(-1)[sel]
    n = interp(rz.vertex_normals(camera_vertices(verts_img, cam), faces))
    n /= np.maximum(np.sqrt((n * n).sum(1, keepdims=True)), 1e-8)
    normals = np.zeros((H * W, 3), np.float32)
    normals[sel] = n
    uvmap = None
    if uv is not None:
        uvmap = np.zeros((H * W, 2), np.float32)
        uvmap[sel] = interp(np.asarray(uv, np.float32))
        uvmap = uvmap.reshape(H, W, 2)
    return Maps(depth.reshape(H, W), normals.reshape(H, W, 3), ras.covered, ras, uvmap)


def sample_uv(uv_image: np.ndarray, uvmap: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a UV-space image (row 0 = v = 1, texel centres at (c + 0.5) / S)
    at per-pixel texture coordinates ``uvmap`` (H, W, 2); 0 outside ``mask``."""
    S = uv_image.shape[0]
    mx = (uvmap[..., 0] * S - 0.5).astype(np.float32)
    my = ((1.0 - uvmap[..., 1]) * S - 0.5).astype(np.float32)
    out = cv2.remap(np.ascontiguousarray(uv_image), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = mask if out.ndim == 2 else mask[..., None]
    return np.where(m, out, 0).astype(uv_image.dtype)


def add_detail(maps: Maps, disp_uv: np.ndarray, cam: Camera, min_nz: float = 0.05) -> np.ndarray:
    """Displace the surface by ``disp_uv`` ((S, S) metres along the normal, UV layout) in
    place: depth shrinks by the displacement's component toward the camera (d * n_z), and
    the normals tilt by that height field's gradient (n ∝ n / n_z - grad(dz), the height
    field form of the surface, exact for a small displacement). Grazing pixels
    (n_z < ``min_nz``) keep their smooth values. Returns the per-pixel displacement (m)."""
    if maps.uv is None:
        raise ValueError("render_maps(..., uv=...) is needed for details")
    d = sample_uv(disp_uv.astype(np.float32), maps.uv, maps.mask)
    n = maps.normals
    ok = maps.mask & (n[..., 2] > min_nz)
    dz = np.where(ok, d * n[..., 2], 0.0).astype(np.float32)  # metres toward the camera
    maps.depth = np.where(maps.mask, maps.depth - dz, 0.0).astype(np.float32)
    # Gradient in metres per metre: one output pixel is 1 / s metres; image rows go down.
    gx = np.zeros_like(dz)
    gy = np.zeros_like(dz)
    inner = ok.copy()
    inner[:, 1:-1] &= ok[:, :-2] & ok[:, 2:]
    inner[1:-1, :] &= ok[:-2, :] & ok[2:, :]
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    s = cam.s_px_per_m
    gx[:, 1:-1] = (dz[:, 2:] - dz[:, :-2]) * 0.5 * s
    gy[1:-1, :] = -(dz[2:, :] - dz[:-2, :]) * 0.5 * s  # d/dy with y up
    nz = np.maximum(n[..., 2], min_nz)
    t = np.stack([n[..., 0] / nz - gx, n[..., 1] / nz - gy, np.ones_like(nz)], axis=-1)
    t /= np.linalg.norm(t, axis=-1, keepdims=True)
    maps.normals = np.where(inner[..., None], t, n).astype(np.float32)
    return d


def normals_from_depth(depth: np.ndarray, mask: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Normals of the depth map itself (central differences in the orthographic frame),
    and where they are defined (pixel and its 4 neighbours in the mask). For checks."""
    z = -depth.astype(np.float64)  # toward the camera, up to the constant Z0
    s = cam.s_px_per_m
    zx = np.zeros_like(z)
    zy = np.zeros_like(z)
    zx[:, 1:-1] = (z[:, 2:] - z[:, :-2]) * 0.5 * s
    zy[1:-1, :] = -(z[2:, :] - z[:-2, :]) * 0.5 * s
    ok = mask.copy()
    ok[:, 1:-1] &= mask[:, :-2] & mask[:, 2:]
    ok[1:-1, :] &= mask[:-2, :] & mask[2:, :]
    ok[[0, -1], :] = False
    ok[:, [0, -1]] = False
    n = np.stack([-zx, -zy, np.ones_like(z)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return n.astype(np.float32), ok
