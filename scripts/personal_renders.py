"""Real subjects rendered with their own folds (``render --folds``) next to the real frames (issue 11).

    PYTHONPATH=backend python scripts/personal_renders.py --out OUT [--data ../shared/data/faces] \
        [--addon addon] [--resolution 512] [--samples 64] [--gap 15] [--light key|front] [SUBJECT ...]

SUBJECT is CLIP@NEUTRAL:EXPRESSIVE=PRESET (default: ``real_renders.DEFAULT``). For each, the
neutral frame is imported as the photo and rendered at the preset (Cycles, frame 2) three
times: details off, the shipped DetP only, and DetP plus the person's folds learnt from the clip
**with the frames within --gap of the shown expressive frame cut out** (so the render is not
fed the frame it is compared with). Per fold region: mean |luminance change| against the
details-off render (sRGB grey levels). Writes OUT/personal_renders.png (rows: real neutral |
real expression | DetP only | DetP + their folds | |difference| x16) and .json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_renders import parser, prepare, region_change, render, strip  # noqa: E402


def cut_video(src: Path, dst: Path, drop: range) -> int:
    """Copy ``src`` without the frames in ``drop`` (MJPG in .avi: no codec dependency)."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    i = kept = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i not in drop:
            out.write(frame)
            kept += 1
        i += 1
    cap.release()
    out.release()
    return kept


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--gap", type=int, default=15)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, rows = {}, []
    for spec in args.subjects:
        name, preset, clip, e_i, sub = prepare(spec, Path(args.data), out)
        enrol = sub / "enrol.avi"
        kept = cut_video(clip, enrol, range(e_i - args.gap, e_i + args.gap + 1))
        photo = sub / "real_neutral.png"
        # the details-off and DetP-only renders do not depend on the folds: kept from an earlier
        # run into the same --out (a calibration of personal.DEPTH_GAIN re-renders only the folds)
        off, detp = sub / "off", sub / "detp"
        if not (off / "frames" / "0002.png").is_file():
            render(photo, preset, off, args, False)
        if not (detp / "frames" / "0002.png").is_file():
            render(photo, preset, detp, args, True)
        folds = render(photo, preset, sub / "folds", args, True, ["--folds", str(enrol)])
        res = {"enrol_frames": kept}
        for key, d in (("detp", detp), ("folds", folds)):
            res[key] = {("neutral" if f == 1 else preset): region_change(d / "frames" / f"{f:04d}.png", off / "frames" / f"{f:04d}.png",
                                                                        off / "passes" / f"{f:04d}.exr") for f in (1, 2)}
        results[name] = res
        print(name, json.dumps(res), flush=True)
        a, b = (cv2.imread(str(d / "frames" / "0002.png")) for d in (detp, folds))
        rows.append(strip(sub, a, b, args.resolution,
                          f"{name}: real neutral | real {preset} | DetP only | DetP + their own folds | |difference| x16"))
    cv2.imwrite(str(out / "personal_renders.png"), np.concatenate(rows, 0))
    (out / "personal_renders.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
