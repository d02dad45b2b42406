"""Live Link Face's CSV format (Epic's iOS capture app; read by Unreal, Blender and Maya
importers): one row per frame,

``Timecode,BlendShapeCount,<52 ARKit blendshapes in PascalCase>,HeadYaw,HeadPitch,HeadRoll,
LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll``

- ``Timecode`` ``HH:MM:SS:FF.sss``: FF the frame within the second at the capture rate, .sss
  the sub-frame fraction (thousandths). A capture does not store its rate: ``read_csv`` infers
  it from the largest FF (rounded up to 24/25/30/48/50/60), or takes ``fps``.
- ``BlendShapeCount`` 61 (52 shapes + 9 angles).
- Angles in radians (converted from/to the track's degrees). ``TongueOut`` is written as 0
  (MediaPipe does not read it).
- Head angles: the track's ``head`` (``reader.head_angles``): yaw about the face's up axis,
  positive turning the face towards the subject's own left; pitch about the face's left
  axis, positive looking down; roll about the forward axis.
- Eye angles (``eye_angles``): the gaze of each eye relative to the head, in the same
  convention as the head angles of the same row (positive yaw: towards the subject's left;
  positive pitch: down; roll 0), from the eyeLook* scores at the angle per unit of score
  that the rig's eye-look shape keys turn the eyeball by (``rig.eyes.LOOK_DEG``: 30 deg in/out,
  25 deg up/down), so a CSV's angles and its scores pose the eyes the same way.
  Checked on LivePortrait d12 (looked at): a glance to the image's right (the subject's left)
  reads LeftEyeYaw +27 deg, one up and to the image's left -18 deg (pitch < 0); over eight
  driving clips the two eyes' yaws correlate 0.54-0.99 (conjugate gaze: the sides agree).
  Reading back (``read_csv``): a row whose eight eyeLook* columns are all 0 (a capture that
  stored gaze only as angles) gets them from its eye angles, the inverse of the same map;
  otherwise the scores are kept as written (angles cannot separate opposing scores).
  Unreal's ARKit face source negates the yaw and roll of head and eyes unless the face is
  mirrored, so a foreign capture's yaw signs may be the opposite of these.
Rows of frames without a face are not written (captures have none).
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path
from typing import Iterable, Iterator

from facedet3d.errors import BadRequest
from facedet3d.expression import au as au_mod
from facedet3d.rig.eyes import LOOK_DEG

ARKIT_ORDER = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight",
    "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward",
    "jawRight", "jawLeft", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthRight",
    "mouthLeft", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft",
    "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)
ANGLES = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
          "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
HEADER = ["Timecode", "BlendShapeCount"] + [n[0].upper() + n[1:] for n in ARKIT_ORDER] + list(ANGLES)
_RATES = (24, 25, 30, 48, 50, 60, 120)
_TC = re.compile(r"^\s*(\d+):(\d+):(\d+)[:;](\d+)(?:\.(\d+))?\s*$")


_SIDES = (("Left", "LeftEye"), ("Right", "RightEye"))
EYE_LOOKS = tuple(f"eyeLook{w}{side}" for side, _ in _SIDES for w in ("Up", "Down", "In", "Out"))


def eye_angles(bs: dict) -> dict[str, float]:
    """eyeLook* scores -> {"LeftEyeYaw", "LeftEyePitch", "RightEyeYaw", "RightEyePitch"} in
    degrees (the module docstring's convention). The left eye turns to the subject's left
    when it looks out, the right eye when it looks in."""
    out = {}
    for side, col in _SIDES:
        def g(w):
            return float(bs.get(f"eyeLook{w}{side}", 0.0))

        left = g("Out") * LOOK_DEG["Out"] - g("In") * LOOK_DEG["In"]
        out[col + "Yaw"] = left if side == "Left" else -left
        out[col + "Pitch"] = g("Down") * LOOK_DEG["Down"] - g("Up") * LOOK_DEG["Up"]
    return out


def eye_looks(ang: dict) -> dict[str, float]:
    """Inverse of ``eye_angles`` (degrees -> eyeLook* scores, each clipped to 0..1)."""
    out = {}
    for side, col in _SIDES:
        yaw = ang.get(col + "Yaw", 0.0) * (1.0 if side == "Left" else -1.0)  # + : looks out
        pitch = ang.get(col + "Pitch", 0.0)
        out[f"eyeLookOut{side}"] = min(max(yaw, 0.0) / LOOK_DEG["Out"], 1.0)
        out[f"eyeLookIn{side}"] = min(max(-yaw, 0.0) / LOOK_DEG["In"], 1.0)
        out[f"eyeLookDown{side}"] = min(max(pitch, 0.0) / LOOK_DEG["Down"], 1.0)
        out[f"eyeLookUp{side}"] = min(max(-pitch, 0.0) / LOOK_DEG["Up"], 1.0)
    return out


def timecode(t: float, fps: float) -> str:
    """Seconds -> ``HH:MM:SS:FF.sss`` at ``fps``."""
    frames = t * fps
    whole = int(math.floor(frames + 1e-6))
    sub = int(round((frames - whole) * 1000)) % 1000
    sec, ff = divmod(whole, int(round(fps)))
    h, rest = divmod(sec, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{ff:02d}.{sub:03d}"


def csv_rows(frames: Iterable[dict], fps: float) -> Iterator[list[str]]:
    """Track frames (the JSON's dicts) -> CSV rows (frames without values are skipped)."""
    for fr in frames:
        bs = fr.get("blendshapes")
        if not bs:
            continue
        head = fr.get("head", {})
        vals = [f"{float(bs.get(n, 0.0)):.6f}" for n in ARKIT_ORDER]
        eyes = eye_angles(bs)
        ang = [math.radians(float(head.get(k, 0.0))) for k in ("yaw", "pitch", "roll")]
        for _, col in _SIDES:
            ang += [math.radians(eyes[col + "Yaw"]), math.radians(eyes[col + "Pitch"]), 0.0]
        yield [timecode(float(fr["time"]), fps), str(len(HEADER) - 2)] + vals + [f"{a:.6f}" for a in ang]


def read_csv(path: str | os.PathLike, fps: float | None = None) -> tuple[float, list[dict]]:
    """A Live Link Face CSV -> (fps, frames as the track JSON has them, AUs included).
    Raises BadRequest for a file that is not such a CSV."""
    p = Path(path)
    if not p.is_file():
        raise BadRequest(f"{p}: no such file")
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{p.name}: not a Live Link Face CSV ({exc})") from None
    if not rows or not rows[0] or rows[0][0].strip() != "Timecode":
        raise BadRequest(f"{p.name}: not a Live Link Face CSV (no Timecode header)")
    cols = {c.strip().lower(): i for i, c in enumerate(rows[0])}
    missing = [n for n in ARKIT_ORDER[:-1] if n.lower() not in cols]
    if missing:
        raise BadRequest(f"{p.name}: Live Link Face CSV lacks blendshape columns, e.g. {missing[0]}")
    parsed = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        m = _TC.match(row[0])
        if not m or len(row) < len(rows[0]):
            raise BadRequest(f"{p.name}: line {line} is not a Live Link Face row")
        try:
            vals = {n: float(row[cols[n.lower()]]) for n in ARKIT_ORDER if n.lower() in cols}
            ang = {k: float(row[cols[k.lower()]]) if k.lower() in cols else 0.0 for k in ANGLES}
        except ValueError:
            raise BadRequest(f"{p.name}: line {line} has a value that is not a number") from None
        h, mi, s, ff, sub = m.groups()
        parsed.append(((int(h) * 3600 + int(mi) * 60 + int(s)), int(ff), int(sub or 0) / 10 ** len(sub or "0"),
                       vals, ang))
    if not parsed:
        raise BadRequest(f"{p.name}: the CSV has no frames")
    if fps is None:
        top = max(x[1] for x in parsed) + 1
        fps = float(next((r for r in _RATES if r >= top), top))
    t0 = parsed[0][0] + (parsed[0][1] + parsed[0][2]) / fps
    frames = []
    for sec, ff, sub, vals, ang in parsed:
        bs = {n: vals.get(n, 0.0) for n in au_mod.MP_NAMES}
        if not any(bs.get(n, 0.0) for n in EYE_LOOKS):  # gaze stored only as angles
            bs.update(eye_looks({k: math.degrees(ang[k]) for k in ANGLES[3:]}))
        frames.append({
            "time": round(sec + (ff + sub) / fps - t0, 4), "found": True,
            "aus": {str(k): round(v, 4) for k, v in au_mod.aus_from_blendshapes(bs).items()},
            "blendshapes": {n: round(v, 4) for n, v in bs.items()},
            "head": {"yaw": round(math.degrees(ang["HeadYaw"]), 3),
                     "pitch": round(math.degrees(ang["HeadPitch"]), 3),
                     "roll": round(math.degrees(ang["HeadRoll"]), 3)},
        })
    return fps, frames
