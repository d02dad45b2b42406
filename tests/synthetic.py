"""Synthetic faces with known parameters: a BFM head rendered with our rasteriser.

Used by the round-trip tests: render a face whose pose, shape and landmarks are known,
fit it, compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facedet3d.geometry import raster
from facedet3d.assets.bfm import BFM


@dataclass
class SyntheticFace:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    landmarks_2d: np.ndarray  # (68, 2) pixels, ground truth
    verts_img: np.ndarray  # (N, 3) image-space vertices
    yaw_deg: float
    box: tuple[float, float, float, float]  # LEFT, TOP, WIDTH, HEIGHT of the rendered face


def rotation(yaw_deg: float, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def render_face(bfm: BFM, texture: np.ndarray, shape: np.ndarray, yaw_deg: float, pitch_deg: float = 0.0,
                roll_deg: float = 0.0, size: int = 480, face_px: float = 200.0, seed: int = 0) -> SyntheticFace:
    """Render the BFM with identity ``shape`` (40,), neutral expression, textured with a UV
    ``texture`` (S,S,3) uint8, on a smooth noisy background."""
    rng = np.random.default_rng(seed)
    model = bfm.vertices(shape, None).astype(np.float64)
    model -= model[bfm.landmarks].mean(0)
    rot = rotation(yaw_deg, pitch_deg, roll_deg)
    cam = model @ rot.T
    lm = bfm.landmarks
    s = face_px / np.ptp(model[lm, 0])  # pixels per BFM unit
    img_v = np.stack([cam[:, 0] * s + size / 2, -cam[:, 1] * s + size / 2 + 0.05 * size, cam[:, 2] * s], 1)
    ras = raster.rasterize(img_v.astype(np.float32), bfm.faces, size, size)
    uv = raster.interpolate(ras, bfm.uv.astype(np.float32))
    S = texture.shape[0]
    mx = (uv[..., 0] * S - 0.5).astype(np.float32)
    my = ((1.0 - uv[..., 1]) * S - 0.5).astype(np.float32)
    face = cv2.remap(texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[0:size, 0:size] / size
    bg = np.stack([90 + 60 * xx, 100 + 40 * yy, 120 - 30 * xx], -1) + rng.normal(0, 4, (size, size, 3))
    covered = (ras.tri_id >= 0)[..., None]
    img = np.where(covered, face, np.clip(bg, 0, 255)).astype(np.uint8)
    ys, xs = np.nonzero(covered[..., 0])
    box = (float(xs.min()), float(ys.min()), float(np.ptp(xs)), float(np.ptp(ys)))
    return SyntheticFace(img, img_v[lm, :2], img_v, yaw_deg, box)
