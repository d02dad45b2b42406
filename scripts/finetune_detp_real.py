"""Short DetP fine-tuning trial on the real detail corpus (issue 11, step 4). Not CI.

    PYTHONPATH=backend python scripts/finetune_detp_real.py --corpus CORPUS --out DIR \
        [--minutes 8] [--mix 0.5] [--batch 4] [--lr 2e-4]

Starts from the shipped DetP weights. Each step is a real batch (pairs of frames of one clip
from ``facedet3d corpus``: regression LapLoss, Eq. 18, weighted to the texels seen in both
frames, plus the identity mapping x -> x) or, with probability ``--mix``, a procedural batch
(regression LapLoss), so the procedural prior stays where real coverage is thin. No
adversarial/ID/age terms in this trial. Writes DIR/detp.safetensors (+ the shipped
sr.safetensors, so ``DetailPredictor(DIR)`` loads) and DIR/finetune.json (losses, settings).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--mix", type=float, default=0.5, help="share of procedural batches")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    import torch
    from facedet3d.detail.data import CorpusPairs, alpha_e
    from facedet3d.detail.infer import DETP_FILE, SR_FILE, WEIGHTS_DIR, _load
    from facedet3d.detail.losses import lap_loss
    from facedet3d.detail.nets import ID_DIM, DetP, age_features
    from facedet3d.detail.real_corpus import CorpusReader
    from facedet3d.detail.train import save_net

    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    detp, meta = _load(DetP, WEIGHTS_DIR / DETP_FILE)
    detp.train()
    real = CorpusReader(a.corpus, seed=a.seed)
    proc = CorpusPairs(seed=a.seed + 17)
    opt = torch.optim.Adam(detp.parameters(), lr=a.lr, betas=(0.9, 0.99))
    rng = np.random.default_rng(a.seed)
    t0, step, log = time.time(), 0, []
    T = lambda x: torch.from_numpy(np.ascontiguousarray(np.stack(x), np.float32))
    while time.time() - t0 < a.minutes * 60:
        if rng.random() < a.mix:
            b = proc.batch(step, a.batch)
            pred = detp(b["d_x"], b["x"], b["y"], b["alpha_y"], b["age"], b["face_id"], b["id_flag"])
            loss = lap_loss(pred, b["d_y"])
            kind = "proc"
        else:
            ps = [real.pair(rng, with_mask=True) for _ in range(a.batch)]
            dx, dy = T([p[0] for p in ps])[:, None], T([p[1] for p in ps])[:, None]
            x, y = T([p[2] for p in ps]), T([p[3] for p in ps])
            w = T([p[5] for p in ps])[:, None] + 1e-3
            age = T([age_features(p[4]) for p in ps])
            zid, zf = torch.zeros(len(ps), ID_DIM), torch.zeros(len(ps), 1)
            pred = detp(dx, x, y, torch.from_numpy(alpha_e(y.numpy())), age, zid, zf)
            same = detp(dx, x, x, torch.from_numpy(alpha_e(x.numpy())), age, zid, zf)
            loss = lap_loss(pred, dy, weight=w) + 0.5 * lap_loss(same, dx, weight=w)
            kind = "real"
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(detp.parameters(), 5.0)
        opt.step()
        log.append({"step": step, "kind": kind, "loss": float(loss.detach()), "t": round(time.time() - t0, 1)})
        if step % 20 == 0:
            print(json.dumps(log[-1]), flush=True)
        step += 1
    detp.eval()
    meta = {**meta, "trained_on": f"fine-tuned from the shipped weights on the real corpus {a.corpus} "
            f"(mix {a.mix} procedural), {step} steps"}
    meta.pop("config", None)
    save_net(detp, out / DETP_FILE, meta)
    shutil.copy(WEIGHTS_DIR / SR_FILE, out / SR_FILE)
    summ = {"steps": step, "minutes": a.minutes, "mix": a.mix, "batch": a.batch, "lr": a.lr,
            "clips": real.names,
            "final_real_loss": float(np.mean([r["loss"] for r in log if r["kind"] == "real"][-20:] or [np.nan])),
            "first_real_loss": float(np.mean([r["loss"] for r in log if r["kind"] == "real"][:20] or [np.nan]))}
    (out / "finetune.json").write_text(json.dumps({**summ, "log": log}, indent=1))
    print(json.dumps(summ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
