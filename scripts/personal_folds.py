"""Personal folds: does a person's own video predict where their wrinkles form? (issue 11)

    PYTHONPATH=backend python scripts/personal_folds.py CORPUS [--out DIR] [--ridge 0.05]

CORPUS is a ``facedet3d corpus`` folder (frames registered per clip by UV flow; built with
``--coarse-sigma 0.03`` to judge what ``facedet3d folds`` learns: ``personal.COARSE_SIGMA``). Per clip
the frames are split in time: the first half enrols a per-texel linear model of the
band-passed D(I) on the frame's AUs (``detail.personal.fit_folds``), the second half (after a
gap) tests it. A test pair is two test frames whose AUs differ by >= 0.6 (L1); the observed
change is D_b - D_c with c a look at a's expression other than a (``twin``), so neither the
personal prediction nor DetP's shares the estimator noise of its input D_a. Predicted:

- personal: (AU_b - AU_a) . B (the enrolled fold maps; no D_a term at all);
- shuffled: the same model enrolled with the enrol frames' AUs permuted (a null: what the
  fit scores from its freedom alone; mean of N_SHUFFLES permutations);
- other person: each other clip's enrolled folds on this clip's pairs, r averaged (a null
  for person-specificity: generic fold positions of the BFM chart);
- population: per AU, the mean of every other clip's fold map (where that AU varied there):
  a fixed-position prior learnt from real faces, what a photo without a video could get;
  ``--pop-sizes 2,4,8`` also scores means over random subsets of that many other clips
  (POP_DRAWS each), to see how the prior improves with the number of people;
- DetP: the shipped network's change DetP(D_a, AU_b) - DetP(D_a, AU_a) (procedural weights);
- product: what ``DetailPredictor.for_asset`` predicts for an enrolled asset: DetP's change
  plus the personal folds' change;
- replace: DetP's change only for the AUs the enrolment did not show, plus the folds' (the
  alternative not taken: see ``infer.DetailPredictor.for_asset``).

Prints per clip and region r / least-squares gain / RMS ratio, a means table over the
regions each pair's AU change should move (``MOVES``), the prediction's RMS against the
observed change's signal (the estimator's noise measured on the same-expression pair c, a,
and taken out), and writes DIR/results.json and
DIR/<clip>.png panels (enrolled AU12 / AU1+2 / AU4 fold maps, observed and predicted change).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

# AUs whose rise moves a region (the folds they make): crow's feet and nasolabial with the
# smile (AU6, AU12), nasolabial with AU9/AU10, forehead with AU1/AU2, glabella with AU4.
MOVES = {"crows_feet": (6, 12), "nasolabial": (6, 9, 10, 12), "forehead": (1, 2), "glabella": (4,)}
MIN_MOVE = 0.3  # summed |AU change| of a region's AUs for that region to count as moved


def _stats(p, o, sel, noise=None):
    """r, least-squares gain and RMS ratio of prediction p against observed o on ``sel``; with
    ``noise`` (a same-expression difference of two frames: the estimator's noise in o) also
    the RMS of p against the observed change's signal, sqrt(rms(o)² - rms(noise)²)."""
    p, o = p[sel].astype(np.float64), o[sel].astype(np.float64)
    if p.size < 30 or p.std() == 0 or o.std() == 0:
        return None
    st = {"r": float(np.corrcoef(p, o)[0, 1]), "gain": float(p @ o / max(p @ p, 1e-30)),
          "rms_ratio": float(np.sqrt((p * p).mean() / max((o * o).mean(), 1e-30)))}
    if noise is not None:
        n = noise[sel].astype(np.float64)
        st["p2"], st["o2"], st["n2"] = float((p * p).mean()), float((o * o).mean()), float((n * n).mean())
    return st


N_SHUFFLES = 5  # null models per clip (the enrolment AUs permuted), averaged
# clips of one person (or possibly one: LivePortrait d9, d12, d13 look alike) never stand in
# for "other people" of each other; every other clip is its own person (looked at: frame 10
# of every clip side by side)
SAME_PERSON = {"MEAD_M003_level_1_disgusted_015": "M003", "MEAD_M003_level_1_happy_024": "M003",
               "driving_d9": "d9/d12/d13", "driving_d12": "d9/d12/d13", "driving_d13": "d9/d12/d13"}
POP_DRAWS = 3  # random subsets of other clips per population size (``--pop-sizes``)


def _population(folds: list) -> np.ndarray:
    """(17, S, S): per AU, the mean of the maps of the clips where that AU varied."""
    pop = np.zeros_like(folds[0].basis)
    for k in range(pop.shape[0]):
        mk = [f.basis[k] for f in folds if k in f.active]
        if mk:
            pop[k] = np.mean(mk, 0)
    return pop


def _partial(p, o, c, sel) -> float:
    """r(P, O | C): correlation after regressing the static map C out of each."""
    p, o, c = (a[sel].astype(np.float64) for a in (p, o, c))
    if c.std() == 0:
        return float("nan")
    rp, ro = p - c * (p @ c) / (c @ c), o - c * (o @ c) / (c @ c)
    return float(np.corrcoef(rp, ro)[0, 1]) if rp.std() > 0 and ro.std() > 0 else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--out", default=None)
    ap.add_argument("--ridge", type=float, default=None, help="ridge weight (default detail.personal.RIDGE)")
    ap.add_argument("--enrol-select", type=float, default=None,
                    help="enrol only on the frames the greedy AU-change selection keeps (L1 >= this, "
                         "at most 60: what ``facedet3d corpus --min-change`` keeps); default all enrol-half frames")
    ap.add_argument("--gap", type=int, default=12, help="video frames left out around the split")
    ap.add_argument("--no-detp", action="store_true")
    ap.add_argument("--pop-sizes", default="", help="also score population priors from this many other clips, e.g. 2,4,8")
    ap.add_argument("--band", default=None, help="DoG sigmas LO,HI in texels at 256² (default personal.BAND)")
    a = ap.parse_args(argv)

    from facedet3d.detail import evaluate as ev
    from facedet3d.detail import personal
    from facedet3d.rig.facs import AU_IDS

    # the product's band (``personal.BAND``) unless asked otherwise
    ev.BAND = tuple(float(v) for v in a.band.split(",")) if a.band else personal.BAND
    root = Path(a.corpus)
    index = json.loads((root / "index.json").read_text())
    unit = float(index.get("unit_m", 1e-4))
    regs = ev.regions(256)
    from facedet3d.fit.skin_regions import skin_weight

    skin = skin_weight(256)
    pred = None
    if not a.no_detp:
        from facedet3d.detail.infer import DetailPredictor

        pred = DetailPredictor(None, backend="torch", threads=1)
    out = Path(a.out) if a.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results = {}
    sizes = [int(v) for v in a.pop_sizes.split(",") if v]
    rng = np.random.default_rng(0)
    kw = {} if a.ridge is None else {"ridge": a.ridge}
    cache = {}
    for clip in sorted(index["clips"]):
        with np.load(root / "clips" / f"{clip}.npz") as z:
            det = z["detail"].astype(np.float32) * unit  # metres
            msk = z["mask"] > 127
            aus = z["aus"].astype(np.float32)
            frames = z["frames"]
        order = np.argsort(frames)
        det, msk, aus, frames = det[order], msk[order], aus[order], frames[order]
        split = np.median(frames)
        enrol = np.where(frames < split - a.gap / 2)[0]
        test = np.where(frames > split + a.gap / 2)[0]
        if a.enrol_select is not None:  # the sparse selection, within the same registered frames
            from facedet3d.detail.real_corpus import _select

            keep = set(_select([(int(k), aus[k]) for k in enrol], a.enrol_select, 60))
            enrol = np.array([k for k in enrol if int(k) in keep], int)
        if len(enrol) < 6 or len(test) < 3:
            print(f"{clip}: too few frames ({len(enrol)} enrol, {len(test)} test), skipped")
            continue
        bp = np.stack([ev.bandpass(d, m.astype(np.float32)) for d, m in zip(det, msk)])
        folds = personal.fit_folds(bp[enrol], msk[enrol], aus[enrol], **kw)
        folds.basis *= skin[None]
        cache[clip] = (det, msk, aus, frames, bp, enrol, test, folds)
    for clip, (det, msk, aus, frames, bp, enrol, test, folds) in cache.items():
        # another person's folds on this person's pairs (both in the BFM chart): what generic,
        # not personal, fold positions score
        others = [v[-1] for o, v in cache.items()
                  if SAME_PERSON.get(o, o) != SAME_PERSON.get(clip, clip)]
        # the population's folds (a fixed-position prior learnt from real faces), from all the
        # other clips and from random subsets of them; its own rng keeps the main draws unchanged
        pop = _population(others)
        prng = np.random.default_rng(len(clip))
        pops = {n: [_population([others[q] for q in prng.choice(len(others), n, replace=False)])
                    for _ in range(POP_DRAWS)] for n in sizes if n < len(others)}
        shufs = [personal.fit_folds(bp[enrol], msk[enrol], aus[enrol][rng.permutation(len(enrol))], **kw)
                 for _ in range(N_SHUFFLES)]
        for f in shufs:  # as ``personal.enrol``: no folds on eyes, brows, lips, nostrils
            f.basis *= skin[None]
        # the person's static detail (enrolment mean): a change that only rescales it (sharpness,
        # blur) is not a fold; ``partial`` reports r with it regressed out of both maps
        static = np.where(msk[enrol].sum(0) > 0, (bp[enrol] * msk[enrol]).sum(0) / np.maximum(msk[enrol].sum(0), 1), 0)
        pairs = []
        for i in test:
            for j in test:
                if i == j or np.abs(aus[i] - aus[j]).sum() < 0.6:
                    continue
                tw = [k for k in test if k not in (i, j) and np.abs(aus[k] - aus[i]).sum() < 0.5
                      and abs(int(frames[k]) - int(frames[i])) >= 6]
                if tw:
                    pairs.append((i, j, min(tw, key=lambda k: np.abs(aus[k] - aus[i]).sum())))
        rng.shuffle(pairs)
        pairs = pairs[:12]  # a bounded, spread sample of the clip's pairs
        res = []
        for i, j, c in pairs:
            seen = msk[i] & msk[j] & msk[c] & folds.seen
            obs = bp[j] - bp[c]
            cand = {"personal": folds.change(aus[i], aus[j]),
                    "population": np.tensordot(aus[j] - aus[i], pop, axes=1).astype(np.float32)}
            shuffled = [f.change(aus[i], aus[j]) for f in shufs]
            other = [f.change(aus[i], aus[j]) for f in others]
            subsets = {n: [np.tensordot(aus[j] - aus[i], q, axes=1) for q in qs] for n, qs in pops.items()}
            if pred is not None:
                da = cv2.resize(det[i], (256, 256))
                pa = pred(da, aus[i], aus[i])
                pb = pred(da, aus[i], aus[j])
                w = msk[i].astype(np.float32)
                cand["detp"] = ev.bandpass(pb, w) - ev.bandpass(pa, w)
                # the product (``DetailPredictor.for_asset``): DetP's change plus the folds'
                cand["product"] = cand["detp"] + cand["personal"]
                # the alternative not taken: DetP only for the AUs the video did not show
                y_rest = aus[j].copy()
                y_rest[list(folds.active)] = aus[i][list(folds.active)]
                cand["replace"] = ev.bandpass(pred(da, aus[i], y_rest), w) - ev.bandpass(pa, w) + cand["personal"]
            d_au = {int(k): float(aus[j][n] - aus[i][n]) for n, k in enumerate(AU_IDS)}
            cell = {"a": int(frames[i]), "b": int(frames[j]), "c": int(frames[c]), "d_au": d_au, "regions": {}}
            for reg, ids in MOVES.items():
                moved = sum(abs(d_au[k]) for k in ids) >= MIN_MOVE
                sel = regs[reg] & seen
                st = {m: _stats(p, obs, sel, noise=bp[c] - bp[i]) for m, p in cand.items()}
                sh = [_stats(p, obs, sel) for p in shuffled]
                sh = [x for x in sh if x]
                st["shuffled"] = ({k: float(np.mean([x[k] for x in sh])) for k in sh[0]} if sh else None)
                ot = [x for x in (_stats(p, obs, sel) for p in other) if x]
                st["other person"] = ({k: float(np.mean([x[k] for x in ot])) for k in ot[0]} if ot else None)
                for n, ps in subsets.items():
                    xs = [x for x in (_stats(p, obs, sel) for p in ps) if x]
                    st[f"population n={n}"] = ({k: float(np.mean([x[k] for x in xs])) for k in xs[0]} if xs else None)
                for m, p in cand.items():
                    if st[m]:
                        st[m]["r_partial"] = _partial(p, obs, static, sel)
                cell["regions"][reg] = {"moved": moved, **st}
            res.append(cell)
        results[clip] = {"enrol": len(enrol), "test": len(test), "pairs": res,
                         "active_aus": [int(AU_IDS[k]) for k in folds.active]}
        print(f"{clip}: enrol {len(enrol)} test {len(test)} pairs {len(res)} active AUs {results[clip]['active_aus']}")
        if out and res:
            _panel(out / f"{clip}.png", folds, bp, pairs[0])
    if out:
        (out / "results.json").write_text(json.dumps(results, indent=1))
        if cache:
            _population_panel(out / "population.png", [v[-1] for v in cache.values()])
    print(table(results))
    if sizes:
        print(pop_table(results, sizes))
    return 0


def pop_table(results: dict, sizes) -> str:
    """Mean r over the moved cells of the population prior against the number of other clips
    averaged (1 = "other person", all = "population")."""
    cols = ["other person"] + [f"population n={n}" for n in sizes] + ["population"]
    lines = ["| region | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for reg in list(MOVES) + ["all"]:
        cells = [c["regions"][g] for r in results.values() for c in r["pairs"] for g in c["regions"]
                 if (reg == "all" or g == reg) and c["regions"][g]["moved"]]
        row = []
        for m in cols:
            rs = [c[m]["r"] for c in cells if c.get(m)]
            row.append(f"{np.mean(rs):+.3f} ({len(rs)})" if rs else "")
        lines.append(f"| {reg} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def table(results: dict) -> str:
    """Means over (pair, moved region) cells: r, share of r < 0, median gain and RMS ratio."""
    methods = ("personal", "population", "shuffled", "other person", "detp", "product", "replace")
    lines = ["| region | cells | " + " | ".join(f"{m}: r (neg) [partial] / gain / rms" for m in methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for reg in list(MOVES) + ["all"]:
        cells = [c["regions"][g] for r in results.values() for c in r["pairs"] for g in c["regions"]
                 if (reg == "all" or g == reg) and c["regions"][g]["moved"]]
        row = []
        for m in methods:
            ms = [c[m] for c in cells if c.get(m)]
            if not ms:
                row.append("")
                continue
            rs = np.array([x["r"] for x in ms])
            part = [x["r_partial"] for x in ms if "r_partial" in x]
            row.append(f"{rs.mean():+.2f} ({int((rs < 0).sum())}/{len(rs)})"
                       + (f" [{np.nanmean(part):+.2f}]" if part else "")
                       + f" / {np.median([x['gain'] for x in ms]):+.2f} / {np.median([x['rms_ratio'] for x in ms]):.2f}")
        lines.append(f"| {reg} | {len(cells)} | " + " | ".join(row) + " |")
    # depth against the real change's signal: o = signal + the estimator's noise, whose power
    # a same-expression pair (c, a) measures; pooled over cells (a lower bound on the signal:
    # c and a differ a little in expression too)
    sig = ["", "| region | cells | noise share of the observed change's RMS | " + " | ".join(
        f"{m}: RMS / signal RMS" for m in ("personal", "detp", "product")) + " |", "|---|---|---|---|---|---|"]
    for reg in list(MOVES) + ["all"]:
        cells = [c["regions"][g] for r in results.values() for c in r["pairs"] for g in c["regions"]
                 if (reg == "all" or g == reg) and c["regions"][g]["moved"]]
        ms = [c["personal"] for c in cells if c.get("personal") and "n2" in c["personal"]]
        if not ms:
            continue
        o2, n2 = sum(x["o2"] for x in ms), sum(x["n2"] for x in ms)
        row = [f"{np.sqrt(min(n2 / o2, 1.0)):.2f}"]
        for m in ("personal", "detp", "product"):
            xs = [c[m] for c in cells if c.get(m) and "n2" in c[m]]
            s2 = sum(x["o2"] - x["n2"] for x in xs)
            row.append(f"{np.sqrt(sum(x['p2'] for x in xs) / s2):.2f}" if xs and s2 > 0 else "")
        sig.append(f"| {reg} | {len(ms)} | " + " | ".join(row) + " |")
    per_clip = sig + ["", "| clip | cells | " + " | ".join(f"{m} r" for m in methods) + " |", "|---|---|" + "---|" * len(methods)]
    for clip, r in results.items():
        cells = [c["regions"][g] for c in r["pairs"] for g in c["regions"] if c["regions"][g]["moved"]]
        vals = []
        for m in methods:
            rs = [c[m]["r"] for c in cells if c.get(m)]
            vals.append(f"{np.mean(rs):+.2f}" if rs else "")
        per_clip.append(f"| {clip} | {len(cells)} | " + " | ".join(vals) + " |")
    return "\n".join(lines + per_clip)


def _panel(path: Path, folds, bp, pair) -> None:
    """Enrolled fold maps of AU12, AU1+2, AU4 and a test pair's observed change (mid grey = 0,
    darker = into the skin, each scaled to its own 99th percentile)."""
    from facedet3d.rig.facs import AU_IDS

    def sig(m):
        s = np.percentile(np.abs(m), 99) + 1e-12
        return np.clip(128 + 127 * m / s, 0, 255).astype(np.uint8)

    tiles = []
    for ids in ((12,), (1, 2), (4,)):
        x = np.zeros(len(AU_IDS), np.float32)
        for k in ids:
            x[AU_IDS.index(k)] = 1.0
        tiles.append(sig(folds.change(np.zeros_like(x), x)))
    i, j, c = pair
    tiles.append(sig(bp[j] - bp[c]))
    tiles = [cv2.cvtColor(t, cv2.COLOR_GRAY2BGR) for t in tiles]
    for t, label in zip(tiles, ("AU12 map", "AU1+2 map", "AU4 map", "a test pair's change")):
        cv2.putText(t, label, (4, 250), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 200, 255), 1, cv2.LINE_AA)
    cv2.putText(tiles[0], path.stem[:34], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 200, 255), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), np.concatenate(tiles, 1))


def _population_panel(path: Path, folds: list) -> None:
    """The population prior's AU6, AU12, AU1+2 and AU4 maps from every clip's enrolment half
    (mid grey = 0, darker = into the skin, each scaled to its own 99th percentile; the label
    says from how many clips)."""
    from facedet3d.rig.facs import AU_IDS

    pop = _population(folds)
    tiles = []
    for ids in ((6,), (12,), (1, 2), (4,)):
        m = sum(pop[AU_IDS.index(k)] for k in ids)
        s = np.percentile(np.abs(m), 99) + 1e-12
        t = cv2.cvtColor(np.clip(128 + 127 * m / s, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        n = max(sum(AU_IDS.index(k) in f.active for f in folds) for k in ids)
        label = "AU" + "+".join(map(str, ids)) + f": {n} clips, {s * 1e6:.0f} um"
        cv2.putText(t, label, (4, 250), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 200, 255), 1, cv2.LINE_AA)
        tiles.append(t)
    cv2.imwrite(str(path), np.concatenate(tiles, 1))


if __name__ == "__main__":
    sys.exit(main())
