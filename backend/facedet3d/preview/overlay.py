"""Pictures for people: the fit drawn over the photo, and the UV maps side by side.

All inputs and outputs are 8-bit sRGB RGB arrays (H, W, 3) unless stated.
"""

from __future__ import annotations

import cv2
import numpy as np

OVERLAY_SIDE = 900  # pixels: the face crop is scaled to this size for viewing
_WIRE = (80, 255, 120)
_LM = (255, 40, 40)


def _crop_box(box: np.ndarray, w: int, h: int, margin: float = 0.9) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = map(float, box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1) * (0.5 + margin)
    return (max(int(cx - half), 0), max(int(cy - half), 0), min(int(cx + half), w), min(int(cy + half), h))


def overlay(rgb: np.ndarray, verts_img: np.ndarray, faces: np.ndarray, landmarks_2d: np.ndarray, box,
            uv: np.ndarray | None = None, grid: int = 24) -> np.ndarray:
    """The photo around the face with the fitted mesh drawn over it: a z-buffered, shaded
    render blended at 40 %, a wireframe of ``grid`` iso-u / iso-v lines of the UV layout
    (the raw 76k-triangle wireframe is a moire at any viewable size), the mesh outline,
    and the 68 landmarks (numbered every 5th)."""
    from facedet3d.preview import preview
    from facedet3d.geometry import raster

    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = _crop_box(np.asarray(box), w, h)
    s = OVERLAY_SIDE / max(x2 - x1, y2 - y1, 1)
    base = cv2.resize(np.ascontiguousarray(rgb[y1:y2, x1:x2]), None, fx=s, fy=s,
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    H, W = base.shape[:2]
    v = (verts_img.astype(np.float64) - [x1, y1, 0]) * s
    shade, inside, ras = preview.shade(v, faces, H, W)
    render = (np.stack([0.55, 0.85, 0.6]) * 255 * shade[..., None]).astype(np.float32)
    out = base.astype(np.float32)
    out[inside] = 0.6 * out[inside] + 0.4 * render[inside]
    lines = np.zeros((H, W), bool)
    if uv is not None:
        cell = np.floor(raster.interpolate(ras, uv.astype(np.float32)) * grid).astype(np.int32)
        for axis in (0, 1):
            c = cell[..., axis]
            lines[:, 1:] |= (c[:, 1:] != c[:, :-1]) & inside[:, 1:] & inside[:, :-1]
            lines[1:, :] |= (c[1:, :] != c[:-1, :]) & inside[1:, :] & inside[:-1, :]
    edge = inside & ~cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    out[lines] = 0.35 * out[lines] + 0.65 * np.array(_WIRE, np.float32)
    out[edge] = _WIRE
    out = np.clip(out, 0, 255).astype(np.uint8)
    for i, (x, y) in enumerate((landmarks_2d[:, :2] - [x1, y1]) * s):
        c = (int(round(x * 4)), int(round(y * 4)))
        cv2.circle(out, c, 3 * 4, _LM, -1, cv2.LINE_AA, shift=2)
        if i % 5 == 0:
            cv2.putText(out, str(i), (c[0] // 4 + 4, c[1] // 4 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def texture_preview(texture: np.ndarray, mask: np.ndarray, detail: np.ndarray, side: int = 512) -> np.ndarray:
    """Texture | observed mask | shaded input detail map, each ``side`` pixels, labelled."""
    from facedet3d.fit.detail_input import shade_preview

    panels = [
        cv2.resize(texture, (side, side), interpolation=cv2.INTER_AREA),
        cv2.cvtColor(cv2.resize(mask, (side, side), interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2RGB),
        cv2.resize(shade_preview(detail), (side, side), interpolation=cv2.INTER_AREA),
    ]
    for p, label in zip(panels, ("texture T(Ix)", "observed", "detail D(Ix)")):
        cv2.putText(p, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 1, cv2.LINE_AA)
    return np.hstack(panels)
