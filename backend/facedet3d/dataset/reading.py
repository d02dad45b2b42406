"""The expression reader's output in a sample: 478 landmarks and the ARKit blendshapes.

The fit already runs MediaPipe's Face Landmarker on the photo (``Backend.read_expression``,
which reads the photo's AUs from it); its ``Reading`` is kept, not read a second time.
What a sample gets (``KEY.json`` fields ``landmarks478``, ``blendshapes``, ``reader``):

- ``landmarks478``: (478, 3) as lists, x, y in output pixels (0-based pixel centres, like
  ``landmarks68``), z in output pixels too: MediaPipe's relative depth, smaller = nearer
  the camera, scaled like x (it is not metric and not the depth map's).
- ``blendshapes``: {ARKit name: score 0..1}, the 51 shapes MediaPipe reads (its
  ``_neutral`` category is not an ARKit shape and is dropped by the reader).
- ``reader``: ``status`` and, unless ok, a one-line ``reason``:
  - ``ok``: a face was read and its five key points agree with the fit's 68 landmarks;
  - ``no face``: the landmarker found no face around the detector's box (profiles past
    about 60 degrees, faces too small or blurred); ``landmarks478`` and ``blendshapes``
    are null and the AUs come from the 68-landmark fit (``aus_source`` = "landmarks");
  - ``disagrees``: a face was read, but its key points lie more than ``AGREE_MAX``
    inter-ocular distances from the fit's (another face in the crop, or one of the two
    misplaced); the values are kept, flagged.
  ``lm_residual`` is that mean key-point distance over the fit's inter-ocular distance.

Known limits of the reader itself, stated in the card for every sample: cheekSquint and
cheekPuff read 0.00 on every face tried and noseSneer on every MEAD clip, so AU9 is a landmark
cue (the glabella's drop while the upper lip rises) and AU6 a rule (eye narrowing read as
squint while the lip corners pull: min of AU7 and AU12), not a measurement of the cheek
(``expression.au``).
"""

from __future__ import annotations

import numpy as np

from facedet3d.dataset.camera import Frame

# The same five points in both schemes: outer eye corners (image left, image right), nose
# tip, mouth corners (image left, image right). 68-point (iBUG) and MediaPipe mesh indices.
PAIRS_68 = (36, 45, 30, 48, 54)
PAIRS_478 = (33, 263, 1, 61, 291)
AGREE_MAX = 0.15  # x inter-ocular distance: above it the reader's face and the fit's differ
KNOWN_LIMITS = ("cheekSquint and cheekPuff read 0.00 on every face tried and noseSneer on every MEAD clip, so "
                "AU9 is a landmark cue (the glabella's drop while the upper lip rises) and AU6 a rule (eye "
                "narrowing read as squint while the lip corners pull: min of AU7 and AU12), not a measurement "
                "of the cheek")


def key_point_residual(lm478: np.ndarray, lm68: np.ndarray) -> float:
    """Mean distance of the five shared key points, over the 68-point inter-ocular distance
    (the outer eye corners), both in the same pixels."""
    a = np.asarray(lm478, np.float64)[list(PAIRS_478), :2]
    b = np.asarray(lm68, np.float64)[list(PAIRS_68), :2]
    iod = float(np.linalg.norm(b[1] - b[0]))
    return float(np.linalg.norm(a - b, axis=1).mean() / max(iod, 1e-9))


def sample_fields(reading, lm68_photo: np.ndarray, frame: Frame) -> tuple[dict, dict]:
    """(fields of the sample's JSON, manifest columns) for a ``Reading`` in photo pixels,
    or ``None`` when the reader found no face; ``lm68_photo`` the fit's (68, 2) landmarks."""
    if reading is None:
        reason = "the expression reader found no face around the detected box (AUs from the 68-landmark fit)"
        info = {"landmarks478": None, "blendshapes": None, "reader": {"status": "no face", "reason": reason}}
        return info, {"reader_status": "no face", "reader_lm_residual": None, "blendshapes": None}
    lm = np.asarray(reading.landmarks, np.float64)
    res = key_point_residual(lm, lm68_photo)
    xy = frame.to_out(lm[:, :2])
    z = lm[:, 2] * frame.k
    pts = np.round(np.column_stack([xy, z]), 3).tolist()
    shapes = {k: round(float(v), 5) for k, v in sorted(reading.blendshapes.items())}
    status = "ok" if res <= AGREE_MAX else "disagrees"
    rd = {"status": status, "lm_residual": round(res, 4)}
    if status != "ok":
        rd["reason"] = (f"the reader's key points lie {res:.2f} inter-ocular distances from the fit's "
                        f"(> {AGREE_MAX:g}): another face, or one of the two misplaced")
    return ({"landmarks478": pts, "blendshapes": shapes, "reader": rd},
            {"reader_status": status, "reader_lm_residual": round(res, 4), "blendshapes": shapes})
