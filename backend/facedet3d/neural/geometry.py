"""Geometry for the neural render pass (numpy only, no torch): views, UV rasters, shading.

Conventions
- Model space: BFM units (micrometres) or metres as stated, +Y up, +Z toward the camera.
- A *view* is a 3x4 projection, BFM units -> output-image pixels [x right, y down, z toward
  the camera], the same convention as ``meta.pose.projection`` (see ``view_projection``).
- UV maps are (S, S[, C]) with row 0 = top of UV space (v = 1), texel centres at
  u = (c + 0.5) / S, like the FaceAsset texture.
- Normals for shading are in camera orientation (+Z toward the camera, +Y up), as in
  ``fit.detail_input``; lighting is the 9-coefficient SH of ``facedet3d.geometry.lighting``.
- Colour: texture and photo crop are float sRGB in [0, 1]; albedo and shading are linear.

Everything here is a pure function of arrays (no files): ``neural.scene`` reads the
FaceAsset and the photo and builds the subject's data from these pieces.

Detailed geometry G_D: the detail map displaces the surface along its normal *in UV space*
(bump mapping): per texel, P' = P + D n on the mesh's interpolated position map, and the
change of the finite-difference normal of P' against that of P perturbs the smooth normal.
The raster (pixel -> UV) of G_D is the proxy's: sub-millimetre displacements move the
silhouette by far less than a pixel at 256², so only the normals (shading) differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facedet3d.api.types import DETAIL_CAVITY_CLAMP, DETAIL_METRES_PER_LOG_UNIT, FACE_MARGIN, face_square
from facedet3d.assets.bfm import METRES_PER_UNIT
from facedet3d.fit.camera import decompose
from facedet3d.fit.texture import uv_layout
from facedet3d.geometry import raster
from facedet3d.geometry.lighting import fit_lighting, sh9
from facedet3d.imaging.color import REC709_LUMA, srgb_to_linear
from facedet3d.imaging.maps import resize_square

SHADING_FLOOR = 0.05  # shading is clamped here so shading ratios stay finite
# De-lighting divides by at least this shading, so texels the fitted light barely reaches
# (grazing, self-shadowed) are not boosted into bright albedo.
ALBEDO_SHADING_FLOOR = 0.2
LIGHTING_SAMPLES = 8000  # skin pixels (about) the SH fit uses: 9 numbers need few


def crop_matrix(box, side: int, margin: float = FACE_MARGIN) -> np.ndarray:
    """4x4 affine photo pixels -> a ``side``² crop of the square ``api_types.face_square``
    around the face box (as ``preview.view_transform``: z is scaled with x and y)."""
    cx, cy, half = face_square(box, margin)
    s = side / (2 * half)
    return np.array([[s, 0, 0, -(cx - half) * s], [0, s, 0, -(cy - half) * s], [0, 0, s, 0], [0, 0, 0, 1]])


def view_projection(projection, box, side: int, yaw_deg: float = 0.0, pitch_deg: float = 0.0,
                    centre_units: np.ndarray | None = None) -> np.ndarray:
    """3x4 view: BFM units -> pixels of a ``side``² crop around the photo's face box, with
    the head turned by ``yaw_deg`` (about model +Y, positive = the subject turns to their
    left) and ``pitch_deg`` (about model +X) around ``centre_units`` (default: origin)."""
    P = np.vstack([np.asarray(projection, np.float64), [0, 0, 0, 1]])
    a, b = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    r = ry @ rx
    c = np.zeros(3) if centre_units is None else np.asarray(centre_units, np.float64)
    turn = np.eye(4)
    turn[:3, :3], turn[:3, 3] = r, c - r @ c
    return (crop_matrix(box, side) @ P @ turn)[:3]


def photo_crop(rgb: np.ndarray, box, side: int) -> np.ndarray:
    """(side, side, 3) float32 sRGB [0, 1] crop of the (H, W, 3) uint8 photo around the face
    box (the square of ``crop_matrix``, so it matches ``view_projection``)."""
    m = crop_matrix(box, side)
    a = np.array([[m[0, 0], 0, m[0, 3]], [0, m[1, 1], m[1, 3]]], np.float64)
    out = cv2.warpAffine(rgb, a, (side, side), flags=cv2.INTER_AREA if m[0, 0] < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    return out.astype(np.float32) / 255.0


def sh_shading(normals_cam: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """(...,) float32 SH9 shading of (..., 3) unit camera-frame normals, floored."""
    n = normals_cam.reshape(-1, 3)
    s = sh9(n) @ np.asarray(sh, np.float64)
    return np.maximum(s, SHADING_FLOOR).astype(np.float32).reshape(normals_cam.shape[:-1])


def _normalise(n: np.ndarray) -> np.ndarray:
    return (n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class UVGeometry:
    """One posed mesh in UV space at S² texels (model space, metres).

    position: (S, S, 3) interpolated vertex positions; normal: (S, S, 3) unit smooth normals;
    chart: (S, S) bool texels covered by the UV chart."""

    position: np.ndarray
    normal: np.ndarray
    chart: np.ndarray


def uv_geometry(vertices_m: np.ndarray, faces: np.ndarray, size: int) -> UVGeometry:
    lay = uv_layout(size)
    pos = lay.to_image(lay.sample(vertices_m))
    nrm = lay.to_image(lay.sample(raster.vertex_normals(vertices_m, faces)))
    nrm[~lay.chart] = (0.0, 0.0, 1.0)
    return UVGeometry(pos, _normalise(nrm), lay.chart)


def _fd_normal(p: np.ndarray) -> np.ndarray:
    """Unnormalised finite-difference normal (S, S, 3) of a position map (central
    differences, replicated border)."""
    pp = np.pad(p, ((1, 1), (1, 1), (0, 0)), mode="edge")
    du = pp[1:-1, 2:] - pp[1:-1, :-2]
    dv = pp[:-2, 1:-1] - pp[2:, 1:-1]  # rows go down, v goes up
    return np.cross(du, dv)


def detailed_normals(geo: UVGeometry, detail_m: np.ndarray | None) -> np.ndarray:
    """(S, S, 3) unit normals of G_D: the smooth normal perturbed by the displacement
    ``detail_m`` ((S', S') metres along the normal, resampled to S) — see the module
    docstring. ``None`` or an all-zero map returns the smooth normals."""
    if detail_m is None or not np.any(detail_m):
        return geo.normal.copy()
    S = geo.normal.shape[0]
    d = resize_square(np.asarray(detail_m, np.float32), S) * geo.chart
    n0 = _fd_normal(geo.position)
    n1 = _fd_normal(geo.position + d[..., None] * geo.normal)
    l0 = np.linalg.norm(n0, axis=-1, keepdims=True)
    sign = np.sign(np.sum(n0 * geo.normal, -1, keepdims=True))
    delta = sign * (n1 / np.maximum(np.linalg.norm(n1, axis=-1, keepdims=True), 1e-20)
                    - n0 / np.maximum(l0, 1e-20))
    # Only where the whole 3x3 neighbourhood lies on the chart (no cross-seam differences).
    ok = cv2.erode(geo.chart.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & (l0[..., 0] > 0)
    return _normalise(geo.normal + delta * ok[..., None])


def cavity_log(detail_m: np.ndarray, rest_m: np.ndarray, amount: float = 1.0) -> np.ndarray:
    """(S, S) exponent of the face material's cavity term (``addon/adapters/material.py``), log
    units: clip(amount (d - d_rest) / DETAIL_METRES_PER_LOG_UNIT, +-DETAIL_CAVITY_CLAMP), the rest
    map resampled to the detail's size S. exp() of it multiplies the albedo: a fold 0.2 mm
    deeper than in the photo darkens by exp(-0.2)."""
    d = np.asarray(detail_m, np.float32)
    r = resize_square(np.asarray(rest_m, np.float32), d.shape[0])
    k = float(amount) / DETAIL_METRES_PER_LOG_UNIT
    return np.clip(k * (d - r), -DETAIL_CAVITY_CLAMP, DETAIL_CAVITY_CLAMP).astype(np.float32)


@dataclass
class ViewRaster:
    """Per-view raster of a posed mesh, (H, W) image.

    grid: (H, W, 2) float32 UV lookup in ``torch.grid_sample`` coordinates ([-1, 1], x = u,
      y = 1 - 2v; align_corners=False); mask: (H, W) bool covered pixels;
    rotation: 3x3 model -> camera (y up) rotation of the view."""

    grid: np.ndarray
    mask: np.ndarray
    rotation: np.ndarray

    def sample(self, uv_map: np.ndarray) -> np.ndarray:
        """Bilinear lookup of an (S, S[, C]) UV map at every pixel (zeros off the mesh)."""
        S = uv_map.shape[0]
        mx = ((self.grid[..., 0] + 1) * 0.5 * S - 0.5).astype(np.float32)
        my = ((self.grid[..., 1] + 1) * 0.5 * S - 0.5).astype(np.float32)
        out = cv2.remap(uv_map.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out * (self.mask[..., None] if out.ndim == 3 else self.mask)

    def shading(self, normals_uv: np.ndarray, sh: np.ndarray) -> np.ndarray:
        """(H, W) SH shading of UV-space model normals seen from this view (1 off the mesh)."""
        n = _normalise(self.sample(normals_uv)) @ self.rotation.T.astype(np.float32)
        return np.where(self.mask, sh_shading(n, sh), 1.0).astype(np.float32)


def view_raster(vertices_units: np.ndarray, faces: np.ndarray, uv: np.ndarray, view: np.ndarray,
                height: int, width: int) -> ViewRaster:
    """Rasterise the mesh (BFM units) through the 3x4 ``view`` at (height, width)."""
    view = np.asarray(view, np.float64)
    v = np.asarray(vertices_units, np.float64) @ view[:, :3].T + view[:, 3]
    ras = raster.rasterize(v, faces, height, width)
    tuv = raster.interpolate(ras, np.asarray(uv, np.float32))
    grid = np.stack([2 * tuv[..., 0] - 1, 1 - 2 * tuv[..., 1]], -1).astype(np.float32)
    return ViewRaster(grid, ras.covered, decompose(view)["rotation"])


def estimate_lighting(photo_rgb: np.ndarray, vr: ViewRaster, geo: UVGeometry, skin: np.ndarray) -> np.ndarray:
    """(9,) SH lighting of the photo crop ((H, W, 3) float sRGB in [0, 1]) seen through
    ``vr``: robust fit (``geometry.lighting.fit_lighting``) of the linear luminance of skin
    pixels ((H, W) bool) against SH9 of the smooth camera normals, scaled so the mean
    shading over the skin is 1 (the albedo carries the absolute level and colour)."""
    lin = srgb_to_linear(photo_rgb)
    y = lin @ np.array(REC709_LUMA, np.float32)
    n = _normalise(vr.sample(geo.normal)) @ vr.rotation.T.astype(np.float32)
    sel = skin & vr.mask
    idx = np.flatnonzero(sel)[:: max(1, int(sel.sum()) // LIGHTING_SAMPLES)]
    B = sh9(n.reshape(-1, 3)[idx].astype(np.float64))
    c = fit_lighting(y.reshape(-1)[idx], B)
    mean = float(np.mean(B @ c))
    if not np.isfinite(mean) or mean <= 1e-6:
        c, mean = np.eye(9)[0] * 1.0, 1.0  # degenerate photo: ambient light
    return (c / mean).astype(np.float32)


def skin_mask_uv(texture_srgb: np.ndarray, chart: np.ndarray, tau: float = 0.12) -> np.ndarray:
    """(S, S) bool: chart texels whose chroma (log R/G, log B/G) is near the face's median
    (excludes brows, lips, eyes, hair; the region the Detailed Shading Loss uses)."""
    lin = srgb_to_linear(texture_srgb) + 2e-3
    cr, cb = np.log(lin[..., 0] / lin[..., 1]), np.log(lin[..., 2] / lin[..., 1])
    cr, cb = cv2.GaussianBlur(cr, (0, 0), 1.0), cv2.GaussianBlur(cb, (0, 0), 1.0)
    bright = lin.mean(-1) > 0.02
    sel = chart & bright
    if sel.sum() < 50:
        return sel
    d2 = (cr - np.median(cr[sel])) ** 2 + (cb - np.median(cb[sel])) ** 2
    return sel & (d2 < (tau * 0.83) ** 2)  # exp(-d2/tau^2) > 0.5


def delit_albedo(texture_srgb: np.ndarray, geo: UVGeometry, detail_m: np.ndarray, rotation: np.ndarray,
                 sh: np.ndarray) -> np.ndarray:
    """(S, S, 3) float32 linear albedo: the texture T(I_x) ((S, S, 3) sRGB [0, 1]) divided
    by the SH shading of the detailed geometry G_D (``detail_m`` metres) seen with the
    photo's camera ``rotation`` (3x3 model -> camera; texels seen in any view share it)."""
    n_cam = detailed_normals(geo, detail_m) @ np.asarray(rotation).T.astype(np.float32)
    shade = sh_shading(n_cam, sh)
    return np.clip(srgb_to_linear(texture_srgb) / np.maximum(shade, ALBEDO_SHADING_FLOOR)[..., None],
                   0.0, 1.0).astype(np.float32)


def units_from_metres(vertices_m: np.ndarray) -> np.ndarray:
    """(N, 3) float64 BFM units (micrometres) of vertices in metres."""
    return np.asarray(vertices_m, np.float64) / METRES_PER_UNIT
