"""Real subjects rendered with and without DetP's wrinkles, next to their real frames (issue 11).

    PYTHONPATH=backend python scripts/real_renders.py --out OUT [--data ../shared/data/faces] \
        [--addon addon] [--resolution 512] [--samples 64] [--light key|front] [SUBJECT ...]

SUBJECT is CLIP@NEUTRAL:EXPRESSIVE=PRESET (default: three held-out clips: d0 smile, d13 smile,
d3 surprise); PRESET "frame" renders the expressive frame's own AUs as the photo fit reads
them (``frame_aus``) instead of a preset, so that the render and the real frame show one expression. For each: the neutral frame is imported as the photo (``facedet3d render
--preset PRESET --frames 2``: frame 1 the photo's own expression, frame 2 the preset), with
Cycles at RESOLUTION², once with the details and once with ``--no-details``; UV passes map
every pixel to the face's UV so the fold regions of ``detail.evaluate.regions`` (crow's
feet, nasolabial, forehead, glabella) can be measured on the render: mean |luminance change|
(details on - off, sRGB 0-255 luma) per region, and the same on the rest of the face.
Writes OUT/<subject>/{real_neutral,real_expr}.png, the render folders, OUT/real_renders.png
(rows: real neutral | real expression | render off | render on | |on - off| x16) and
OUT/real_renders.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

DEFAULT = ["LivePortrait/assets/examples/driving/d0.mp4@0:36=happy",
           "LivePortrait/assets/examples/driving/d13.mp4@0:232=happy",
           "LivePortrait/assets/examples/driving/d3.mp4@0:319=surprise"]


def luma(path: Path) -> np.ndarray:
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32)
    return im @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def region_change(on: Path, off: Path, passes: Path) -> dict:
    """Mean |L_on - L_off| per fold region and on the rest of the face (pixels)."""
    from facedet3d.detail import evaluate as ev
    from facedet3d.neural.passes import read_passes

    pf = read_passes(passes)
    dl = np.abs(luma(on) - luma(off))
    regs = ev.regions(ev.EVAL_SIZE)
    n = ev.EVAL_SIZE
    col = np.clip((pf.uv[..., 0] * n).astype(int), 0, n - 1)
    row = np.clip(((1.0 - pf.uv[..., 1]) * n).astype(int), 0, n - 1)
    out, any_reg = {}, np.zeros(pf.mask.shape, bool)
    for k, m in regs.items():
        sel = pf.mask & m[row, col]
        any_reg |= sel
        out[k] = round(float(dl[sel].mean()), 3) if sel.any() else None
    rest = pf.mask & ~any_reg
    out["rest_of_face"] = round(float(dl[rest].mean()), 3)
    return out


def frame_aus(sub: Path) -> list[str]:
    """``--au`` arguments for the real expressive frame's own AUs: the photo fit's reading of
    ``real_expr.png`` (MediaPipe, as Import Photo reads a photo), fitted once into sub/expr_fit."""
    fit = sub / "expr_fit"
    if not (fit / "meta.json").is_file():
        r = subprocess.run([sys.executable, "-m", "facedet3d.cli.app", "fit", str(sub / "real_expr.png"), "-o", str(fit)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"fit failed for {sub / 'real_expr.png'}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    aus = json.loads((fit / "meta.json").read_text())["aus"]
    return [a for k, v in sorted(aus.items(), key=lambda kv: int(kv[0])) for a in ("--au", f"{k}={float(v):.4f}")]


def render(photo: Path, preset: str, out: Path, args, details: bool, extra=()) -> Path:
    """Frame 1 the photo's own expression, frame 2 ``preset`` ("frame": the real expressive
    frame's AUs, ``frame_aus``)."""
    target = frame_aus(photo.parent) if preset == "frame" else ["--preset", preset]
    cmd = [sys.executable, "-m", "facedet3d.cli.app", "render", str(photo), *target, "--frames", "2",
           "--engine", "cycles", "--resolution", str(args.resolution), "--samples", str(args.samples),
           "--passes", "--addon", args.addon, "-o", str(out), "--cavity", str(args.cavity)]
    cmd += ([] if details else ["--no-details"]) + (["--light", args.light] if args.light != "key" else []) + list(extra)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"render failed for {photo} ({preset}): {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return out


def prepare(spec: str, data: Path, out: Path):
    """CLIP@NEUTRAL:EXPRESSIVE=PRESET -> (name, preset, clip path, expressive index, folder with
    real_neutral.png and real_expr.png written)."""
    from facedet3d.detail.frames import read_video

    clip, _, preset = spec.partition("=")
    rel, _, fr = clip.partition("@")
    n_i, e_i = (int(v) for v in fr.split(":"))
    name = f"{Path(rel).stem}_{preset}"
    sub = out / name
    sub.mkdir(parents=True, exist_ok=True)
    frames = read_video(data / rel, frames=[n_i, e_i])
    cv2.imwrite(str(sub / "real_neutral.png"), frames[n_i][..., ::-1])
    cv2.imwrite(str(sub / "real_expr.png"), frames[e_i][..., ::-1])
    return name, preset, data / rel, e_i, sub


def strip(sub: Path, a: np.ndarray, b: np.ndarray, size: int, label: str) -> np.ndarray:
    """One figure row: real neutral | real expression | render a | render b | |a - b| x16."""
    def tile(im):
        return cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)

    real_n, real_e = (tile(cv2.imread(str(sub / p))) for p in ("real_neutral.png", "real_expr.png"))
    diff = np.clip(np.abs(a.astype(np.int16) - b.astype(np.int16)).max(-1) * 16, 0, 255).astype(np.uint8)
    row = np.concatenate([real_n, real_e, a, b, cv2.cvtColor(diff, cv2.COLOR_GRAY2BGR)], 1)
    cv2.putText(row, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    return row


def parser(doc: str) -> argparse.ArgumentParser:
    """The options this script and ``personal_renders.py`` share."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("subjects", nargs="*", default=DEFAULT)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"))
    ap.add_argument("--addon", default=os.environ.get("FACEDET3D_ADDON_DIR", str(Path(__file__).resolve().parents[1] / "addon")))
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--cavity", type=float, default=1.0, help="render --cavity (0 = bump and displacement only)")
    ap.add_argument("--light", choices=("key", "front"), default="key", help="render --light")
    return ap


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, rows = {}, []
    for spec in args.subjects:
        name, preset, _, _, sub = prepare(spec, Path(args.data), out)
        on = render(sub / "real_neutral.png", preset, sub / "on", args, True)
        off = render(sub / "real_neutral.png", preset, sub / "off", args, False)
        res = {}
        for f in (1, 2):
            res["neutral" if f == 1 else preset] = region_change(on / "frames" / f"{f:04d}.png", off / "frames" / f"{f:04d}.png",
                                                                off / "passes" / f"{f:04d}.exr")
        results[name] = res
        print(name, json.dumps(res), flush=True)
        a, b = (cv2.imread(str(d / "frames" / "0002.png")) for d in (off, on))
        rows.append(strip(sub, a, b, args.resolution,
                          f"{name}: real neutral | real {preset} | render, details off | details on | |on-off| x16"))
    cv2.imwrite(str(out / "real_renders.png"), np.concatenate(rows, 0))
    (out / "real_renders.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
