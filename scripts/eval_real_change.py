"""Predicted vs observed detail change on real clips (issue 11), with diagnostics and panels.

    PYTHONPATH=backend python scripts/eval_real_change.py CLIP[@NEUTRAL[:EXPRESSIVE]] ... \
        --data ../shared/data/faces --out /tmp/eval [--stride 6] [--max-frames 14] \
        [--oracle happy] [--weights DIR]

CLIP is a video path (relative to --data or absolute), optionally @NEUTRAL:EXPRESSIVE:CONTROL
frame indices and =PRESET (oracle AUs for the expressive frame, neutral = {}). Without
EXPRESSIVE the frame whose AU reading is farthest from the neutral one (among every
--stride-th frame) is taken. CONTROL: a second neutral frame; the same prediction
(neutral -> expressive AUs) is compared with the neutral -> control change (a null: no
expression change, only the estimator's and the registration's noise). Writes
OUT/<clip>.png (panels: as fitted, and aligned by UV flow) and OUT/results.json; prints a
table per clip and region: r (predicted vs observed), gain, RMS ratio, and the diagnostics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np


def _parse(spec: str):
    """PATH[@N[:E[:C]]][=PRESET] -> (path, neutral, expressive, control, preset)."""
    spec, _, preset = spec.partition("=")
    path, _, fr = spec.partition("@")
    n, e, c = (fr.split(":") + ["", "", ""])[:3]
    return path, (int(n) if n else 0), (int(e) if e else None), (int(c) if c else None), (preset or None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--stride", type=int, default=6)
    ap.add_argument("--max-frames", type=int, default=14)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--oracle", default=None, help="also evaluate with this preset as the expressive AUs (neutral = {})")
    ap.add_argument("--weights", default=None, help="DetP weights folder (default: shipped)")
    ap.add_argument("--age", type=float, default=35.0)
    ap.add_argument("--labels", default="landmarks", help="AU labels source (frames.resolve_labels)")
    ap.add_argument("--table", help="only print the means table of an earlier run's results.json")
    ap.add_argument("--band", default=None, help="DoG sigmas LO,HI in texels at 256² (default 0.7,4)")
    a = ap.parse_args(argv)

    if a.table:
        res = json.loads(Path(a.table).read_text())
        print(means(res) + "\n" + relevant(res) + "\n" + relevant(res, "crossref_oracle"))
        return 0
    from facedet3d.detail import evaluate as ev
    from facedet3d.detail.frames import (
        FrameFitter,
        frame_count,
        read_video,
        resolve_labels,
    )
    from facedet3d.detail.infer import DetailPredictor
    from facedet3d.rig.facs import PRESETS

    if a.band:
        ev.BAND = tuple(float(v) for v in a.band.split(","))
    if not a.out:
        ap.error("--out is required")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    fitter = FrameFitter(a.size)
    labels = resolve_labels(a.labels)
    pred = DetailPredictor(a.weights, backend="torch", threads=1)
    results = {}
    for spec in a.clips:
        t0 = time.time()
        rel, n_i, e_i, c_i, preset = _parse(spec)
        preset = preset or a.oracle
        path = Path(rel) if Path(rel).is_absolute() else Path(a.data) / rel
        n_frames = frame_count(path)
        if e_i is None:
            stride = max(a.stride, n_frames // a.max_frames)
            want = sorted({n_i, *range(0, n_frames, stride)})
        else:
            want = [n_i, e_i] + ([c_i] if c_i is not None else [])
        frames = read_video(path, frames=want)
        fits = fitter.fit_clip(frames, n_i)
        neu = fits[n_i]
        if e_i is None:
            e_i = max((i for i in fits if i != n_i), key=lambda i: ev.expression_score(labels(neu), labels(fits[i])))
        exp = fits[e_i]
        aligned, flow = ev.align_to(neu, exp)
        shown = {"raw": exp}
        res = {"raw": ev.compare(neu, exp, pred, labels=labels, age=a.age, flow=flow),
               "aligned": ev.compare(neu, aligned, pred, labels=labels, age=a.age, flow=ev.flow_uv(neu, aligned))}
        if preset:
            lab = lambda f, _n=neu, _p=preset: {} if f is _n else dict(PRESETS[_p])
            res["oracle_aligned"] = ev.compare(neu, aligned, pred, labels=lab, age=a.age,
                                               flow=ev.flow_uv(neu, aligned))
        if c_i is not None and c_i in fits:
            ctl, _ = ev.align_to(neu, fits[c_i])
            lab = lambda f, _c=ctl, _e=exp, _n=neu: labels(_e) if f is _c else labels(_n)
            shown["control_aligned"] = ctl
            res["control_aligned"] = ev.compare(neu, ctl, pred, labels=lab, age=a.age, flow=ev.flow_uv(neu, ctl))
            # unbiased: predict from the neutral frame, observe from the control frame
            res["crossref_aligned"] = ev.compare(neu, aligned, pred, labels=labels, age=a.age, flow=ev.flow_uv(neu, aligned),
                                                 reference=ctl)
            if preset:
                lab = lambda f, _n=neu, _p=preset: {} if f is _n else dict(PRESETS[_p])
                res["crossref_oracle"] = ev.compare(neu, aligned, pred, labels=lab, age=a.age,
                                                    flow=ev.flow_uv(neu, aligned), reference=ctl)
        name = f"{path.stem}_{e_i}"
        rows = [ev.panel(r, neu, shown.get(k, aligned), f"{name} n={n_i} e={e_i} c={c_i} {k} AUs "
                         + " ".join(f"{au}:{v:.1f}" for au, v in r.aus_e.items() if v >= 0.1))
                for k, r in res.items()]
        w = max(r.shape[1] for r in rows)
        img = np.concatenate([np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0))) for r in rows], 0)
        cv2.imwrite(str(out / f"{name}.png"), img[..., ::-1])
        for k, r in res.items():
            np.savez_compressed(out / f"{name}_{k}.npz", **r.maps)
        results[name] = {"neutral": n_i, "expressive": e_i, "control": c_i, "preset": preset, "frames_fitted": len(fits),
                         "seconds": round(time.time() - t0, 1),
                         "landmark_rms_px": round(exp.landmark_rms_px, 3),
                         **{k: r.metrics for k, r in res.items()}}
        print(f"\n{name}  n={n_i} e={e_i}  ({len(fits)} frames, {time.time() - t0:.0f} s)")
        print("  AUs n:", {k: round(v, 2) for k, v in res["raw"].aus_n.items() if v > 0.05})
        print("  AUs e:", {k: round(v, 2) for k, v in res["raw"].aus_e.items() if v > 0.05})
        for k, r in res.items():
            for reg, m in r.metrics.items():
                if reg.startswith("_"):
                    continue
                print(f"  {k:15s} {reg:11s} r={m['r']:+.3f} g={m['gain']:+.3f} rms={m['rms_ratio']:.3f} "
                      f"r_net={m['r_net']:+.3f} rms_net={m['rms_ratio_net']:.3f} r(Dn,De)={m['r_dn_de']:+.3f} "
                      f"r(P,Dn)={m['r_p_dn']:+.3f} r(O,Dn)={m['r_o_dn']:+.3f} r|Dn={m['r_partial']:+.3f} "
                      f"r(Pnet,De)={m['r_pnet_de']:+.3f} flow={m['flow_px']:.2f}px n={m['n']}")
        (out / "results.json").write_text(json.dumps(results, indent=1))
    head = means(results) + "\n" + relevant(results) + "\n" + relevant(results, "crossref_oracle")
    (out / "summary.md").write_text(head + "\n" + summary(results))
    print("\n" + head + "\n" + summary(results))
    return 0


def means(results: dict) -> str:
    """One row per condition and region: mean r over the pairs, pairs with r < 0, mean
    partial r (D_n partialled out), median least-squares gain and median RMS ratio."""
    regs = ("crows_feet", "nasolabial", "forehead", "glabella")
    lines = ["| condition | region | mean r | r < 0 | mean r given Dn | median gain | median RMS ratio |",
             "|---|---|---|---|---|---|---|"]
    for c in ("raw", "aligned", "crossref_aligned", "crossref_oracle", "control_aligned"):
        for reg in regs:
            ms = [r[c][reg] for r in results.values() if c in r and reg in r[c]]
            if not ms:
                continue
            rs = np.array([m["r"] for m in ms])
            lines.append(f"| {c} | {reg} | {rs.mean():+.2f} | {int((rs < 0).sum())}/{len(rs)} | "
                         f"{np.mean([m['r_partial'] for m in ms]):+.2f} | {np.median([m['gain'] for m in ms]):+.2f} | "
                         f"{np.median([m['rms_ratio'] for m in ms]):.3f} |")
    return "\n".join(lines) + "\n"


MOVES = {"happy": ("crows_feet", "nasolabial"), "surprise": ("forehead",), "anger": ("glabella",),
         "fear": ("forehead",), "sad": ("glabella",), "disgust": ("nasolabial",)}


def relevant(results: dict, cond: str = "crossref_aligned") -> str:
    """The regions each pair's expression should move (MOVES, by its preset): mean r, pairs
    with r < 0, median RMS ratio; one row per region and one over all such cells."""
    cells: dict[str, list] = {}
    for r in results.values():
        for reg in MOVES.get(r.get("preset") or "", ()):
            if cond in r and reg in r[cond]:
                cells.setdefault(reg, []).append(r[cond][reg])
    lines = [f"| {cond}: region the expression moves | pairs | mean r | r < 0 | median gain | median RMS ratio |",
             "|---|---|---|---|---|---|"]
    allm = [m for ms in cells.values() for m in ms]
    for reg, ms in list(cells.items()) + [("all", allm)]:
        if ms:
            rs = np.array([m["r"] for m in ms])
            lines.append(f"| {reg} | {len(ms)} | {rs.mean():+.2f} | {int((rs < 0).sum())}/{len(rs)} | "
                         f"{np.median([m['gain'] for m in ms]):+.2f} | {np.median([m['rms_ratio'] for m in ms]):.3f} |")
    return "\n".join(lines) + "\n"


def summary(results: dict) -> str:
    """Markdown tables: r / gain / RMS ratio per clip and region for each condition, and the
    diagnostics (repeatability r(D_n, D_e), misregistration before/after alignment, shared-term
    correlations)."""
    regs = ("crows_feet", "nasolabial", "forehead")
    conds = [c for c in ("raw", "aligned", "crossref_aligned", "crossref_oracle", "control_aligned")
             if any(c in r for r in results.values())]
    lines = ["| clip | region | " + " | ".join(f"{c} r / g / rms" for c in conds) + " |",
             "|---|---|" + "---|" * len(conds)]
    for name, r in results.items():
        for reg in regs:
            cells = []
            for c in conds:
                m = r.get(c, {}).get(reg)
                cells.append("" if m is None else f"{m['r']:+.2f} / {m['gain']:+.2f} / {m['rms_ratio']:.3f}")
            lines.append(f"| {name} | {reg} | " + " | ".join(cells) + " |")
    lines += ["", ("| clip | region | r(Dn,De) raw -> aligned | flow px raw -> aligned | r(Dn,Dctl) | "
                   "r(P,Dn) | r(O,Dn) raw / crossref | r(P,O given Dn) raw / crossref |"), "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for reg in regs:
            a, b = r["raw"][reg], r["aligned"][reg]
            c = r.get("control_aligned", {}).get(reg, {})
            x = r.get("crossref_aligned", {}).get(reg, {})
            lines.append(f"| {name} | {reg} | {a['r_dn_de']:+.2f} -> {b['r_dn_de']:+.2f} | {a['flow_px']:.2f} -> "
                         f"{b['flow_px']:.2f} | {c.get('r_dn_de', float('nan')):+.2f} | {a['r_p_dn']:+.2f} | "
                         f"{a['r_o_dn']:+.2f} / {x.get('r_o_dn', float('nan')):+.2f} | {a['r_partial']:+.2f} / "
                         f"{x.get('r_partial', float('nan')):+.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
