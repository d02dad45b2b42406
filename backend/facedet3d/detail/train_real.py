"""Fine-tune DetP on the real detail corpus (issue 11). Not part of CI (a smoke test is).

    python -m facedet3d.detail.train_real --corpus CORPUS --out DIR [--minutes 30] \
        [--mix 0.3] [--batch 4] [--lr 2e-4] [--cyc 0.5] [--same 0.5] [--seed 0]

Starts from the shipped DetP weights (``--init``). Each step is, with probability ``--mix``, a
procedural batch (the paper's regression LapLoss with the change weighting the shipped
weights were trained with: keeps the prior where real coverage is thin, e.g. AU1/2/4 forehead
and glabella), else a real batch of cross-reference triplets from ``facedet3d corpus``
(``CorpusReader.triplet``), with, on the texels all three frames observed:

- regression (Eq. 18): LapLoss(DetP(D_a, x=a, y=b), D_a + D_b - D_c), c a second look at a's
  expression: the target's noise is independent of the input;
- identity: LapLoss(DetP(D_a, a, a), D_a) x ``--same``: at the photo's own AUs the map stays;
- cycle (Eq. 19): LapLoss(DetP(DetP(D_a, a, b), b, a), D_a) x ``--cyc``.

The identity code is absent (the real corpus has no FaceNet embedding); the age input is
``DEFAULT_AGE_YEARS`` where the corpus has none (it has none today). No adversarial terms:
they cost 3x per step, which this 2-core machine cannot spend (see TRAINING.md).
Writes DIR/detp.safetensors (+ the shipped sr.safetensors, so ``DetailPredictor(DIR)`` loads),
DIR/train_real.json (settings, clips, losses per step) and DIR/loss_curves.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def real_batch(reader, rng: np.random.Generator, n: int):
    """Stacked torch tensors (d_a, target, x, y, alpha_x, alpha_y, age, seen) of n triplets."""
    import torch

    from facedet3d.detail.data import alpha_e
    from facedet3d.detail.nets import age_features

    ts = [reader.triplet(rng) for _ in range(n)]
    T = lambda xs: torch.from_numpy(np.ascontiguousarray(np.stack(xs), np.float32))
    d_a, tgt = T([t[0] for t in ts])[:, None], T([t[1] for t in ts])[:, None]
    x, y = T([t[2] for t in ts]), T([t[3] for t in ts])
    return {"d_a": d_a, "target": tgt, "x": x, "y": y,
            "alpha_x": torch.from_numpy(alpha_e(x.numpy())), "alpha_y": torch.from_numpy(alpha_e(y.numpy())),
            "age": T([age_features(t[4]) for t in ts]), "seen": T([t[5] for t in ts])[:, None]}


def real_losses(detp, b: dict, same_w: float, cyc_w: float) -> dict:
    """The three real-pair terms (see the module docstring); each a scalar tensor."""
    import torch

    from facedet3d.detail.losses import lap_loss
    from facedet3d.detail.nets import ID_DIM

    n = b["d_a"].shape[0]
    zid, zf = torch.zeros(n, ID_DIM), torch.zeros(n, 1)
    w = b["seen"] + 1e-3  # unseen texels hold the fill of the unwrap, not skin
    pred = detp(b["d_a"], b["x"], b["y"], b["alpha_y"], b["age"], zid, zf)
    out = {"reg": lap_loss(pred, b["target"], weight=w)}
    if same_w > 0:
        same = detp(b["d_a"], b["x"], b["x"], b["alpha_x"], b["age"], zid, zf)
        out["same"] = same_w * lap_loss(same, b["d_a"], weight=w)
    if cyc_w > 0:
        back = detp(pred, b["y"], b["x"], b["alpha_x"], b["age"], zid, zf)
        out["cyc"] = cyc_w * lap_loss(back, b["d_a"], weight=w)
    return out


def proc_loss(detp, b: dict):
    """The procedural regression term, weighted as the shipped training (``change_gain``)."""
    from facedet3d.detail.losses import LossConfig, change_weight, lap_loss

    cfg = LossConfig()
    pred = detp(b["d_x"], b["x"], b["y"], b["alpha_y"], b["age"], b["face_id"], b["id_flag"])
    w = change_weight(b["d_x"], b["d_y"], cfg.change_gain, cfg.change_scale_m)
    return lap_loss(pred, b["d_y"], weight=w)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facedet3d.detail.train_real", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True, help="a corpus folder built by `facedet3d corpus`")
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", default=None, help="DetP weights folder to start from (default: shipped)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--steps", type=int, default=10**6, help="step cap (whichever comes first)")
    ap.add_argument("--mix", type=float, default=0.3, help="share of procedural batches (0 = real only)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--same", type=float, default=0.5, help="identity-mapping weight")
    ap.add_argument("--cyc", type=float, default=0.5, help="cycle-consistency weight")
    ap.add_argument("--min-quality", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    import torch

    from facedet3d.detail.data import CorpusPairs
    from facedet3d.detail.infer import DETP_FILE, SR_FILE, WEIGHTS_DIR, _load
    from facedet3d.detail.nets import DetP
    from facedet3d.detail.real_corpus import CorpusReader
    from facedet3d.detail.train import plot_curves, save_net, setup_torch, sha256

    setup_torch(a.threads, a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    init = Path(a.init) if a.init else WEIGHTS_DIR
    detp, meta = _load(DetP, init / DETP_FILE)
    detp.train()
    reader = CorpusReader(a.corpus, seed=a.seed, min_quality=a.min_quality)
    if not reader._triplet_clips:
        raise SystemExit(f"{a.corpus}: no clip has a twin frame and a changed frame (build with twins)")
    proc = CorpusPairs(seed=a.seed + 17)
    opt = torch.optim.Adam(detp.parameters(), lr=a.lr, betas=(0.9, 0.99))
    rng = np.random.default_rng(a.seed)
    t0, step, log = time.time(), 0, []
    while step < a.steps and time.time() - t0 < a.minutes * 60:
        if rng.random() < a.mix:
            terms = {"proc": proc_loss(detp, proc.batch(step, a.batch))}
        else:
            terms = real_losses(detp, real_batch(reader, rng, a.batch), a.same, a.cyc)
        loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(detp.parameters(), 5.0)
        opt.step()
        log.append({"step": step, "t": round(time.time() - t0, 1), **{k: float(v.detach()) for k, v in terms.items()}})
        if step % 25 == 0:
            print(json.dumps(log[-1]), flush=True)
        step += 1
    detp.eval()
    src = f"real corpus {Path(a.corpus).name} ({len(reader._triplet_clips)} clips: {', '.join(reader._triplet_clips)})"
    meta = {k: v for k, v in meta.items() if k != "config"}
    meta["trained_on"] = (f"fine-tuned from {init} on the {src} + procedural mix {a.mix}, {step} steps "
                          f"of batch {a.batch}, lr {a.lr}, same {a.same}, cyc {a.cyc}")
    save_net(detp, out / DETP_FILE, meta)
    shutil.copy(WEIGHTS_DIR / SR_FILE, out / SR_FILE)
    plot_curves(log, out / "loss_curves.png", ["reg", "same", "cyc", "proc"])
    first = lambda k, sl: float(np.mean([r[k] for r in log if k in r][sl] or [np.nan]))
    summ = {"command": "python -m facedet3d.detail.train_real " + " ".join(argv if argv is not None else sys.argv[1:]),
            "steps": step, "minutes": round((time.time() - t0) / 60, 1), "mix": a.mix, "batch": a.batch,
            "lr": a.lr, "same": a.same, "cyc": a.cyc, "seed": a.seed, "clips": reader._triplet_clips,
            "reg_first50": first("reg", slice(0, 50)), "reg_last50": first("reg", slice(-50, None)),
            "detp_sha256": sha256(out / DETP_FILE)}
    (out / "train_real.json").write_text(json.dumps({**summ, "log": log}, indent=1))
    print(json.dumps(summ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
