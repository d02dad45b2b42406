"""Live Link Face's CSV format (Epic's iOS capture app; read by Unreal, Blender and Maya
importers): one row per frame,

``Timecode,BlendShapeCount,<52 ARKit blendshapes in PascalCase>,HeadYaw,HeadPitch,HeadRoll,
LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll``

- ``Timecode`` ``HH:MM:SS:FF.sss``: FF the frame within the second at the capture rate, .sss
  the sub-frame fraction (thousandths). A capture does not store its rate: ``read_csv`` infers
  it from the largest FF (rounded up to 24/25/30/48/50/60), or takes ``fps``.
- ``BlendShapeCount`` 61 (52 shapes + 9 angles).
- Angles in radians (converted from/to the track's degrees). Eye angles are written as 0:
  this reader gives gaze as the eyeLook* blendshapes, not as angles. ``TongueOut`` is written
  as 0 (MediaPipe does not read it).
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
        ang = [math.radians(float(head.get(k, 0.0))) for k in ("yaw", "pitch", "roll")] + [0.0] * 6
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
            ang = {k: float(row[cols[k.lower()]]) if k.lower() in cols else 0.0 for k in ANGLES[:3]}
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
        frames.append({
            "time": round(sec + (ff + sub) / fps - t0, 4), "found": True,
            "aus": {str(k): round(v, 4) for k, v in au_mod.aus_from_blendshapes(bs).items()},
            "blendshapes": {n: round(v, 4) for n, v in bs.items()},
            "head": {"yaw": round(math.degrees(ang["HeadYaw"]), 3),
                     "pitch": round(math.degrees(ang["HeadPitch"]), 3),
                     "roll": round(math.degrees(ang["HeadRoll"]), 3)},
        })
    return fps, frames
