"""Real subjects rendered with their own folds (``render --folds``) next to the real frames (issue 11).

    PYTHONPATH=backend python scripts/personal_renders.py --out OUT [--data ../shared/data/faces] \
        [--addon addon] [--resolution 512] [--samples 64] [--gap 15] [SUBJECT ...]

SUBJECT is CLIP@NEUTRAL:EXPRESSIVE=PRESET (default: ``real_renders.DEFAULT``). For each, the
neutral frame is imported as the photo and rendered at the preset (Cycles, frame 2) three
times: details off, the shipped DetP only, and with the person's folds learnt from the clip
**with the frames within --gap of the shown expressive frame cut out** (so the render is not
fed the frame it is compared with). Per fold region: mean |luminance change| against the
details-off render (sRGB grey levels). Writes OUT/personal_renders.png (rows: real neutral |
real expression | DetP only | with their folds | |folds - DetP only| x16) and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_renders import DEFAULT, region_change, render  # noqa: E402


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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("subjects", nargs="*", default=DEFAULT)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"))
    ap.add_argument("--addon", default=os.environ.get("FACEDET3D_ADDON_DIR", str(Path(__file__).resolve().parents[1] / "addon")))
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--gap", type=int, default=15)
    args = ap.parse_args(argv)
    from facedet3d.detail.frames import read_video

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, rows = {}, []
    for spec in args.subjects:
        clip, _, preset = spec.partition("=")
        rel, _, fr = clip.partition("@")
        n_i, e_i = (int(v) for v in fr.split(":"))
        name = f"{Path(rel).stem}_{preset}"
        sub = out / name
        sub.mkdir(exist_ok=True)
        frames = read_video(Path(args.data) / rel, frames=[n_i, e_i])
        cv2.imwrite(str(sub / "real_neutral.png"), frames[n_i][..., ::-1])
        cv2.imwrite(str(sub / "real_expr.png"), frames[e_i][..., ::-1])
        enrol = sub / "enrol.avi"
        kept = cut_video(Path(args.data) / rel, enrol, range(e_i - args.gap, e_i + args.gap + 1))
        photo = sub / "real_neutral.png"
        off = render(photo, preset, sub / "off", args, False)
        detp = render(photo, preset, sub / "detp", args, True)
        folds = render(photo, preset, sub / "folds", args, True, ["--folds", str(enrol)])
        res = {"enrol_frames": kept}
        for key, d in (("detp", detp), ("folds", folds)):
            res[key] = {("neutral" if f == 1 else preset): region_change(d / "frames" / f"{f:04d}.png", off / "frames" / f"{f:04d}.png",
                                                                        off / "passes" / f"{f:04d}.exr") for f in (1, 2)}
        results[name] = res
        print(name, json.dumps(res), flush=True)
        R = args.resolution
        tile = lambda im: cv2.resize(im, (R, R), interpolation=cv2.INTER_AREA)  # noqa: E731
        real_n, real_e = (tile(cv2.imread(str(sub / p))) for p in ("real_neutral.png", "real_expr.png"))
        a, b = (cv2.imread(str(d / "frames" / "0002.png")) for d in (detp, folds))
        diff = np.clip(np.abs(a.astype(np.int16) - b.astype(np.int16)).max(-1) * 16, 0, 255).astype(np.uint8)
        row = np.concatenate([real_n, real_e, a, b, cv2.cvtColor(diff, cv2.COLOR_GRAY2BGR)], 1)
        cv2.putText(row, f"{name}: real neutral | real {preset} | DetP only | their own folds | |difference| x16",
                    (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        rows.append(row)
    cv2.imwrite(str(out / "personal_renders.png"), np.concatenate(rows, 0))
    (out / "personal_renders.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
