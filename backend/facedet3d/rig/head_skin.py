"""The head's skin colour (per vertex, sRGB): it continues the face's colour and lighting.

Three layers, from far to near the face:

1. **Lighting model** (everywhere): the photo's skin on the face is fitted as one albedo
   (the median skin colour) times a shading ``s0 + s . n`` over the face's vertex normals
   ``n`` (first-order spherical harmonics; robust: refits without the worst residuals), from the
   observed, skin-like texels of the face (not the eyes or the mouth, nothing far from the
   skin tone: hair, brows, shadow, background). Evaluated on the head's normals, it gives the
   scalp, back of the head and neck the face's tone with its low-frequency light gradient
   (the side the light comes from is lighter; a neck facing down gets the face's
   downward-facing shade). The shading factor is clamped to ``SHADE_RANGE`` of the mean,
   so directions the face never shows (the back) cannot extrapolate to black or white
   (the shading is relative to the albedo, ~1 on the face).
2. **Border continuation** (within ``SKIN_BLEND_MM`` of the seam): the face's own colour at
   its border, as a smooth offset from the lighting model: the border colours are averaged
   along the seam over ``BORDER_SIGMA_MM`` (Gaussian), and every head vertex takes the
   Gaussian-weighted offset of the seam vertices near it, fading with the distance. No head
   vertex copies one border texel, so texture noise, a hair strand or a fill artefact at the
   border cannot streak outwards.
3. **The photo itself** where it sees the head (optional; the fit passes the photo and its
   camera): head vertices in front of everything else in the photo's view (a z-buffer of
   the face and the head), facing the camera (``PHOTO_COS``) and whose photo colour is
   skin-like (chroma near the face's skin; the neck may be darker, in shadow) take the photo's
   colour, smoothed over the mesh. That is typically the neck and the jaw's underside.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from facedet3d.geometry import raster
from facedet3d.rig.geometry import smoothstep

SKIN_BLEND_MM = 20.0  # the border offset fades to zero this far from the seam
BORDER_SIGMA_MM = 8.0  # border colours averaged along the seam over this (Gaussian sigma)
SKIN_FIT_RGB = 60.0  # face texels this near the skin tone (RGB) fit the lighting model
SHADE_RANGE = (0.6, 1.2)  # the model's shading, relative to its mean, is kept in this range
PHOTO_COS = 0.35  # head vertices facing the camera at least this much take the photo's colour
PHOTO_CHROMA = 14.0  # ... when their Lab chroma is within this of the face's skin
PHOTO_DL = (-35.0, 15.0)  # ... and their Lab lightness within this of the skin's (shadow allowed)
Z_RASTER_PX = 256  # visibility raster size across the face and head
Z_TOL_MM = 3.0  # a head vertex within this of the nearest surface is seen
SMOOTH_ITERS = 6  # mesh smoothing passes over the photo's colours (noise, not shape)


def _sample(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    s = texture.shape[0]
    x = np.clip((uv[:, 0] * s).astype(int), 0, s - 1)
    y = np.clip(((1.0 - uv[:, 1]) * s).astype(int), 0, s - 1)
    return texture[y, x].astype(np.float64)


def outward_normals(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(M, 3) unit vertex normals, flipped if the mesh's winding points them inwards
    (judged against the direction from the centroid, over all vertices)."""
    n = raster.vertex_normals(v, faces).astype(np.float64)
    if (n * (v - v.mean(0))).sum() < 0:
        n = -n
    return n


def lighting_model(face_v: np.ndarray, face_faces: np.ndarray, uv: np.ndarray, texture: np.ndarray,
                   mask: np.ndarray, tone: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(albedo (3,) sRGB, shading (4,) ``[s0, sx, sy, sz]``) fitted on the face (layer 1 of the
    module docstring): colour = albedo * (s0 + s . n), one chroma, the light in a scalar
    shading (the face's chroma varies by region, not by normal: a per-channel fit would
    tint the back of the head). ``exclude``: (N,) bool face vertices never used."""
    col = _sample(texture, uv)
    s = mask.shape[0]
    seen = mask[np.clip(((1 - uv[:, 1]) * s).astype(int), 0, s - 1), np.clip((uv[:, 0] * s).astype(int), 0, s - 1)] > 127
    use = seen & ~exclude & (np.linalg.norm(col - tone[None], axis=1) < SKIN_FIT_RGB)
    if use.sum() < 50:  # too little skin seen: a flat tone
        return tone.astype(np.float64), np.r_[1.0, 0.0, 0.0, 0.0]
    x = np.c_[np.ones(len(face_v)), outward_normals(face_v, face_faces)][use]
    albedo = np.median(col[use], 0)
    y = (col[use] @ albedo) / float(albedo @ albedo)  # brightness relative to the albedo
    keep = np.ones(len(y), bool)
    for _ in range(3):
        beta, *_ = np.linalg.lstsq(x[keep], y[keep], rcond=None)
        r = np.abs(y - x @ beta)
        keep = r < 2.5 * np.median(r[keep]) + 1e-6
    return albedo, beta


def shade(model: tuple[np.ndarray, np.ndarray], normals: np.ndarray) -> np.ndarray:
    """(M, 3) the lighting model at unit normals, its shading clamped to ``SHADE_RANGE``."""
    albedo, beta = model
    return albedo[None] * np.clip(beta[0] + normals @ beta[1:], *SHADE_RANGE)[:, None]


def border_offset(head_v: np.ndarray, seam_pos: np.ndarray, seam_col: np.ndarray, seam_model: np.ndarray
                  ) -> np.ndarray:
    """(M, 3): the face border's colour minus the lighting model, smoothed along the seam and
    spread to the head with a fade over ``SKIN_BLEND_MM`` (layer 2)."""
    mm = 1e-3
    tree = cKDTree(seam_pos * mm)
    k = min(48, len(seam_pos))
    d, j = tree.query(seam_pos * mm, k=k)
    w = np.exp(-0.5 * (d / BORDER_SIGMA_MM) ** 2)
    off = seam_col - seam_model
    smooth = (w[..., None] * off[j]).sum(1) / w.sum(1)[:, None]
    d0 = tree.query(head_v * mm)[0]
    out = np.zeros((len(head_v), 3))
    near = d0 < SKIN_BLEND_MM  # the offset has faded out beyond
    d, j = tree.query(head_v[near] * mm, k=min(24, len(seam_pos)))
    w = np.exp(-0.5 * (d / BORDER_SIGMA_MM) ** 2) + 1e-12
    spread = (w[..., None] * smooth[j]).sum(1) / w.sum(1)[:, None]
    out[near] = spread * (1.0 - smoothstep(d0[near], 0.0, SKIN_BLEND_MM))[:, None]
    return out


def _lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    lab = cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.uint8).reshape(-1, 1, 3), cv2.COLOR_RGB2LAB)
    lab = lab.reshape(-1, 3).astype(np.float64)
    lab[:, 0] *= 100.0 / 255.0
    lab[:, 1:] -= 128.0
    return lab


def photo_colours(head_v: np.ndarray, head_faces: np.ndarray, face_v: np.ndarray, face_faces: np.ndarray,
                  photo: np.ndarray, projection: np.ndarray, tone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((M, 3) photo colour, (M,) weight 0..1) of the head vertices the photo sees as skin
    (layer 3). ``projection``: the fit's (3, 4) camera, BFM units -> photo pixels (x, y, depth
    larger = nearer, as ``fit.camera.project``)."""
    from facedet3d.fit.camera import project

    h, w = photo.shape[:2]
    hv = project(head_v, projection).astype(np.float64)
    fv = project(face_v, projection).astype(np.float64)
    # the z-buffer at ~Z_RASTER_PX across the two meshes (visibility, not colour)
    both = np.r_[fv, hv]
    lo = both[:, :2].min(0)
    k = Z_RASTER_PX / max(float((both[:, :2].max(0) - lo).max()), 1e-6)
    rv = np.c_[(both[:, :2] - lo) * k + 1.0, both[:, 2] * k]
    n_px = Z_RASTER_PX + 3
    depth = np.asarray(raster.rasterize(rv, np.r_[face_faces, head_faces + len(fv)], n_px, n_px).depth)
    rh = rv[len(fv):]
    zc = np.clip(np.rint(rh[:, 0]).astype(int), 0, n_px - 1)
    zr = np.clip(np.rint(rh[:, 1]).astype(int), 0, n_px - 1)
    mm_px = 1_000.0 * np.linalg.norm(projection[0, :3]) * k  # raster pixels per mm
    front = np.isfinite(depth[zr, zc]) & (rh[:, 2] >= depth[zr, zc] - Z_TOL_MM * mm_px)
    x = np.clip(np.round(hv[:, 0]).astype(int), 0, w - 1)
    y = np.clip(np.round(hv[:, 1]).astype(int), 0, h - 1)
    front &= (hv[:, 0] >= 0) & (hv[:, 0] < w) & (hv[:, 1] >= 0) & (hv[:, 1] < h)
    n = outward_normals(head_v, head_faces)
    view = projection[2, :3] / max(np.linalg.norm(projection[2, :3]), 1e-12)  # towards the camera
    facing = n @ view
    col = photo[y, x].astype(np.float64)
    lab, ref = _lab(col), _lab(tone[None])[0]
    skin = (np.linalg.norm(lab[:, 1:] - ref[1:], axis=1) < PHOTO_CHROMA) \
        & (lab[:, 0] - ref[0] > PHOTO_DL[0]) & (lab[:, 0] - ref[0] < PHOTO_DL[1])
    wgt = (front & skin).astype(np.float64) * smoothstep(facing, PHOTO_COS, PHOTO_COS + 0.25)
    return col, wgt


def smooth_on_mesh(values: np.ndarray, weight: np.ndarray, faces: np.ndarray, iters: int = SMOOTH_ITERS
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted neighbour averaging over the mesh's edges: (values, weight) with noise
    evened out and the weight's edge softened (a photo patch blends into the model)."""
    e = np.r_[faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]
    e = np.r_[e, e[:, ::-1]]
    m = len(values)
    wv = values * weight[:, None]
    wt = weight.copy()
    for _ in range(iters):
        cnt = np.bincount(e[:, 0], minlength=m) + 1.0
        wv = (wv + np.stack([np.bincount(e[:, 0], weights=wv[e[:, 1], c], minlength=m) for c in range(3)], 1)) / cnt[:, None]
        wt = (wt + np.bincount(e[:, 0], weights=wt[e[:, 1]], minlength=m)) / cnt
    out = wv / np.maximum(wt, 1e-9)[:, None]
    return out, wt
