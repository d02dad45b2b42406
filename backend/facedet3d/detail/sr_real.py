"""Fine-tune the x4 detail super-resolution on real 1024² D(I) maps (issue 11). Not CI.

    python -m facedet3d.detail.sr_real --photos DIR [DIR ...] --maps MAPS --out DIR \
        [--holdout 20] [--minutes 10] [--batch 8] [--lr 2e-4] [--init WEIGHTS]

1. Every photo is fitted and unwrapped at 1024² (``frames.FrameFitter``) and its D(I)
   estimated; MAPS/<photo>.npz keeps it (float16, 0.1 mm units) with the observed mask.
   Resumable: a map already there is not rebuilt.
2. ``--holdout`` photos, every k-th in input order (so each source is held out alike), are
   never trained on.
3. From the SR weights of ``--init`` (default: shipped), L1 on 128² real patches that
   are >= 90 % observed skin (LR = their 4x4 area mean, as ``sr.patch_pair``), with, with
   probability ``--mix``, a procedural batch (``data.sr_batch``: keeps 1024 -> 4096).
4. Held-out figures before and after, and for bicubic: L1 against the real 1024² map over
   the observed texels (0.1 mm units), tile by tile.
Writes OUT/sr.safetensors (+ the shipped detp.safetensors) and OUT/sr_real.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

UNIT_M = 1e-4
PATCH = 128


def build_maps(photos: list[Path], maps: Path, progress=print) -> list[str]:
    """Fit each photo at 1024² and store D(I) + observed mask; returns the names built or kept."""
    import cv2

    from facedet3d.detail.frames import FrameFitter
    from facedet3d.errors import FaceDet3DError
    from facedet3d.fit import photo as photo_mod

    maps.mkdir(parents=True, exist_ok=True)
    fitter, names = None, []
    for p in photos:
        name = f"{p.parent.name}_{p.stem}".replace(" ", "")
        dst = maps / f"{name}.npz"
        if not dst.is_file():
            fitter = fitter or FrameFitter(1024)
            try:
                f = fitter.fit(photo_mod.load_photo(p).rgb)
            except FaceDet3DError as exc:
                progress(f"{p.name}: skipped ({exc})")
                continue
            tmp = dst.with_name(f".{dst.name}.tmp")
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, detail=(f.detail / UNIT_M).astype(np.float16),
                                    mask=((f.mask > 127) & (cv2.erode((f.mask > 127).astype(np.uint8),
                                                                      np.ones((9, 9), np.uint8)) > 0)))
            tmp.replace(dst)
            progress(f"{p.name}: mapped")
        names.append(name)
    return names


class RealPatches:
    """Random 128² patches of real 1024² D(I), >= 90 % observed; LR by 4x4 area mean."""

    def __init__(self, maps: Path, names: list[str], seed: int = 0):
        self.maps = [self._load(maps / f"{n}.npz") for n in names]
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def _load(path: Path):
        with np.load(path) as z:
            return z["detail"].astype(np.float32) * UNIT_M, z["mask"].astype(bool)

    def batch(self, n: int):
        import torch

        from facedet3d.detail.sr import patch_pair

        lrs, hrs = [], []
        while len(hrs) < n:
            d, m = self.maps[int(self.rng.integers(len(self.maps)))]
            r, c = (int(self.rng.integers(0, 1024 - PATCH)) // 4 * 4 for _ in range(2))
            if m[r:r + PATCH, c:c + PATCH].mean() < 0.9:
                continue
            lr, hr = patch_pair(d[r:r + PATCH, c:c + PATCH])
            lrs.append(lr[None])
            hrs.append(hr[None])
        return torch.from_numpy(np.stack(lrs)), torch.from_numpy(np.stack(hrs))


def evaluate(sr, maps: Path, names: list[str]) -> dict:
    """Held-out L1 (0.1 mm units) of SR and of bicubic against the real 1024² maps, over the
    observed texels, and the share of the map's own high-frequency energy each recovers."""
    import torch
    import torch.nn.functional as F

    l1_sr, l1_bi, n_tex = 0.0, 0.0, 0
    for name in names:
        d, m = RealPatches._load(maps / f"{name}.npz")
        lr = d.reshape(256, 4, 256, 4).mean((1, 3))
        with torch.no_grad():
            t = torch.from_numpy(lr)[None, None]
            up = sr(t)[0, 0].numpy()
            bi = F.interpolate(t, scale_factor=4, mode="bicubic", align_corners=False)[0, 0].numpy()
        l1_sr += float(np.abs(up - d)[m].sum()) / UNIT_M
        l1_bi += float(np.abs(bi - d)[m].sum()) / UNIT_M
        n_tex += int(m.sum())
    return {"l1_sr": l1_sr / max(n_tex, 1), "l1_bicubic": l1_bi / max(n_tex, 1), "maps": len(names)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facedet3d.detail.sr_real", description=__doc__.split("\n")[0])
    ap.add_argument("--photos", nargs="+", required=True, help="photos or folders of photos")
    ap.add_argument("--maps", required=True, help="folder for the 1024² D(I) maps (resumable)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", default=None, help="weights folder to start from (default: shipped)")
    ap.add_argument("--holdout", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=10**6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--mix", type=float, default=0.25, help="share of procedural batches")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    import torch

    from facedet3d.detail.data import sr_batch
    from facedet3d.detail.infer import DETP_FILE, SR_FILE, WEIGHTS_DIR, _load
    from facedet3d.detail.real_corpus import PHOTO_EXT
    from facedet3d.detail.sr import RCAN
    from facedet3d.detail.train import save_net, setup_torch, sha256

    setup_torch(a.threads, a.seed)
    photos = []
    for s in a.photos:
        p = Path(s)
        photos += sorted(q for q in p.iterdir() if q.suffix.lower() in PHOTO_EXT) if p.is_dir() else [p]
    names = build_maps(photos, Path(a.maps))
    if len(names) <= a.holdout:
        raise SystemExit(f"{len(names)} maps: need more than --holdout {a.holdout}")
    every = max(len(names) // a.holdout, 2)  # every k-th photo: both sources held out alike
    held = names[::every][:a.holdout]
    train_n = [n for n in names if n not in held]
    init = Path(a.init) if a.init else WEIGHTS_DIR
    sr, meta = _load(RCAN, init / SR_FILE)
    before = evaluate(sr.eval(), Path(a.maps), held)
    print(json.dumps({"held_out_before": before}), flush=True)
    src = RealPatches(Path(a.maps), train_n, seed=a.seed)
    opt = torch.optim.Adam(sr.parameters(), lr=a.lr)
    rng = np.random.default_rng(a.seed)
    sr.train()
    t0, step, log = time.time(), 0, []
    while step < a.steps and time.time() - t0 < a.minutes * 60:
        kind = "proc" if rng.random() < a.mix else "real"
        lr_, hr_ = sr_batch(step, a.batch, seed=a.seed) if kind == "proc" else src.batch(a.batch)
        loss = (sr(lr_) - hr_).abs().mean() / UNIT_M
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.append({"step": step, "kind": kind, "l1": float(loss), "t": round(time.time() - t0, 1)})
        if step % 25 == 0:
            print(json.dumps(log[-1]), flush=True)
        step += 1
    after = evaluate(sr.eval(), Path(a.maps), held)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in meta.items() if k != "config"}
    meta["trained_on"] = (f"fine-tuned from {init} on real 1024² D(I) of {len(train_n)} photos "
                          f"({', '.join(sorted({Path(str(p)).parent.name for p in photos}))}) + procedural mix {a.mix}, {step} steps")
    save_net(sr, out / SR_FILE, meta)
    shutil.copy(WEIGHTS_DIR / DETP_FILE, out / DETP_FILE)
    rec = {"command": "python -m facedet3d.detail.sr_real " + " ".join(argv if argv is not None else sys.argv[1:]),
           "steps": step, "train_maps": len(train_n), "held_out": held, "held_out_before": before,
           "held_out_after": after, "sr_sha256": sha256(out / SR_FILE), "log": log}
    (out / "sr_real.json").write_text(json.dumps(rec, indent=1))
    print(json.dumps({k: v for k, v in rec.items() if k != "log"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
