"""Choosing the face to fit among the detections (``--face N``, ``--box``), and the face
sizes that can be fitted at all or only with a warning (pixels of the original photo)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from facedet3d.errors import FaceTooSmall, NoFace


@dataclass(frozen=True, eq=False)
class Detection:
    """One face.

    box: (4,) float32 ``[x1, y1, x2, y2]`` in original photo pixels.
    score: MTCNN O-net probability in [0, 1]; NaN when the box came from the user (--box).
    landmarks5: (5, 2) float32 ``(x, y)`` original photo pixels, in MTCNN's order: left eye,
        right eye (as seen in the image: smaller x first for a frontal face), nose tip,
        left and right mouth corner; None when the box came from the user.
    """

    box: np.ndarray
    score: float
    landmarks5: np.ndarray | None

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def from_user(self) -> bool:
        return self.landmarks5 is None and math.isnan(self.score)


MIN_FACE_PX = 16
"""Smallest face (box side, original pixels) that can be fitted at all: the regressor's ROI is
1.58x the box, so 16 px is a 25-px patch stretched to 120² (eyes ~3 px apart). Smaller is
refused."""

SMALL_FACE_PX = 64
"""Below this box side the fit works on an upsampled ROI (< 120 px of real pixels): it is
fitted, with a warning in meta.json, since landmarks and texture lose precision."""


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = float(ix) * float(iy)
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def _faces(n: int) -> str:
    return f"{n} face" if n == 1 else f"{n} faces"


def select_face(detections: Sequence[Detection], face_index: int = 0,
                box: tuple[float, float, float, float] | None = None,
                image_size: tuple[int, int] | None = None,
                photo_name: str = "the photo") -> Detection:
    """Choose the face to fit.

    detections: FaceDetector output, largest first.
    face_index: 0-based rank by box area (0 = largest). The CLI's ``--face N`` is 1-based and
        passes ``N - 1``; error messages speak in the CLI's 1-based terms.
    box: ``(LEFT, TOP, WIDTH, HEIGHT)`` in original pixels (the CLI's ``--box``). When given,
        ``face_index`` is ignored: the detection with the highest IoU with the box is taken
        (any overlap > 0 counts); if none overlaps, the box itself (clipped to the image when
        ``image_size`` is known) becomes the face, with score NaN and landmarks5 None.
    image_size: (W, H) of the photo, to validate and clip ``box``.
    photo_name: how to name the photo in error messages.

    Raises NoFace (nothing found, index out of range, box outside the image or of
    non-positive size) or FaceTooSmall (chosen face narrower or shorter than MIN_FACE_PX).
    """
    dets = list(detections)
    if box is not None:
        chosen = _select_by_box(dets, box, image_size, photo_name)
    else:
        if not dets:
            raise NoFace(f"no face found in {photo_name}; try --box LEFT,TOP,WIDTH,HEIGHT "
                         f"around the face (pixels)")
        idx = int(face_index)
        if idx < 0 or idx >= len(dets):
            raise NoFace(f"--face {idx + 1} asked for, but only {_faces(len(dets))} found in "
                         f"{photo_name}; use --face 1..{len(dets)} (1 = largest) or --box")
        chosen = dets[idx]

    side = min(chosen.width, chosen.height)
    if side < MIN_FACE_PX:
        raise FaceTooSmall(f"the face in {photo_name} is only {side:.0f} px across (at least "
                           f"{MIN_FACE_PX} px needed to fit it at all); use a larger or closer photo")
    return chosen


def _select_by_box(dets: list[Detection], box, image_size, photo_name: str) -> Detection:
    try:
        left, top, width, height = (float(v) for v in box)
    except (TypeError, ValueError):
        raise NoFace("--box must be four numbers LEFT,TOP,WIDTH,HEIGHT (pixels)") from None
    if not all(math.isfinite(v) for v in (left, top, width, height)):
        raise NoFace("--box must be four finite numbers LEFT,TOP,WIDTH,HEIGHT (pixels)")
    if width <= 0 or height <= 0:
        raise NoFace(f"--box {left:g},{top:g},{width:g},{height:g} has no area; WIDTH and "
                     f"HEIGHT must be positive")
    user = np.array([left, top, left + width, top + height], np.float64)
    if image_size is not None:
        iw, ih = image_size
        if user[2] <= 0 or user[3] <= 0 or user[0] >= iw or user[1] >= ih:
            raise NoFace(f"--box {left:g},{top:g},{width:g},{height:g} lies outside "
                         f"{photo_name} ({iw}x{ih} px); give LEFT,TOP,WIDTH,HEIGHT inside it")

    best, best_iou = None, 0.0
    for d in dets:
        iou = _iou(user, d.box.astype(np.float64))
        if iou > best_iou:
            best, best_iou = d, iou
    if best is not None:
        return best

    if image_size is not None:
        iw, ih = image_size
        user = np.array([max(user[0], 0.0), max(user[1], 0.0),
                         min(user[2], float(iw)), min(user[3], float(ih))])
    return Detection(box=user.astype(np.float32), score=float("nan"), landmarks5=None)


def small_face_warning(det: Detection) -> str | None:
    """One line for meta.json's ``warnings`` when the chosen face is fitted but small."""
    side = float(min(det.width, det.height))
    if side >= SMALL_FACE_PX:
        return None
    return (f"small face: {side:.0f} px across (below {SMALL_FACE_PX} px the regressor works on an upsampled crop; "
            "landmarks, texture and detail are less precise)")
