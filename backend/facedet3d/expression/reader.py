"""MediaPipe Face Landmarker as the expression reader: 478 landmarks, 51 ARKit blendshape
scores and the head transform, for photos (IMAGE mode) and video frames (VIDEO mode).

The model bundle ``face_landmarker.task`` is a face-model asset (``assets/manifest.json``),
read through the verified cache like the others. The ``mediapipe`` package is imported
lazily; without it every entry point raises ``ReaderUnavailable`` (no silent fallback).

Conventions of a ``Reading`` (all in the coordinates of the image passed in):
- ``landmarks``: (478, 3) float32; x, y in pixels (0-based pixel centres, y down), z in
  pixels too (MediaPipe's z is relative to the image width; scaled by the width here).
- ``blendshapes``: {ARKit name: score 0..1} for the 51 shapes MediaPipe reads (its
  ``_neutral`` is dropped; ARKit's ``tongueOut`` is not among them).
- ``head``: yaw/pitch/roll in degrees, the same decomposition as ``fit.camera.decompose``
  (model -> camera rotation with y up: yaw about Y, pitch about X, roll about Z), and
  ``translation`` [x, y, z] in centimetres (MediaPipe's canonical face model is in cm;
  camera at the origin looking down -z, so z is negative).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np

from facedet3d.errors import AssetsMissing, BadImage

MODEL_ASSET = "mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task"
# Photos: the crop around the MTCNN box is this many box sides wide (the landmarker's own
# detector misses faces that are small in a large frame) and is resized so its side is at
# most PHOTO_CROP_MAX pixels (the landmark network itself runs at 256 px).
PHOTO_CROP_SCALE = 2.2
PHOTO_CROP_MAX = 512


class ReaderUnavailable(AssetsMissing):
    """The mediapipe package (or its model bundle) is missing: the reader cannot run."""


class BadVideo(BadImage):
    """Not a video, truncated, unreadable codec, or a video in which no face was found."""


@dataclass
class Reading:
    """One face read from one image (see the module docstring for units)."""

    landmarks: np.ndarray
    blendshapes: dict[str, float]
    head: dict[str, float] = field(default_factory=dict)
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def box(self) -> np.ndarray:
        """[x1, y1, x2, y2] pixels: the landmarks' bounding box."""
        xy = self.landmarks[:, :2]
        return np.concatenate([xy.min(0), xy.max(0)]).astype(np.float32)


def head_angles(matrix: np.ndarray) -> tuple[dict[str, float], tuple[float, float, float]]:
    """MediaPipe's 4x4 facial transformation (canonical face, cm -> camera, y up) ->
    ({yaw, pitch, roll} degrees, translation cm)."""
    m = np.asarray(matrix, np.float64).reshape(4, 4)
    u, _, vt = np.linalg.svd(m[:3, :3])  # strip the small scale the geometry pipeline leaves
    rot = u @ vt
    yaw = math.degrees(math.asin(float(np.clip(-rot[2, 0], -1.0, 1.0))))
    pitch = math.degrees(math.atan2(rot[2, 1], rot[2, 2]))
    roll = math.degrees(math.atan2(rot[1, 0], rot[0, 0]))
    return {"yaw": yaw, "pitch": pitch, "roll": roll}, tuple(float(v) for v in m[:3, 3])


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C-level stderr (MediaPipe's glog/TFLite start-up chatter) for a moment, so a
    CLI error stays one line. Python exceptions still carry their messages."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _close_quietly(landmarker) -> None:
    try:
        landmarker.close()
    except Exception:  # noqa: BLE001 - at teardown there is nothing left to report to
        pass


# Landmarkers of readers the garbage collector freed without close(), closed at the next safe
# point. The collector runs at any allocation, also inside concurrent.futures' submit(), which
# holds that module's global lock; MediaPipe's close() dispatches through submit() again, so
# closing from the collector deadlocks the thread (reproduced: tests/test_expression.py).
# The collector only appends here (list.append takes no lock).
_PENDING: list = []


def _defer_close(landmarker) -> None:
    _PENDING.append(landmarker)


def _close_pending() -> None:
    while _PENDING:
        _close_quietly(_PENDING.pop())


def _import_mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as exc:
        raise ReaderUnavailable(
            f"the expression reader needs the mediapipe package ({exc}); run scripts/setup.sh "
            "(it installs mediapipe==1.2.3 with --no-deps)") from None
    return mp, BaseOptions, vision


def model_path() -> str:
    from facedet3d.assets import files as assets

    return str(assets.asset_path(MODEL_ASSET))


class FaceReader:
    """One MediaPipe FaceLandmarker. ``mode``: "image" (independent photos) or "video"
    (frames in time order; the landmarker tracks between them). ``num_faces``: how many
    faces it may return; the caller picks one (``pick``). Close it (or use ``with``)."""

    def __init__(self, mode: str = "image", num_faces: int = 2):
        if mode not in ("image", "video"):
            raise ValueError("mode is 'image' or 'video'")
        _close_pending()
        mp, BaseOptions, vision = _import_mediapipe()
        self._mp, self.mode = mp, mode
        running = vision.RunningMode.IMAGE if mode == "image" else vision.RunningMode.VIDEO
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=model_path()), running_mode=running,
            num_faces=int(num_faces), output_face_blendshapes=True,
            output_facial_transformation_matrixes=True)
        with _quiet_stderr():
            self._lm = vision.FaceLandmarker.create_from_options(opts)
        self._last_ms = -1
        self._first = True
        # Closed after collection at the next safe point (``_PENDING``), and at exit before the
        # thread pool mediapipe dispatches through shuts down (threading's exit hooks run
        # last-registered first; closing later, or in mediapipe's own __del__ at teardown,
        # raises "cannot schedule new futures").
        self._finalizer = weakref.finalize(self, _defer_close, self._lm)
        self._finalizer.atexit = False
        ref = weakref.ref(self)
        try:
            threading._register_atexit(lambda: (ref() is not None and ref().close(), _close_pending()))
        except (AttributeError, RuntimeError):  # private API gone, or already shutting down
            self._finalizer.atexit = True

    def close(self) -> None:
        if self._lm is not None:
            self._finalizer.detach()
            _close_quietly(self._lm)
            self._lm = None
        _close_pending()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read(self, rgb: np.ndarray, time_s: float | None = None) -> list[Reading]:
        """Every face in an (H, W, 3) uint8 RGB image. VIDEO mode needs ``time_s``
        (strictly increasing; equal or earlier times are nudged forward by 1 ms)."""
        rgb = np.ascontiguousarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError("FaceReader expects an (H, W, 3) uint8 RGB array")
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        quiet = _quiet_stderr() if self._first else contextlib.nullcontext()
        self._first = False
        with quiet:  # the first inference logs the XNNPACK delegate set-up
            if self.mode == "image":
                res = self._lm.detect(image)
            else:
                ms = max(int(round((time_s or 0.0) * 1000.0)), self._last_ms + 1)
                self._last_ms = ms
                res = self._lm.detect_for_video(image, ms)
        h, w = rgb.shape[:2]
        out = []
        for i, lms in enumerate(res.face_landmarks):
            pts = np.array([(p.x * w - 0.5, p.y * h - 0.5, p.z * w) for p in lms], np.float32)
            shapes = {c.category_name: float(c.score) for c in res.face_blendshapes[i]
                      if c.category_name != "_neutral"}
            head, trans = head_angles(res.facial_transformation_matrixes[i])
            out.append(Reading(landmarks=pts, blendshapes=shapes, head=head, translation=trans))
        return out


def pick(readings: list[Reading], image_size: tuple[int, int], box=None, previous=None) -> Reading | None:
    """The one face to follow: overlapping ``box`` ([x1, y1, x2, y2]) best when given; else
    nearest the previous face's centre when tracking; else the largest, most central one
    (area times a penalty for distance from the image centre)."""
    if not readings:
        return None
    w, h = image_size

    def centre(b):
        return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])

    if box is not None:
        return max(readings, key=lambda r: _iou(r.box, box))
    if previous is not None:
        c = centre(previous)
        return min(readings, key=lambda r: float(np.linalg.norm(centre(r.box) - c)))

    def score(r):
        b = r.box
        area = max(b[2] - b[0], 1) * max(b[3] - b[1], 1)
        off = np.linalg.norm((centre(b) - (w / 2, h / 2)) / max(w, h))
        return area * (1.0 - min(off, 0.9))

    return max(readings, key=score)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def crop_square(rgb: np.ndarray, box, scale: float = PHOTO_CROP_SCALE, max_side: int = PHOTO_CROP_MAX):
    """A square crop ``scale`` box sides wide around ``box`` ([x1, y1, x2, y2]), zero-padded
    outside the image, resized to at most ``max_side``. Returns (crop, (x0, y0, s)) where an
    original pixel = crop pixel * s + (x0, y0) (pixel centres)."""
    import cv2

    x1, y1, x2, y2 = [float(v) for v in box[:4]]
    side = max(x2 - x1, y2 - y1) * scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = max(int(round(side)), 16)
    h, w = rgb.shape[:2]
    crop = np.zeros((n, n, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + n, w), min(y0 + n, h)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    s = 1.0
    if n > max_side:
        s = n / max_side
        crop = cv2.resize(crop, (max_side, max_side), interpolation=cv2.INTER_AREA)
    return crop, (x0, y0, s)


def uncrop(reading: Reading, transform) -> Reading:
    """Map a reading made on ``crop_square``'s crop back to the original image."""
    x0, y0, s = transform
    lm = reading.landmarks.copy()
    lm[:, 0] = (lm[:, 0] + 0.5) * s - 0.5 + x0
    lm[:, 1] = (lm[:, 1] + 0.5) * s - 0.5 + y0
    lm[:, 2] *= s
    return Reading(landmarks=lm, blendshapes=reading.blendshapes, head=reading.head,
                   translation=reading.translation)


def read_photo(rgb: np.ndarray, box, reader: FaceReader | None = None) -> Reading | None:
    """The face inside ``box`` ([x1, y1, x2, y2], e.g. the MTCNN detection) of a photo, or
    None when the landmarker finds no face there. Reads a crop around the box (see
    PHOTO_CROP_SCALE) and returns coordinates in the photo."""
    own = reader is None
    reader = reader or FaceReader("image")
    try:
        crop, tf = crop_square(rgb, box)
        n = crop.shape[0]
        found = pick(reader.read(crop), (n, n), box=None)
    finally:
        if own:
            reader.close()
    return None if found is None else uncrop(found, tf)
