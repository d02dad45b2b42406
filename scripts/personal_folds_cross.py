"""Personal folds through the product path, across clips (issue 11).

    PYTHONPATH=backend python scripts/personal_folds_cross.py --test TEST.mp4 --enrol ENROL.mp4 \
        [--other OTHER.mp4] --work DIR

What an artist does: the person's photo (here TEST's first frame) is fitted to a FaceAsset;
``facedet3d folds ENROL.mp4`` enrols their folds from ANOTHER video of them (registered to the
photo's unwrap by UV flow). Then TEST's frames are fitted, read and registered to the same
photo unwrap, and every test pair (AU L1 >= 0.6, observed change D_b - D_c with c another look
at a's expression) is compared with

- own: the folds enrolled from ENROL (same person, other clip);
- other: folds enrolled from OTHER (another person) into the same asset (a null: what
  generic, not personal, fold positions score);
- DetP: the shipped network's change for the asset.

Prints r / gain / RMS ratio per region the pair's AUs move (``personal_folds.MOVES``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from personal_folds import MIN_MOVE, MOVES, _stats  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", required=True)
    ap.add_argument("--enrol", required=True)
    ap.add_argument("--other")
    ap.add_argument("--work", required=True)
    ap.add_argument("--max-frames", type=int, default=100)
    a = ap.parse_args(argv)

    from types import SimpleNamespace

    from facedet3d.detail import evaluate as ev
    from facedet3d.detail import personal, real_corpus
    from facedet3d.detail.frames import FrameFitter, read_video, resolve_labels
    from facedet3d.detail.infer import DetailPredictor
    from facedet3d.fit import faceasset
    from facedet3d.fit.pipeline import Backend, FitRequest
    from facedet3d.rig.facs import AU_IDS

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    photo = work / "photo.png"
    cv2.imwrite(str(photo), read_video(Path(a.test), frames=[0])[0][..., ::-1])
    backend = Backend()
    asset = Path(backend.fit_to_disk(FitRequest(photo=str(photo)), work / "asset"))
    folds = {}
    for name, video in (("own", a.enrol), ("other", a.other)):
        if video:
            meta = personal.enrol(video, asset, max_frames=a.max_frames)
            print(f"{name}: enrolled {meta['frames']} frames of {Path(video).name}, AUs {meta['active_aus']}, "
                  f"split r {meta['split_check_r']}")
            folds[name] = personal.from_arrays(faceasset.read(asset).folds)
    (asset / personal.FILE).unlink()
    A = faceasset.read(asset)
    ref = SimpleNamespace(texture=cv2.resize(A.texture, (512, 512), interpolation=cv2.INTER_AREA),
                          mask=cv2.resize(A.texture_mask, (512, 512), interpolation=cv2.INTER_NEAREST))
    tmp = work / "test_corpus"
    shutil.rmtree(tmp, ignore_errors=True)
    from facedet3d.fit.detail_input import DetailParams

    fitter = FrameFitter(512, detail_params=DetailParams(coarse_sigma=personal.COARSE_SIGMA))  # as enrol sees
    real_corpus.build_clip(fitter, Path(a.test), tmp, labels=resolve_labels("mediapipe"), stride=2,
                           per_clip=60, min_change=0.25, max_frames=a.max_frames, twins=False, align_ref=ref)
    with np.load(next((tmp / "clips").glob("*.npz"))) as z:
        det = z["detail"].astype(np.float32) * real_corpus.UNIT_M
        msk, aus, frames = z["mask"] > 127, z["aus"].astype(np.float32), z["frames"]
    ev.BAND = personal.BAND
    bp = np.stack([ev.bandpass(d, m.astype(np.float32)) for d, m in zip(det, msk)])
    pred = DetailPredictor(None, backend="torch", threads=1)
    x0 = np.array([float((A.meta.aus or {}).get(str(k), 0.0)) for k in AU_IDS], np.float32)
    regs = ev.regions(256)
    rng = np.random.default_rng(0)
    n = len(aus)
    pairs = []
    for i in range(n):
        for j in range(n):
            if i != j and np.abs(aus[i] - aus[j]).sum() >= 0.6:
                tw = [k for k in range(n) if k not in (i, j) and np.abs(aus[k] - aus[i]).sum() < 0.5
                      and abs(int(frames[k]) - int(frames[i])) >= 6]
                if tw:
                    pairs.append((i, j, min(tw, key=lambda k: np.abs(aus[k] - aus[i]).sum())))
    rng.shuffle(pairs)
    cells: dict[str, list] = {}
    for i, j, c in pairs[:40]:
        obs = bp[j] - bp[c]
        cand = {m: f.change(aus[i], aus[j]) for m, f in folds.items()}
        w = A.texture_mask.astype(np.float32)
        d_in = cv2.resize(A.detail_input, (256, 256), interpolation=cv2.INTER_AREA)
        pa, pb = pred(d_in, x0, aus[i]), pred(d_in, x0, aus[j])
        w = (cv2.resize(w, (256, 256)) > 127).astype(np.float32)
        cand["detp"] = ev.bandpass(pb, w) - ev.bandpass(pa, w)
        d_au = {int(k): float(aus[j][q] - aus[i][q]) for q, k in enumerate(AU_IDS)}
        for reg, ids in MOVES.items():
            if sum(abs(d_au[k]) for k in ids) < MIN_MOVE:
                continue
            sel = regs[reg] & msk[i] & msk[j] & msk[c] & next(iter(folds.values())).seen
            for m, p in cand.items():
                s = _stats(p, obs, sel)
                if s:
                    cells.setdefault(m, []).append((reg, s))
    print(f"{len(pairs[:40])} test pairs from {n} frames of {Path(a.test).name}")
    for m, cs in cells.items():
        for reg in list(MOVES) + ["all"]:
            rs = [s for g, s in cs if reg in ("all", g)]
            if rs:
                r = np.array([s["r"] for s in rs])
                print(f"{m:6s} {reg:11s} cells {len(rs):3d}  r {r.mean():+.2f} ({int((r < 0).sum())}/{len(r)} < 0)  "
                      f"gain {np.median([s['gain'] for s in rs]):+.2f}  rms {np.median([s['rms_ratio'] for s in rs]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
