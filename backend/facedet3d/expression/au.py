"""MediaPipe's blendshape scores -> the 17 FACS Action Units of ``rig.facs``: one mapping.

The mapping inverts ``facs.AU_TABLE`` (AU -> ARKit blendshape weights, the table the rig
poses the face with), so reading a face and posing the rig with the result agree:

1. Rest level. MediaPipe reads a relaxed face with non-zero scores (eyeSquint about 0.3,
   browDown and mouthShrugLower about 0.1). Each score ``b`` is re-expressed above a resting
   level ``b0``: ``(b - b0) / (1 - b0)``, clipped to [0, 1]. ``b0`` is a person's own neutral
   when one is given (``facedet3d track --neutral``), else ``POPULATION_NEUTRAL``: the median
   reading of the 40 studio neutral frontal faces of webmorphR.stim/canada
   (../shared/data/faces), measured with this reader on 2026-12-02.
2. Non-negative least squares: the AU vector ``a >= 0`` minimising
   ``|| T^T a - b' ||`` over the blendshape channels, ``T`` = ``facs.au_to_blendshape``
   (17 x 53, ARKit names with _L/_R) restricted to what MediaPipe reads. Channels MediaPipe
   never moves are left out: cheekSquint and cheekPuff read 0.00 on all 40 neutral faces and
   on the 30 in-the-wild portraits including broad smiles with crow's feet (and its users
   report the same, mediapipe issues 4436/4450), so keeping them would pin AU6 to 0
   whatever the face does. Then ``a`` is clipped to [0, 1].
3. Cheek raising (AU6). With cheekSquint dead, what MediaPipe shows of a cheek raise is the
   eye narrowing from below, which lands in eyeSquint (-> AU7 in step 2; measured on a broad
   smile with crow's feet: eyeSquint 0.46 against 0.34 on the same person's neutral photo).
   FACS separates AU6 from AU7 by the cheek and crow's feet, which the scores do not carry;
   what they do carry is the lip-corner pull that cheek raising accompanies (the Duchenne
   smile, AU6+12). So eye narrowing matched by a lip-corner pull is read as cheek raising,
   the rest as lid tightening: ``AU6 = min(AU7, AU12)``, ``AU7 -= AU6``. A squint without
   a smile (anger's 4+7) stays AU7; a smile without narrowed eyes stays AU12 alone.

4. Nose wrinkling (AU9). MediaPipe's noseSneer reads 0.00 on all eight MEAD clips, the two
   disgusted ones included, so disgust's nose wrinkle is read from the 478 landmarks instead
   (``nose_wrinkle``): AU9 pulls the skin between the brows down toward the nose root, so the
   glabella (mesh point 9) comes closer to the nasion (168). The cue is that distance over
   the nose length (168 to the tip, 4), in 3D, below a resting level: the person's own
   neutral when given (``--neutral``), else the population's (median 0.385, spread 0.036 on
   the 40 studio neutral faces; disgusted MEAD clips 0.31-0.32). A frown (AU4) lowers the
   glabella too, and on in-the-wild portraits a low natural brow does (10 of 96 read a cue
   > 0.2 with no disgust). What separates the nose wrinkle is the upper-lip raise that
   always comes with it (the same muscle lifts the lip), so a glabella drop is read as AU9
   only as far as it is matched by AU10: ``AU9 = min(cue, AU10)``; and the brow lowering that
   comes with it is AU9's (FACS: AU9 lowers the medial brows), ``AU4 -= AU9``. Measured (MEAD
   confusion before and after, false cues on stills): docs/nose_wrinkle.md.
5. cheekSquint, where a capture carries it (ARKit on a phone; MediaPipe's is always 0), is
   AU6 itself: ``AU6 = max(AU6, cheekSquint)``. A landmark cue for AU6 (the eye's narrowing)
   was measured and not adopted: the reading above already narrows the rig's eye about as
   much as real smiles narrow theirs (docs/cheek_raise.md).
6. Upper lip raising (AU10) no further than the lip rose. MediaPipe's mouthUpperUp can sit
   high on a resting face (0.6 on MEAD W040), and a smile then reads AU10 0.67 though her upper
   lip does not rise toward the nose at all; the rig, posed so, lifts it and shades a band
   above the lip. So AU10 is capped where the rig, posed at the AUs read, would lift the lip
   (``lip_ratio``: upper lip to nose base over the eye corners) further than the face did
   (``lip_rise``: the person's rest, else the population's, plus its noise or spread as a
   tolerance); the other AUs' share of the lift (AU12's smile, AU9's sneer from noseSneer)
   comes off first, at the rig's own rates (``LIP_PER_AU``). It only lowers AU10, before
   step 4. docs/cheek_raise.md.

Left/right: MediaPipe's ``...Left`` / ``...Right`` are ARKit's (the subject's left and right),
the rig's ``_L`` / ``_R``: on LivePortrait d3's wink (the subject's left eye shut, on the
image's right) it reads eyeBlinkLeft 0.51, eyeBlinkRight 0.10 (tests/test_expression.py).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from facedet3d.rig import facs

# The 51 ARKit blendshapes MediaPipe's face_blendshapes model reads (its order).
MP_NAMES = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)
# Channels that never respond (see step 2 of the module docstring).
DEAD_CHANNELS = ("cheekPuff", "cheekSquintLeft", "cheekSquintRight")

# Median MediaPipe score of 40 studio neutral faces (step 1); channels not listed are 0.
POPULATION_NEUTRAL: dict[str, float] = {
    "browDownLeft": 0.085, "browDownRight": 0.076, "browOuterUpLeft": 0.024,
    "browOuterUpRight": 0.017, "eyeBlinkLeft": 0.09, "eyeBlinkRight": 0.051,
    "eyeLookDownLeft": 0.106, "eyeLookDownRight": 0.098, "eyeLookInLeft": 0.037,
    "eyeLookInRight": 0.108, "eyeLookOutLeft": 0.111, "eyeLookOutRight": 0.033,
    "eyeLookUpLeft": 0.086, "eyeLookUpRight": 0.091, "eyeSquintLeft": 0.33,
    "eyeSquintRight": 0.231, "mouthPressLeft": 0.074, "mouthPressRight": 0.071,
    "mouthPucker": 0.012, "mouthRollLower": 0.023, "mouthShrugLower": 0.107,
    "mouthShrugUpper": 0.015,
}


# AU9 cue (step 4): mesh points of the glabella, the nasion and the nose tip (MediaPipe's
# canonical face-mesh indices); the ratio |glabella - nasion| / |nasion - tip| at rest.
GLABELLA, NASION, NOSE_TIP = 9, 168, 4
POPULATION_GLABELLA = 0.385  # median over the 40 studio neutral faces (as POPULATION_NEUTRAL)
GLABELLA_SPREAD = 0.036  # its standard deviation across those people
GLABELLA_NOISE = 0.009  # its standard deviation on a still face (LivePortrait d0, first 0.6 s)
GLABELLA_SPAN = 2 * GLABELLA_SPREAD  # drop past the dead zone that reads as a full nose wrinkle


def glabella_ratio(landmarks: np.ndarray) -> float:
    """|glabella - nasion| / |nasion - nose tip| of MediaPipe's (478, 3) landmarks (3D)."""
    lm = np.asarray(landmarks, np.float64)
    nose = np.linalg.norm(lm[NASION] - lm[NOSE_TIP])
    if lm.shape[0] < 468 or not np.isfinite(lm).all() or nose <= 0:
        raise ValueError("glabella_ratio needs MediaPipe's 478 finite landmarks")
    return float(np.linalg.norm(lm[GLABELLA] - lm[NASION]) / nose)


def nose_wrinkle(ratio: float, rest: float | None = None) -> float:
    """The landmark cue of step 4, 0..1: how far ``ratio`` (``glabella_ratio``) has dropped
    below the resting level, past a dead zone (the population's spread without a personal
    ``rest``; twice the still-face noise with one), over ``GLABELLA_SPAN``."""
    if rest is None:
        rest, dead = POPULATION_GLABELLA, GLABELLA_SPREAD
    else:
        dead = 2 * GLABELLA_NOISE
    return float(np.clip((rest - dead - float(ratio)) / GLABELLA_SPAN, 0.0, 1.0))


# AU10 cap (step 6): the upper lip's top (0) to the nose's base (2) over the outer eye corners'
# distance (33-263), 3D, MediaPipe's canonical mesh indices.
UPPER_LIP, NOSE_BASE, EYE_CORNERS = 0, 2, (33, 263)
POPULATION_LIP = 0.187  # median over the 40 studio neutral faces (as POPULATION_NEUTRAL)
LIP_SPREAD = 0.023  # its standard deviation across those people
LIP_NOISE = 0.004  # its standard deviation on a still face (LivePortrait d0, first 0.6 s)
# How far the rig's pose moves that ratio per unit AU (negative: the lip rises toward the nose),
# from the rig's own mesh (iBUG 51 to 33 over 36-45, 3D; mean of four imported faces, d0, d13,
# W036, W040; linear within 1.5 % for combined AUs). Measured on the mesh, not on MediaPipe's
# reading of a render: MediaPipe reads rendered lids at half their motion (docs/cheek_raise.md).
LIP_PER_AU = {1: 0.003, 6: -0.002, 9: -0.042, 10: -0.055, 12: -0.031, 15: 0.004, 17: -0.013, 20: 0.005,
              23: -0.003, 25: 0.003, 26: 0.009, 45: 0.002}


def lip_ratio(landmarks: np.ndarray) -> float:
    """|upper lip - nose base| / |outer eye corners| of MediaPipe's (478, 3) landmarks (3D)."""
    lm = np.asarray(landmarks, np.float64)
    eyes = np.linalg.norm(lm[EYE_CORNERS[0]] - lm[EYE_CORNERS[1]])
    if lm.shape[0] < 468 or not np.isfinite(lm).all() or eyes <= 0:
        raise ValueError("lip_ratio needs MediaPipe's 478 finite landmarks")
    return float(np.linalg.norm(lm[UPPER_LIP] - lm[NOSE_BASE]) / eyes)


def lip_rise(ratio: float, rest: float | None = None) -> float:
    """The AU10 cap's evidence (step 6): how far the upper lip may have risen toward the nose,
    ``rest - ratio`` plus a tolerance (the population's spread without a personal ``rest``; the
    still-face noise with one), in ratio units. Negative where the lip moved away."""
    if rest is None:
        rest, tol = POPULATION_LIP, LIP_SPREAD
    else:
        tol = LIP_NOISE
    return float(rest - float(ratio) + tol)


# ARKit names that end in Left/Right but are single shapes (movement to one side), not sides.
_UNSIDED = ("jawLeft", "jawRight", "mouthLeft", "mouthRight")


def rig_name(mp: str) -> str:
    """MediaPipe/ARKit name -> the rig's shape-key name (``browDownLeft`` -> ``browDown_L``)."""
    if mp in _UNSIDED:
        return mp
    if mp.endswith("Left"):
        return mp[:-4] + "_L"
    if mp.endswith("Right"):
        return mp[:-5] + "_R"
    return mp


def mp_channel(rig: str) -> str:
    """The MediaPipe/ARKit channel that reads a rig shape key: the sided name, or the
    unsided one where ARKit has a single shape for both sides (``browInnerUp_L`` ->
    ``browInnerUp``, ``cheekPuff_R`` -> ``cheekPuff``)."""
    if rig.endswith(("_L", "_R")):
        sided = rig[:-2] + ("Left" if rig.endswith("_L") else "Right")
        return sided if sided in MP_NAMES else rig[:-2]
    return rig


def _observation_matrix() -> np.ndarray:
    """(C, 17): ``facs.AU_TABLE`` over the live MediaPipe channels (C = 51 minus dead)."""
    table = np.zeros((len(facs.AU_IDS), len(MP_NAMES)), np.float64)
    idx = {n: i for i, n in enumerate(MP_NAMES)}
    for a, au in enumerate(facs.AU_IDS):
        for shape, w in facs.AU_TABLE[au].items():
            # a both-sides channel (browInnerUp) reads the mean of the rig's two halves
            both = mp_channel(shape) not in (shape[:-2] + "Left", shape[:-2] + "Right")
            table[a, idx[mp_channel(shape)]] += w * (0.5 if both and shape.endswith(("_L", "_R")) else 1.0)
    live = [i for i, n in enumerate(MP_NAMES) if n not in DEAD_CHANNELS]
    return table[:, live].T


_LIVE = tuple(n for n in MP_NAMES if n not in DEAD_CHANNELS)
_OBS = _observation_matrix()
_AU4, _AU6, _AU7, _AU9, _AU10, _AU12 = (facs.AU_IDS.index(a) for a in (4, 6, 7, 9, 10, 12))


def above_rest(scores: Mapping[str, float], neutral: Mapping[str, float] | None = None) -> dict[str, float]:
    """Step 1: each score re-expressed above its resting level (``POPULATION_NEUTRAL`` when
    ``neutral`` is None), clipped to [0, 1]. Names missing from ``scores`` count as 0."""
    rest = POPULATION_NEUTRAL if neutral is None else neutral
    out = {}
    for n in MP_NAMES:
        b, b0 = float(scores.get(n, 0.0)), min(float(rest.get(n, 0.0)), 0.95)
        out[n] = float(np.clip((b - b0) / (1.0 - b0), 0.0, 1.0))
    return out


def aus_from_blendshapes(scores: Mapping[str, float], neutral: Mapping[str, float] | None = None,
                         calibrated: bool = False, wrinkle: float | None = None,
                         lip: float | None = None) -> dict[int, float]:
    """The 17 AUs (AU number -> 0..1) from MediaPipe/ARKit blendshape scores.

    ``neutral``: a person's resting scores (else the population's); ``calibrated=True`` means
    ``scores`` are already above rest (step 1 done, e.g. a calibrated track) and are used as is.
    ``wrinkle``: the landmark nose-wrinkle cue (``nose_wrinkle``, step 4), or None where no
    landmarks were read (a Live Link Face capture): AU9 then comes from noseSneer alone.
    ``lip``: the upper lip's measured rise (``lip_rise``, step 6), or None: AU10 uncapped.
    """
    from scipy.optimize import nnls

    b = dict(scores) if calibrated else above_rest(scores, neutral)
    vec = np.array([float(b.get(n, 0.0)) for n in _LIVE], np.float64)
    if not np.isfinite(vec).all():
        raise ValueError("blendshape scores must be finite numbers")
    a, _ = nnls(_OBS, np.clip(vec, 0.0, 1.0), maxiter=20 * _OBS.shape[1])
    a = np.clip(a, 0.0, 1.0)
    cheek = min(a[_AU7], a[_AU12])  # step 3
    a[_AU6], a[_AU7] = max(a[_AU6], cheek), a[_AU7] - cheek
    carried = np.clip([b.get("cheekSquintLeft", 0.0), b.get("cheekSquintRight", 0.0)], 0.0, 1.0)
    a[_AU6] = max(a[_AU6], float(np.mean(carried)))  # step 5
    if lip is not None:  # step 6 (before step 4, whose AU9 follows AU10)
        others = sum(LIP_PER_AU[k] * a[facs.AU_IDS.index(k)] for k in LIP_PER_AU if k != 10)
        a[_AU10] = min(a[_AU10], max((others + float(lip)) / -LIP_PER_AU[10], 0.0))
    if wrinkle is not None:  # step 4
        nose = min(float(wrinkle), a[_AU10])
        if nose > a[_AU9]:
            a[_AU4] = max(a[_AU4] - (nose - a[_AU9]), 0.0)
            a[_AU9] = nose
    return {au: float(v) for au, v in zip(facs.AU_IDS, a)}


def aus_of_reading(reading) -> dict[int, float]:
    """The AUs of one photo or frame read by ``reader.FaceReader`` (blendshapes, the AU9
    landmark cue and the AU10 cap, against the population's rest): what the fit and the real
    corpus use."""
    lm = reading.landmarks
    return aus_from_blendshapes(reading.blendshapes, wrinkle=nose_wrinkle(glabella_ratio(lm)),
                                lip=lip_rise(lip_ratio(lm)))


def aus_vector(aus: Mapping[int, float]) -> np.ndarray:
    """(17,) float32 in ``facs.AU_IDS`` order."""
    return np.array([float(aus.get(a, 0.0)) for a in facs.AU_IDS], np.float32)
