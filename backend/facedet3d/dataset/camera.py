"""The output frame and the camera the depth maps assume.

The fit's camera is scaled-orthographic (3DDFA_V2): ``x_img = P @ [X, 1]``, i.e. every
point of the head is seen at one distance. Depth "in metres from the camera" therefore
needs one assumption, stated in the manifest and the card: a pinhole camera of focal
length ``f_px`` (pixels), for which the weak-perspective fit is the standard approximation
at distance ``Z0 = f_px / s`` (``s``: the fit's pixels per metre). A point at ``z_m`` metres
toward the camera from the head model's origin (the BFM origin, about 13 cm behind the
nose tip, level with the back of the face mask) has depth ``Z0 - z_m``.

- The *relative* depth (the face's relief, ``z_m``) is metric, from the BFM's metric scale;
  it does not depend on ``f``.
- The *absolute* offset ``Z0`` scales with the assumed focal length, by default a 50 mm
  lens on a 35 mm-format frame whose long side (36 mm) is the photo's long side:
  ``f_px = 50 / 36 * max(W, H)`` (about 0.45 m for a face filling half the frame).
- x and y stay the fit's orthographic projection (so masks and landmarks line up with the
  photo exactly as the fit does); normals are those of the very mesh the depth comes from
  in that camera frame, so depth gradients and normals agree.

Camera frame of the normals: x to the image right, y up, z toward the camera (OpenGL /
Blender convention); a surface facing the camera has n_z > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SENSOR_LONG_MM = 36.0  # long side of the 35 mm film frame the focal length refers to


@dataclass(frozen=True)
class Frame:
    """Where the output maps sit in the photo.

    x0, y0: the photo coordinate (0-based pixel centres) of the output's top-left pixel
      *edge* (-0.5, -0.5 for the whole photo).
    k: output pixels per photo pixel.
    width, height: output size in pixels.
    """

    x0: float
    y0: float
    k: float
    width: int
    height: int

    def to_out(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) photo pixel coordinates -> output pixel coordinates (centre convention)."""
        xy = np.asarray(xy, np.float64)
        return (xy - np.array([self.x0, self.y0])) * self.k - 0.5


def make_frame(photo_w: int, photo_h: int, size: int | None, crop: str, box=None) -> Frame:
    """The whole photo (``crop="none"``, long side ``size`` when given) or a square around
    the face box [x1, y1, x2, y2] (``crop="face"``, side 1.6 x the box's larger side,
    ``size`` x ``size`` pixels, 256 by default)."""
    if crop == "face":
        if box is None:
            raise ValueError("a face crop needs the face box")
        x1, y1, x2, y2 = (float(v) for v in box)
        side = int(round(1.6 * max(x2 - x1, y2 - y1)))
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        left, top = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
        out = int(size or 256)
        return Frame(left - 0.5, top - 0.5, out / side, out, out)
    if size is None:
        return Frame(-0.5, -0.5, 1.0, int(photo_w), int(photo_h))
    k = float(size) / max(photo_w, photo_h)
    return Frame(-0.5, -0.5, k, max(1, int(round(photo_w * k))), max(1, int(round(photo_h * k))))


def frame_rgb(rgb: np.ndarray, frame: Frame) -> np.ndarray:
    """The photo cut and resampled to ``frame`` (zero padding outside the photo; area
    averaging when shrinking, bilinear when enlarging)."""
    h, w = rgb.shape[:2]
    left, top = int(round(frame.x0 + 0.5)), int(round(frame.y0 + 0.5))
    sw = int(round(frame.width / frame.k))
    sh = int(round(frame.height / frame.k))
    if (left, top, sw, sh) == (0, 0, w, h):
        patch = rgb
    else:
        patch = np.zeros((sh, sw, 3), np.uint8)
        ix1, iy1, ix2, iy2 = max(left, 0), max(top, 0), min(left + sw, w), min(top + sh, h)
        if ix2 > ix1 and iy2 > iy1:
            patch[iy1 - top:iy2 - top, ix1 - left:ix2 - left] = rgb[iy1:iy2, ix1:ix2]
    if patch.shape[1] == frame.width and patch.shape[0] == frame.height:
        return np.ascontiguousarray(patch)
    interp = cv2.INTER_AREA if frame.k < 1 else cv2.INTER_LINEAR
    return cv2.resize(patch, (frame.width, frame.height), interpolation=interp)


@dataclass(frozen=True)
class Camera:
    """The assumed pinhole camera in output pixels.

    f_px: focal length, output pixels. s_px_per_m: the fit's scale, output pixels per metre.
    distance_m: Z0 = f_px / s_px_per_m, camera to the head model's origin.
    focal_mm: the 35 mm-equivalent focal length assumed.
    """

    f_px: float
    s_px_per_m: float
    distance_m: float
    focal_mm: float


def make_camera(photo_w: int, photo_h: int, scale_px_per_m: float, frame: Frame, focal_mm: float) -> Camera:
    f_photo = focal_mm / SENSOR_LONG_MM * max(photo_w, photo_h)
    return Camera(f_photo * frame.k, scale_px_per_m * frame.k, f_photo / scale_px_per_m, focal_mm)
