"""MEAD clips: the AU9 glabella cue against the person's own neutral (docs/nose_wrinkle.md,
'Against the person's own neutral'). Run scripts/nose_wrinkle_neutral_cache.py first (it
caches the raw per-frame channel vectors in /tmp/i10/mead_raw.pkl).

    PYTHONPATH=backend python scripts/nose_wrinkle_neutral.py
"""
import pickle, json
import numpy as np
from facedet3d.expression import au, smooth, track
from facedet3d.rig import facs

raw = pickle.load(open('/tmp/i10/mead_raw.pkl', 'rb'))
NB, G = track._NB, track._GLABELLA
name = lambda p: p.split('/')[-1].split('_level')[0] + ' ' + p.split('_')[-2]

def filtered(p):
    params = [smooth.SCORE_PARAMS] * NB + [smooth.HEAD_PARAMS] * 6 + [smooth.SCORE_PARAMS]
    f = smooth.OneEuro(params)
    return [(t, f.filter(t, v)) for t, v in raw[p]]

FILT = {p: filtered(p) for p in raw}

def aus_seq(p, bs_rest=None, g_rest=None, gate=True):
    out = []
    rest = None if bs_rest is None else np.array([bs_rest.get(n, 0.0) for n in au.MP_NAMES])
    for t, v in FILT[p]:
        b = np.clip(v[:NB], 0, 1)
        if rest is not None:
            b = np.clip((b - rest) / (1 - np.minimum(rest, 0.95)), 0, 1)
        shapes = dict(zip(au.MP_NAMES, b))
        w = au.nose_wrinkle(v[G], g_rest)
        if not gate:
            a = au.aus_from_blendshapes(shapes, calibrated=rest is not None, wrinkle=None)
            a = dict(a); extra = max(w - a[9], 0); a[9] = max(a[9], w); a[4] = max(a[4] - extra, 0)
        else:
            a = au.aus_from_blendshapes(shapes, calibrated=rest is not None, wrinkle=w)
        out.append([a[k] for k in facs.AU_IDS])
    return np.array([t for t, _ in FILT[p]]), np.array(out)

def nearest(a):
    e = a.sum(1); top = a[e >= np.quantile(e, 2 / 3)].mean(0)
    sims = {n: float(top @ facs.preset_aus(n) / (np.linalg.norm(top) * np.linalg.norm(facs.preset_aus(n)) + 1e-9)) for n in facs.PRESETS}
    b = max(sims, key=sims.get)
    i9, i10, i12, i6, i4 = (facs.AU_IDS.index(k) for k in (9, 10, 12, 6, 4))
    return f"{b} ({sims[b]:.2f}; disgust {sims.get('disgust', 0):.2f}) AU9 {top[i9]:.2f} AU10 {top[i10]:.2f} AU12 {top[i12]:.2f} AU6 {top[i6]:.2f} AU4 {top[i4]:.2f}"

def span_rest(p, t0, t1):
    rows = [np.concatenate([v[:NB], v[G:]]) for t, v in raw[p] if t0 <= t <= t1 and v is not None]
    med = np.median(np.stack(rows), 0)
    return {**{n: float(x) for n, x in zip(au.MP_NAMES, med)}, "_glabella": float(med[NB])}

print("glabella ratio per clip: median, p10, p90, first 0.4 s median")
for p in raw:
    g = np.array([v[G] for _, v in raw[p]])
    print(f"  {name(p):22s} {np.median(g):.3f} {np.quantile(g, .1):.3f} {np.quantile(g, .9):.3f} {span_rest(p, 0, 0.4)['_glabella']:.3f}")
m003h = [p for p in raw if 'M003' in p and 'happy' in p][0]
rows = {}
for p in raw:
    own = span_rest(p, 0, 0.4)
    g90 = float(np.quantile([v[G] for _, v in raw[p]], 0.9))
    r = {
        "A population": nearest(aus_seq(p)[1]),
        "B --neutral 0:0.4 (full)": nearest(aus_seq(p, own, own["_glabella"])[1]),
        "C glabella rest = own 0-0.4 s": nearest(aus_seq(p, None, own["_glabella"])[1]),
        "D glabella rest = own p90": nearest(aus_seq(p, None, g90)[1]),
        "A' population, no AU10 gate": nearest(aus_seq(p, gate=False)[1]),
        "C' own 0-0.4 s, no gate": nearest(aus_seq(p, None, own["_glabella"], gate=False)[1]),
    }
    if 'M003' in p:
        hr = span_rest(m003h, 0, 99)
        r["E glabella rest = M003 happy clip median"] = nearest(aus_seq(p, None, hr["_glabella"])[1])
        r["E' full neutral = M003 happy clip median"] = nearest(aus_seq(p, hr, hr["_glabella"])[1])
    rows[name(p)] = r
for k, r in rows.items():
    print(k)
    for v, s in r.items():
        print(f"   {v:42s} {s}")

print("\nAU10 gate scale k: AU9 = max(AU9, min(cue, k * AU10))")
def aus_k(p, k):
    out = []
    for t, v in FILT[p]:
        b = np.clip(v[:NB], 0, 1)
        a = dict(au.aus_from_blendshapes(dict(zip(au.MP_NAMES, b)), wrinkle=None))
        nose = min(au.nose_wrinkle(v[G]), k * a[10])
        if nose > a[9]:
            a[4] = max(a[4] - (nose - a[9]), 0); a[9] = nose
        out.append([a[x] for x in facs.AU_IDS])
    return np.array(out)
for k in (1.0, 1.25, 1.5, 2.0):
    print("k", k)
    for p in raw:
        print(f"   {name(p):22s} {nearest(aus_k(p, k))}")
