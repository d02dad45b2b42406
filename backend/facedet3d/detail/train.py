"""Train DetP (with D_Exp, D_Face, D_Age) and the x4 super-resolution, write the weights.

    python -m facedet3d.detail.train --out backend/facedet3d/weights [--data FOLDER]
        [--seed 0] [--batch 6] [--detp-minutes 14] [--sr-minutes 4] [--loss cyc=0 ...]

Without ``--data`` it trains on the procedural corpus (``corpus.py``); with it, on a folder of
real labelled detail maps (``data.FolderPairs``). Every loss weight of ``LossConfig`` can be
set with ``--loss NAME=VALUE`` (0 switches a term off). Each phase stops at its step count or
its time budget, whichever comes first.

Writes into --out: ``detp.safetensors`` and ``sr.safetensors`` (tensors only; the
constructor config, loss config and data source in the safetensors metadata),
``training_log.jsonl`` (losses per step), ``loss_curves.png`` and ``TRAINING.md`` (command,
seed, wall time, final losses, sha256 of each weights file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facedet3d.detail.data import CorpusPairs, FolderPairs, sr_batch
from facedet3d.detail.discriminators import DAge, DExp, DFace
from facedet3d.detail.losses import LossConfig, discriminator_losses, generator_losses, lap_loss
from facedet3d.detail.nets import DetP, build, config_of
from facedet3d.detail.sr import RCAN


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def setup_torch(threads: int, seed: int) -> None:
    """CPU threads, flush denormals (Gaussian tails in float32 maps would otherwise crawl as
    denormals) and the seed: the same for every trainer."""
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)


def save_net(net: torch.nn.Module, path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    sd = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(sd, str(path), metadata={"config": json.dumps(config_of(net)), **{k: json.dumps(v) for k, v in meta.items()}})


def plot_curves(log: list[dict], path: Path, keys: list[str]) -> None:
    """Loss curves (log10, moving average) as a PNG drawn with OpenCV (no matplotlib here)."""
    import cv2

    W, H, pad = 1000, 600, 60
    img = np.full((H, W, 3), 255, np.uint8)
    series = {k: np.array([r[k] for r in log if k in r and r[k] > 0]) for k in keys}
    series = {k: v for k, v in series.items() if len(v) > 1}
    if not series:
        cv2.imwrite(str(path), img)
        return
    sm = {k: np.log10(np.convolve(v, np.ones(min(25, len(v))) / min(25, len(v)), mode="valid")) for k, v in series.items()}
    lo, hi = min(v.min() for v in sm.values()), max(v.max() for v in sm.values())
    hi = hi if hi > lo else lo + 1
    colors = [(200, 30, 30), (30, 150, 30), (30, 30, 200), (0, 140, 220), (160, 0, 160), (120, 120, 0),
              (0, 0, 0), (90, 90, 200), (200, 90, 90), (60, 160, 160), (140, 70, 20), (80, 200, 80)]
    cv2.rectangle(img, (pad, pad // 2), (W - pad // 2, H - pad), (0, 0, 0), 1)
    for i, (k, v) in enumerate(sm.items()):
        xs = pad + np.arange(len(v)) / max(len(v) - 1, 1) * (W - 1.5 * pad)
        ys = H - pad - (v - lo) / (hi - lo) * (H - 1.5 * pad)
        cv2.polylines(img, [np.stack([xs, ys], 1).astype(np.int32)], False, colors[i % len(colors)], 1, cv2.LINE_AA)
        cv2.putText(img, k, (W - 170, 45 + 18 * i), 0, 0.5, colors[i % len(colors)], 1, cv2.LINE_AA)
    for t in np.linspace(lo, hi, 5):
        y = int(H - pad - (t - lo) / (hi - lo) * (H - 1.5 * pad))
        cv2.putText(img, f"1e{t:.1f}", (2, y + 4), 0, 0.4, (0, 0, 0), 1)
    cv2.putText(img, "training progress (log10 loss, moving average over 25 steps)", (pad, H - 20), 0, 0.5, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


def _parse_loss(items: list[str]) -> LossConfig:
    cfg = LossConfig()
    for it in items:
        k, _, v = it.partition("=")
        if not hasattr(cfg, k):
            raise SystemExit(f"unknown loss weight {k!r}; known: {', '.join(cfg.to_dict())}")
        setattr(cfg, k, type(getattr(cfg, k))(float(v)))
    return cfg


@torch.no_grad()
def validate(detp: DetP, source, n_batches: int = 4, batch: int = 6) -> dict:
    """Held-out (batch indices >= 10^6) regression LapLoss, identity-map error, cycle loss and
    the share of the expression change the prediction carries."""
    detp.eval()
    reg, same, cyc, dd, dp = [], [], [], [], []
    for k in range(n_batches):
        b = source.batch(10**6 + k, batch)
        args = (b["age"], b["face_id"], b["id_flag"])
        d_hat = detp(b["d_x"], b["x"], b["y"], b["alpha_y"], *args)
        dd.append((b["d_y"] - b["d_x"]).flatten().double())
        dp.append((d_hat - b["d_x"]).flatten().double())
        reg.append(float(lap_loss(d_hat, b["d_y"])))
        back = detp(d_hat, b["y"], b["x"], b["alpha_x"], *args)
        cyc.append(float(lap_loss(back, b["d_x"])))
        ident = detp(b["d_x"], b["x"], b["x"], b["alpha_x"], *args)
        same.append(float(lap_loss(ident, b["d_x"])))
        base = float(lap_loss(b["d_x"], b["d_y"]))  # "copy the input" baseline
        reg[-1] = (reg[-1], base)
    detp.train()
    true, pred = torch.cat(dd), torch.cat(dp)
    return {"val_reg": float(np.mean([r for r, _ in reg])), "val_copy_baseline": float(np.mean([b for _, b in reg])),
            "val_cyc": float(np.mean(cyc)), "val_identity": float(np.mean(same)),
            # how much of the expression change D_y - D_x the prediction carries: Pearson
            # correlation of predicted and true change, and the least-squares gain (1 = full depth)
            "val_change_corr": float(torch.corrcoef(torch.stack([true, pred]))[0, 1]),
            "val_change_gain": float((true * pred).sum() / (true * true).sum().clamp_min(1e-30))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facedet3d.detail.train", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", help="folder of real labelled detail maps (default: procedural corpus)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--steps", type=int, default=100000, help="DetP steps (cap)")
    ap.add_argument("--detp-minutes", type=float, default=14.0)
    ap.add_argument("--sr-steps", type=int, default=100000)
    ap.add_argument("--sr-minutes", type=float, default=4.0)
    ap.add_argument("--sr-batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=float, default=0.0,
                    help="share of the DetP time budget trained with reg + cyc only (the discriminators' "
                         "regression heads learn on real maps meanwhile); then every loss of --loss")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loss", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args(argv)
    setup_torch(args.threads, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = _parse_loss(args.loss)
    source = FolderPairs(args.data, seed=args.seed) if args.data else CorpusPairs(seed=args.seed)
    detp = build(DetP)
    dexp, dface, dage = build(DExp), build(DFace), build(DAge)
    opt_g = torch.optim.Adam(detp.parameters(), lr=args.lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam([*dexp.parameters(), *dface.parameters(), *dage.parameters()], lr=args.lr * 0.5,
                             betas=(0.5, 0.99))
    log_path = out / "training_log.jsonl"
    logf = log_path.open("w")
    t_start = time.time()
    log: list[dict] = []
    budget = args.detp_minutes * 60
    warm_cfg = LossConfig(**{**cfg.to_dict(), **{k: 0.0 for k in ("exp_adv", "au", "alpha", "id", "id_adv", "age", "age_adv")}})
    step = 0
    while step < args.steps and time.time() - t_start < budget:
        frac = (time.time() - t_start) / budget
        for g in opt_g.param_groups:  # cosine decay over the time budget
            g["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        b = source.batch(step, args.batch)
        cur = warm_cfg if frac < args.warmup else cfg
        total, parts, d_hat = generator_losses(b, detp, dexp, dface, dage, cur, step)
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(detp.parameters(), 5.0)
        opt_g.step()
        d_parts = {}
        if step % max(cfg.d_every, 1) == 0:
            d_total, d_parts = discriminator_losses(b, d_hat, dexp, dface, dage, cur, step // max(cfg.d_every, 1))
            opt_d.zero_grad(set_to_none=True)
            d_total.backward()
            opt_d.step()
        rec = {"phase": "detp", "step": step, "t": round(time.time() - t_start, 2), "g_total": float(total.detach()), **parts, **d_parts}
        log.append(rec)
        logf.write(json.dumps(rec) + "\n")
        if step % 25 == 0:
            logf.flush()
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items()}), flush=True)
        step += 1
    detp_s = time.time() - t_start
    val = validate(detp, source)
    print(json.dumps(val), flush=True)
    data_src = f"folder:{args.data}" if args.data else f"procedural corpus (facedet3d.detail.corpus), seed {args.seed}"
    meta = {"trained_on": data_src, "faceid_source": "folder" if args.data else "synthetic-corpus-code",
            "steps": step, "loss_config": cfg.to_dict()}
    save_net(detp, out / "detp.safetensors", meta)

    # super-resolution, L1 on patch pairs (Eq. 19)
    sr = build(RCAN)
    opt_s = torch.optim.Adam(sr.parameters(), lr=1e-3)
    t_sr = time.time()
    sstep = 0
    while sstep < args.sr_steps and time.time() - t_sr < args.sr_minutes * 60:
        lr_, hr_ = sr_batch(sstep, args.sr_batch, seed=args.seed)
        loss = (sr(lr_) - hr_).abs().mean() / 1e-4
        with torch.no_grad():
            base = (torch.nn.functional.interpolate(lr_, scale_factor=4.0, mode="bicubic", align_corners=False)
                    - hr_).abs().mean() / 1e-4
        opt_s.zero_grad(set_to_none=True)
        loss.backward()
        opt_s.step()
        rec = {"phase": "sr", "step": sstep, "t": round(time.time() - t_start, 2), "sr_l1": float(loss),
               "sr_bicubic_l1": float(base)}
        log.append(rec)
        logf.write(json.dumps(rec) + "\n")
        if sstep % 25 == 0:
            print(json.dumps(rec), flush=True)
        sstep += 1
    sr_s = time.time() - t_sr
    save_net(sr, out / "sr.safetensors", {"trained_on": data_src, "steps": sstep})
    logf.close()
    keys = ["reg", "cyc", "exp_adv", "au", "alpha", "id", "age", "d_adv", "d_exp", "d_id", "d_age", "sr_l1"]
    plot_curves(log, out / "loss_curves.png", keys)
    _write_record(out, argv if argv is not None else sys.argv[1:], args, cfg, log, val, detp_s, sr_s, step, sstep)
    return 0


def _final(log, key, phase, n=50):
    v = [r[key] for r in log if r["phase"] == phase and key in r][-n:]
    return float(np.mean(v)) if v else float("nan")


def _write_record(out, argv, args, cfg, log, val, detp_s, sr_s, steps, sr_steps) -> None:
    g_keys = [k for k in ["reg", "cyc", "exp_adv", "au", "alpha", "id", "id_adv", "age", "age_adv"] if getattr(cfg, k)]
    d_keys = ["d_adv", "r1", "d_exp", "d_id", "d_age"]
    lines = [
        "# Shipped detail weights: training record",
        "",
        "Written by `facedet3d.detail.train` at the end of the run that produced the files below.",
        "",
        f"- Command: `python -m facedet3d.detail.train {' '.join(argv)}`",
        f"- Trained on: {('the folder ' + args.data) if args.data else 'the procedural wrinkle corpus only (facedet3d/detail/corpus.py), corpus seed ' + str(args.seed) + '. No real detail maps, no photos: FaceID inputs were synthetic identity codes, so inference uses the absent-embedding path.'}",
        f"- Machine: {torch.get_num_threads()} CPU threads, torch {torch.__version__}",
        f"- Wall time: DetP {detp_s / 60:.1f} min ({steps} steps, batch {args.batch}), SR {sr_s / 60:.1f} min ({sr_steps} steps, batch {args.sr_batch})",
        f"- Loss weights: `{json.dumps(cfg.to_dict())}`" + (f" (the first {args.warmup:.0%} of the DetP time: reg + cyc only, discriminators' regression heads only)" if args.warmup else ""),
        "",
        "## Final losses (mean of the last 50 steps; maps in units of 0.1 mm)",
        "",
        "| loss | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_final(log, k, 'detp'):.4f} |" for k in g_keys + d_keys]
    lines += [f"| sr_l1 | {_final(log, 'sr_l1', 'sr'):.4f} |", f"| sr_bicubic_l1 (reference) | {_final(log, 'sr_bicubic_l1', 'sr'):.4f} |"]
    lines += ["", "## Held-out corpus pairs (LapLoss, 0.1 mm units)", ""]
    lines += [f"- {k}: {v:.4f}" for k, v in val.items()]
    lines += ["", "Loss curves: `loss_curves.png`; per-step log: `training_log.jsonl`.", "", "## sha256", ""]
    for name in ("detp.safetensors", "sr.safetensors"):
        lines.append(f"- `{name}` ({(out / name).stat().st_size / 1e6:.2f} MB): `{sha256(out / name)}`")
    (out / "TRAINING.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
