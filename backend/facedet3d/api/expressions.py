"""The expression vocabulary shared by the backend and the add-on: the 17 AUs, the EMFACS
emotion presets (with the side contempt uses), the default age, and AU parsing/validation.

This is the ONE definition. Only the standard library and numpy are imported, so Blender's
own Python loads it without torch: ``addon/_api/`` holds a generated copy (``python
build_addon.py --sync`` writes it; ``tests/test_api_sync.py`` fails when it is stale).

AU intensities are floats in [0, 1] (OpenFace's 0-5 scale divided by 5). Out-of-range values
are clamped with a ``UserWarning``; NaN or inf is a ``ValueError``. Sources for the presets:
EMFACS prototypes (Friesen & Ekman 1983, as summarised in Matsumoto & Ekman's tables).
"""

from __future__ import annotations

import re
import warnings
from typing import Iterable, Mapping, Sequence

import numpy as np

AU_IDS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
AU_NAMES = {1: "Inner Brow Raiser", 2: "Outer Brow Raiser", 4: "Brow Lowerer", 5: "Upper Lid Raiser",
            6: "Cheek Raiser", 7: "Lid Tightener", 9: "Nose Wrinkler", 10: "Upper Lip Raiser",
            12: "Lip Corner Puller", 14: "Dimpler", 15: "Lip Corner Depressor", 17: "Chin Raiser",
            20: "Lip Stretcher", 23: "Lip Tightener", 25: "Lips Part", 26: "Jaw Drop", 45: "Blink"}

PRESETS: dict[str, dict[int, float]] = {
    "happy": {6: 0.8, 12: 1.0},
    "sad": {1: 0.9, 4: 0.5, 15: 0.8},
    "surprise": {1: 1.0, 2: 1.0, 5: 0.8, 26: 0.8},
    "fear": {1: 0.9, 2: 0.6, 4: 0.5, 5: 0.9, 7: 0.4, 20: 0.8, 26: 0.4},
    "anger": {4: 1.0, 5: 0.6, 7: 0.8, 23: 0.9},
    # the nose wrinkle with the upper-lip raise (one muscle lifts both) and the chin raiser:
    # EMFACS's disgust prototypes are built on 9 or 10 (9+17, 10+17, 9+16+15, ...), and
    # Du, Tao & Martinez (PNAS 2014) measured 9+10+17 as prototypical. The earlier 9+15+17 had
    # no AU10, so a real disgust (MEAD M003: AU9 0.39, AU10 0.40) was nearer to happy than to
    # it (docs/nose_wrinkle.md). 9 and 10 pull the same skin beside the nostril: above
    # 9 + 10 = 1.3 the rig folds a triangle there (tests/test_rig.py), hence 0.7 + 0.5
    "disgust": {9: 0.7, 10: 0.5, 17: 0.6},
    # contempt is unilateral: its lateral blendshapes move on CONTEMPT_SIDE only
    "contempt": {12: 0.6, 14: 0.8},
}
CONTEMPT_SIDE = "_L"  # the subject's left mouth corner ("_L"/"_R" suffixes of the ARKit names)
BOTH_SIDES = (1.0, 1.0)  # (left, right) multipliers of the lateral blendshapes

DEFAULT_AGE_YEARS = 35.0  # what an unknown age (0) means to the detail network
MAX_AGE_YEARS = 120.0


def resolve_age(age: float) -> float:
    """Years for the detail network: 0 means unknown and becomes ``DEFAULT_AGE_YEARS``;
    anything outside 0..120 (or NaN) is a ValueError."""
    age = float(age)
    if not np.isfinite(age) or not 0.0 <= age <= MAX_AGE_YEARS:
        raise ValueError(f"age takes years between 0 (unknown) and {MAX_AGE_YEARS:.0f}, got {age}")
    return age if age > 0 else DEFAULT_AGE_YEARS


def _unsupported(au: int) -> ValueError:
    return ValueError(f"AU{au} is not supported; supported AUs: {', '.join(map(str, AU_IDS))}")


def parse_aus(items: Iterable[str]) -> dict[int, float]:
    """``["12=0.8", "AU1=0.5"]`` -> {AU number: intensity}. Malformed items and unknown AUs
    raise ValueError; the range is checked by ``normalise_aus``."""
    out: dict[int, float] = {}
    for item in items:
        m = re.fullmatch(r"\s*(?:AU)?(\d+)\s*=\s*(\S+)\s*", str(item), flags=re.IGNORECASE)
        if not m:
            raise ValueError(f"bad AU item {item!r}: expected NUMBER=INTENSITY, e.g. 12=0.8")
        au = int(m.group(1))
        if au not in AU_IDS:
            raise _unsupported(au)
        try:
            out[au] = float(m.group(2))
        except ValueError:
            raise ValueError(f"bad AU intensity in {item!r}") from None
    return out


def normalise_aus(aus: Mapping[int, float] | Sequence[float] | np.ndarray) -> np.ndarray:
    """(17,) float32 in ``AU_IDS`` order from {AU: intensity} (missing = 0) or 17 values.
    Values outside [0, 1] are clamped with a warning; NaN/inf raise ValueError."""
    if isinstance(aus, Mapping):
        vec = np.zeros(len(AU_IDS), np.float64)
        for au, v in aus.items():
            if int(au) not in AU_IDS:
                raise _unsupported(int(au))
            vec[AU_IDS.index(int(au))] = float(v)
    else:
        vec = np.asarray(aus, np.float64).reshape(-1)
        if vec.shape != (len(AU_IDS),):
            raise ValueError(f"AU vector must have {len(AU_IDS)} values (AUs {AU_IDS}), got {vec.shape[0]}")
    return clamp_aus(vec)[0]


def clamp_aus(aus) -> np.ndarray:
    """(T, 17) float32 in [0, 1] from (17,) or (T, 17): NaN/inf raise ValueError, values
    outside [0, 1] are clamped with a ``UserWarning`` naming them."""
    a = np.asarray(aus, np.float64)
    a = a[None] if a.ndim == 1 else a
    if a.ndim != 2 or a.shape[1] != len(AU_IDS):
        raise ValueError(f"AU vectors must be (T, {len(AU_IDS)}), got {a.shape}")
    if not np.isfinite(a).all():
        bad = sorted({AU_IDS[j] for j in np.argwhere(~np.isfinite(a))[:, 1]})
        raise ValueError(f"AU intensities must be numbers in [0, 1]; AU{bad} is NaN/inf")
    out_of_range = (a < 0) | (a > 1)
    if out_of_range.any():
        bad = {AU_IDS[j]: float(a[i, j]) for i, j in np.argwhere(out_of_range)[:8]}
        warnings.warn(f"AU intensities outside [0, 1] clamped: {bad}", stacklevel=3)
    return np.clip(a, 0.0, 1.0).astype(np.float32)


def preset_aus(name: str) -> np.ndarray:
    """(17,) float32 AU vector of an EMFACS preset."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return normalise_aus(PRESETS[name])


def preset_sides(name: str | None) -> tuple[float, float]:
    """(left, right) multipliers of the lateral blendshapes for a preset: contempt moves
    ``CONTEMPT_SIDE`` only, every other preset (and none) both sides."""
    if name != "contempt":
        return BOTH_SIDES
    return (1.0, 0.0) if CONTEMPT_SIDE == "_L" else (0.0, 1.0)


def target_aus(au_items: Iterable[str] | None = None, preset: str | None = None):
    """The target of a command: the preset's AUs (if any) overridden by ``12=0.8`` items.
    Returns ((17,) float32 AUs, (left, right) side multipliers); bad input raises ValueError."""
    vec = preset_aus(preset) if preset else np.zeros(len(AU_IDS), np.float32)
    for au, value in parse_aus(au_items or ()).items():
        vec[AU_IDS.index(au)] = value
    return normalise_aus(vec), preset_sides(preset)


def side_multipliers(names: Sequence[str], sides=BOTH_SIDES) -> np.ndarray:
    """(K,) float32: ``sides[0]`` on the ``_L`` blendshapes, ``sides[1]`` on ``_R``, 1 elsewhere.
    ``sides`` may also be None (both) or a side suffix "_L"/"_R" (that side only)."""
    if sides is None:
        sides = BOTH_SIDES
    elif isinstance(sides, str):
        sides = {"_L": (1.0, 0.0), "_R": (0.0, 1.0)}[sides]
    left, right = (float(s) for s in sides)
    return np.array([left if str(n).endswith("_L") else right if str(n).endswith("_R") else 1.0 for n in names],
                    np.float32)
