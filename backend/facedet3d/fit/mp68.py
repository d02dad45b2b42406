"""MediaPipe's 478 face-mesh landmarks -> the 68 iBUG (300-W) landmarks, and which of them
the photo fit uses as targets.

The 68-point scheme marks ends and evenly spaced points along facial contours (jaw line,
brows, eyelids, lip edges). MediaPipe's mesh follows the same contours with more, fixed
vertices, so each iBUG point is read off a MediaPipe contour by arc length: ``contour``
is an ordered list of mesh indices and ``fractions`` the iBUG points' positions along it
(0 = first index, 1 = last). Indices are the canonical face-mesh topology (the first 468
points; 468..477 are the irises, unused here). Sides are the image's: "image-left" is the
subject's right.

Brows: the iBUG brow points run along the brow's middle between its upper and lower edges
(checked on the annotated set of ``scripts/landmark_accuracy.py``: the midline is closer
than either edge), so each brow point is the mean of the upper- and lower-edge contours.

Which regions the fit takes from MediaPipe (``FIT_REGIONS``) is decided by measurement
(``scripts/landmark_accuracy.py``, figures in docs/landmark_accuracy.md); the others keep the
68-point regressor's estimate.
"""

from __future__ import annotations

import numpy as np

# iBUG-68 index ranges per region (0-based).
REGIONS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "brows": tuple(range(17, 27)),
    "nose": tuple(range(27, 36)),
    "eyes": tuple(range(36, 48)),
    "mouth": tuple(range(48, 68)),
}

# Regions whose fit targets come from MediaPipe when it read the face (see module docstring).
FIT_REGIONS: tuple[str, ...] = ("brows", "eyes", "mouth")

_THIRDS = (1 / 3, 2 / 3)

# (iBUG indices, MediaPipe contour, fractions along it). Brows are handled separately.
_CONTOURS: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...]], ...] = (
    # jaw line, image-left ear level -> chin (152) -> image-right ear level, evenly spaced
    (tuple(range(17)),
     (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397,
      288, 361, 323, 454, 356),
     tuple(k / 16 for k in range(17))),
    # nose bridge: nasion (168) -> tip (4)
    ((27, 28, 29, 30), (168, 6, 197, 195, 5, 4), (0.0, 1 / 3, 2 / 3, 1.0)),
    # nostril base, image-left ala -> subnasale (2) -> image-right ala
    ((31, 32, 33, 34, 35), (98, 97, 2, 326, 327), (0.0, 0.25, 0.5, 0.75, 1.0)),
    # image-left eye: outer corner 33, upper lid to inner corner 133, lower lid back
    ((36,), (33,), (0.0,)),
    ((37, 38), (33, 246, 161, 160, 159, 158, 157, 173, 133), _THIRDS),
    ((39,), (133,), (0.0,)),
    ((40, 41), (133, 155, 154, 153, 145, 144, 163, 7, 33), _THIRDS),
    # image-right eye: inner corner 362, upper lid to outer corner 263, lower lid back
    ((42,), (362,), (0.0,)),
    ((43, 44), (362, 398, 384, 385, 386, 387, 388, 466, 263), _THIRDS),
    ((45,), (263,), (0.0,)),
    ((46, 47), (263, 249, 390, 373, 374, 380, 381, 382, 362), _THIRDS),
    # outer lip: corners 61 and 291, cupid's-bow peaks 37 and 267 (iBUG 50 and 52), the
    # philtrum's foot 0 (51); 49 and 53 halfway between corner and peak along the edge
    ((48,), (61,), (0.0,)),
    ((49,), (61, 185, 40, 39, 37), (0.5,)),
    ((50,), (37,), (0.0,)),
    ((51,), (0,), (0.0,)),
    ((52,), (267,), (0.0,)),
    ((53,), (267, 269, 270, 409, 291), (0.5,)),
    ((54,), (291,), (0.0,)),
    # lower lip edge: 57 at the middle (17), 55/56 and 58/59 at thirds of each half
    ((55, 56), (291, 375, 321, 405, 314, 17), _THIRDS),
    ((57,), (17,), (0.0,)),
    ((58, 59), (17, 84, 181, 91, 146, 61), _THIRDS),
    # inner lip: corners 78 and 308; 62 and 66 in the middle (13, 14), the others at thirds
    ((60,), (78,), (0.0,)),
    ((61, 62, 63), (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308), (1 / 3, 0.5, 2 / 3)),
    ((64,), (308,), (0.0,)),
    ((65, 66, 67), (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78), (1 / 3, 0.5, 2 / 3)),
)

# Brows, outer end -> inner end (image-left) and inner -> outer (image-right): upper edge and
# lower edge, point for point; iBUG 17..21 and 22..26.
_BROW_UPPER = ((70, 63, 105, 66, 107), (336, 296, 334, 293, 300))
_BROW_LOWER = ((46, 53, 52, 65, 55), (285, 295, 282, 283, 276))


def along(points: np.ndarray, fractions) -> np.ndarray:
    """Points at ``fractions`` (0..1) of the arc length of the polyline ``points`` (n, 2)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return np.repeat(points[:1], len(fractions), axis=0)
    t = np.asarray(fractions, np.float64) * s[-1]
    return np.stack([np.interp(t, s, points[:, k]) for k in range(points.shape[1])], axis=1)


def to_68(landmarks: np.ndarray) -> np.ndarray:
    """(478, 2+) MediaPipe landmarks (image pixels) -> (68, 2) iBUG landmarks, same units."""
    lm = np.asarray(landmarks, np.float64)[:, :2]
    if lm.shape[0] < 468:
        raise ValueError(f"expected MediaPipe's 478 (or 468) landmarks, got {lm.shape[0]}")
    out = np.zeros((68, 2))
    for ids, contour, fractions in _CONTOURS:
        out[list(ids)] = along(lm[list(contour)], fractions)
    for side, first in ((0, 17), (1, 22)):
        upper = along(lm[list(_BROW_UPPER[side])], np.linspace(0, 1, 5))
        lower = along(lm[list(_BROW_LOWER[side])], np.linspace(0, 1, 5))
        out[first:first + 5] = 0.5 * (upper + lower)
    return out


def fit_mask(regions=FIT_REGIONS) -> np.ndarray:
    """(68,) bool: the iBUG points whose fit targets come from MediaPipe."""
    mask = np.zeros(68, bool)
    for name in regions:
        mask[list(REGIONS[name])] = True
    return mask


def targets(regressed: np.ndarray, landmarks: np.ndarray | None, regions=FIT_REGIONS) -> np.ndarray:
    """Fit targets (68, 2): the regressor's ``regressed`` (68, 2+) points, with ``regions``
    replaced by MediaPipe's when ``landmarks`` (478, 2+) were read (None: unchanged)."""
    out = np.asarray(regressed, np.float64)[:, :2].copy()
    if landmarks is None:
        return out
    mask = fit_mask(regions)
    out[mask] = to_68(landmarks)[mask]
    return out
