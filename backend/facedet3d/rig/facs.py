"""FACS Action Units over the ARKit-named blendshapes, emotion presets, and photo AUs.

AU intensities are floats in [0, 1] (OpenFace's 0-5 scale divided by 5). The AU table maps
each AU to weights over the K = 53 blendshapes of ``rig.Rig.names``. Sources for the table:
- P. Ekman, W. Friesen, J. Hager, *Facial Action Coding System* (2002) — what each AU does;
- the ARKit-to-FACS correspondences commonly published for face capture (e.g. Melinda
  Ozel's "ARKit to FACS cheat sheet", and Apple's ARFaceAnchor.BlendShapeLocation
  descriptions): browInnerUp≈AU1, browOuterUp≈AU2, browDown≈AU4, eyeWide≈AU5,
  cheekSquint≈AU6, eyeSquint≈AU7, noseSneer≈AU9, mouthUpperUp≈AU10, mouthSmile≈AU12,
  mouthDimple≈AU14, mouthFrown≈AU15, mouthShrugLower≈AU17, mouthStretch≈AU20,
  mouthPress≈AU24 (used for the lip tightener AU23 with a little funnel), jawOpen≈AU26,
  eyeBlink≈AU45.
Emotion presets follow EMFACS prototypes (Friesen & Ekman 1983; as summarised e.g. in
Matsumoto & Ekman's tables): happy 6+12, sad 1+4+15, surprise 1+2+5+26, fear
1+2+4+5+7+20+26, anger 4+5+7+23, disgust 9+10+17 (Du, Tao & Martinez 2014), contempt 12+14 on
one side only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# The vocabulary (AU ids, presets, contempt's side, parsing and validation) is defined once in
# api.expressions, shared with the add-on; re-exported here for the rig's callers.
from facedet3d.api.expressions import (  # noqa: F401
    AU_IDS, BOTH_SIDES, CONTEMPT_SIDE, PRESETS, normalise_aus, parse_aus, preset_aus, preset_sides, side_multipliers,
    target_aus)

# AU -> {blendshape name: weight at AU intensity 1}. "_L/_R" = the subject's left/right.
_BOTH = ("_L", "_R")
AU_TABLE: dict[int, dict[str, float]] = {
    1: {f"browInnerUp{s}": 1.0 for s in _BOTH},                  # inner brow raiser
    2: {f"browOuterUp{s}": 1.0 for s in _BOTH},                  # outer brow raiser
    4: {f"browDown{s}": 1.0 for s in _BOTH},                     # brow lowerer
    5: {f"eyeWide{s}": 1.0 for s in _BOTH},                      # upper lid raiser
    6: {f"cheekSquint{s}": 1.0 for s in _BOTH},                  # cheek raiser
    7: {f"eyeSquint{s}": 1.0 for s in _BOTH},                    # lid tightener
    9: {f"noseSneer{s}": 1.0 for s in _BOTH},                    # nose wrinkler
    10: {f"mouthUpperUp{s}": 1.0 for s in _BOTH},                # upper lip raiser
    12: {f"mouthSmile{s}": 1.0 for s in _BOTH},                  # lip corner puller
    14: {f"mouthDimple{s}": 1.0 for s in _BOTH},                 # dimpler
    15: {f"mouthFrown{s}": 1.0 for s in _BOTH},                  # lip corner depressor
    17: {"mouthShrugLower": 1.0, "mouthShrugUpper": 0.3},        # chin raiser (pushes lip up)
    20: {f"mouthStretch{s}": 1.0 for s in _BOTH},                # lip stretcher
    # lip tightener: lips pressed and narrowed (press) with a slight forward funnel
    23: {"mouthPress_L": 0.8, "mouthPress_R": 0.8, "mouthFunnel": 0.2},
    # lips part: a small jaw drop with the lower lip let down
    25: {"jawOpen": 0.2, "mouthLowerDown_L": 0.4, "mouthLowerDown_R": 0.4},
    26: {"jawOpen": 0.7},                                        # jaw drop
    45: {f"eyeBlink{s}": 1.0 for s in _BOTH},                    # blink
}
# mouthClose is ARKit's corrective for lips held together while the jaw is open; it is not
# an AU on its own and, applied alone, pushes the lips through each other, so no AU uses it.



def blendshape_index(names: Sequence[str]) -> dict[str, int]:
    return {str(n): i for i, n in enumerate(names)}


def au_to_blendshape(names: Sequence[str]) -> np.ndarray:
    """(17, K) float32: row a = blendshape weights of AU ``AU_IDS[a]`` at intensity 1."""
    idx = blendshape_index(names)
    m = np.zeros((len(AU_IDS), len(names)), np.float32)
    for a, au in enumerate(AU_IDS):
        for name, w in AU_TABLE[au].items():
            m[a, idx[name]] = w
    return m


def blendshape_weights(au_vector, names: Sequence[str], sides=BOTH_SIDES) -> np.ndarray:
    """(K,) float32 blendshape weights in [0, 1] for a (17,) AU vector (or dict).
    ``sides`` = (left, right) multipliers of the lateral ``_L``/``_R`` shapes (contempt:
    ``preset_sides("contempt")`` keeps one side)."""
    w = (normalise_aus(au_vector) @ au_to_blendshape(names)) * side_multipliers(names, sides)
    return np.clip(w, 0.0, 1.0).astype(np.float32)


def preset_weights(name: str, names: Sequence[str]) -> np.ndarray:
    """(K,) blendshape weights of a preset; contempt uses one side only (CONTEMPT_SIDE)."""
    return blendshape_weights(preset_aus(name), names, preset_sides(name))


def expression_params(au_vector, rig, bfm=None) -> dict[str, np.ndarray]:
    """The detail network's expression parameters α_e for an AU vector.

    Returns {"aus": (17,), "blendshapes": (K,) weights, "bfm_exp": (10,) BFM expression
    coefficients}: the least-squares fit of the posed displacement (on the BFM mean, BFM
    units) onto the BFM's 10-column ``exp_basis`` — a compact summary the network can share
    with 3DDFA-style parameters (the reconstructed basis here is crude; see assets README).
    """
    from facedet3d.assets import bfm as bfm_mod

    bfm = bfm or bfm_mod.load_bfm()
    aus = normalise_aus(au_vector)
    w = blendshape_weights(aus, rig.names)
    delta = np.tensordot(w, rig.deltas, axes=1).reshape(-1)  # (3N,) BFM units
    coef, *_ = np.linalg.lstsq(bfm.exp_basis.astype(np.float64), delta.astype(np.float64), rcond=None)
    return {"aus": aus, "blendshapes": w, "bfm_exp": coef.astype(np.float32)}


def project(points: np.ndarray, rotation: np.ndarray, scale: float, translation: np.ndarray,
            image_height: float | None = None) -> np.ndarray:
    """Model space (BFM units, +Y up) -> image pixels (+y down): (P, 3) -> (P, 2).

    ``u = scale * (R @ X)[0] + t[0]``, ``v = -scale * (R @ X)[1] + t[1]`` — the weak-
    perspective similarity of the fit, with the y flip folded in (t is the pixel position of
    the model origin). ``image_height`` is accepted for API symmetry and unused."""
    r = np.asarray(points, np.float64) @ np.asarray(rotation, np.float64).T
    return np.stack([scale * r[:, 0] + translation[0], -scale * r[:, 1] + translation[1]], 1)


def fit_photo_aus(landmarks_2d: np.ndarray, neutral_vertices: np.ndarray, rig,
                  rotation: np.ndarray, scale: float, translation: np.ndarray,
                  subject_deltas: np.ndarray | None = None, l2: float = 1e-3,
                  return_weights: bool = False):
    """The photo's AUs from its 68 landmarks, after the identity/pose fit.

    landmarks_2d: (68, 2) detected (or regressed) landmarks, image pixels, x right, y down.
    neutral_vertices: (N, 3) the subject's fitted neutral mesh, model space, BFM units.
    rig: ``rig.Rig`` (its ``deltas`` are on the BFM mean, BFM units).
    rotation (3, 3), scale (pixels per BFM unit), translation (2,) pixels: the projection
        ``x_img = scale * (R @ X)[:2] * (1, -1) + t`` (see ``project``).
    subject_deltas: optional (K, N, 3) shapes already expressed on the subject (BFM units);
        default: ``rig.subject_deltas(neutral_vertices)``.
    l2: ridge weight, relative to the mean squared column norm, keeping ambiguous shapes small.

    Fits non-negative weights for the blendshapes the AU table uses (others cannot be
    mapped back to AUs) by NNLS on the stacked landmark residual plus the ridge rows, then
    maps them to AUs by least squares through ``au_to_blendshape`` and clips to [0, 1].
    Returns {AU number: intensity} (and the (K,) weights when ``return_weights``).
    """
    from scipy.optimize import nnls

    table = au_to_blendshape(rig.names)  # (17, K)
    used = np.flatnonzero(table.any(0))
    lm = np.asarray(rig_landmarks(rig))
    if subject_deltas is None:
        subject_deltas = rig.subject_deltas(neutral_vertices)
    base = project(neutral_vertices[lm], rotation, scale, translation)
    cols = []
    for k in used:  # projection is linear in the vertices, so each shape's image motion is too
        cols.append((project(neutral_vertices[lm] + subject_deltas[k][lm], rotation, scale,
                             translation) - base).reshape(-1))
    a = np.stack(cols, 1)  # (136, U) pixels per unit weight
    b = (np.asarray(landmarks_2d, np.float64) - base).reshape(-1)
    lam = np.sqrt(l2 * (a**2).sum(0).mean())
    a_aug = np.vstack([a, lam * np.eye(len(used))])
    b_aug = np.concatenate([b, np.zeros(len(used))])
    w_used, _ = nnls(a_aug, b_aug, maxiter=50 * len(used))
    weights = np.zeros(len(rig.names), np.float32)
    weights[used] = np.clip(w_used, 0.0, 1.0)
    au, *_ = np.linalg.lstsq(table.T.astype(np.float64), weights.astype(np.float64), rcond=None)
    result = {a_id: float(np.clip(v, 0.0, 1.0)) for a_id, v in zip(AU_IDS, au)}
    return (result, weights) if return_weights else result


def rig_landmarks(rig) -> np.ndarray:
    """(68,) BFM landmark vertex ids (the rig is on the BFM topology)."""
    from facedet3d.assets import bfm as bfm_mod

    return getattr(rig, "landmarks", None) if getattr(rig, "landmarks", None) is not None \
        else bfm_mod.load_bfm().landmarks


# -- reading an emotion back from AUs ---------------------------------------------------------
# Lips part, jaw drop and blink move in every talking or blinking face, whatever its emotion:
# the emotion is judged on the other AUs.
SPEECH_AUS = (25, 26, 45)
# FACS's trace level (A, 1 of OpenFace's 0-5 scale): a preset fitted at less than this has not
# been shown, and the face reads neutral.
TRACE = 0.2


def nearest_emotion(aus) -> tuple[str, float, float]:
    """(preset name or "neutral", cosine, strength) for a 17-vector of AUs (0..1, ``AU_IDS``
    order) or an {AU: intensity} dict: the preset whose AU pattern is nearest by cosine over
    the AUs outside ``SPEECH_AUS``; strength = the least-squares scale of that preset in
    ``aus`` (1 = the preset at full intensity). Below ``TRACE`` the face reads neutral."""
    a = np.asarray([aus.get(k, 0.0) for k in AU_IDS] if isinstance(aus, dict) else aus, np.float64)
    keep = np.array([k not in SPEECH_AUS for k in AU_IDS])
    a = a * keep
    best = ("neutral", 0.0, 0.0)
    for name in PRESETS:
        p = preset_aus(name).astype(np.float64) * keep
        cos = float(a @ p / (np.linalg.norm(a) * np.linalg.norm(p) + 1e-12))
        if cos > best[1]:
            best = (name, cos, float(a @ p / (p @ p)))
    return best if best[2] >= TRACE else ("neutral", best[1], best[2])
