"""Does DetP predict the detail change that real faces show? (issue 11's measurement)

For a clip: a neutral frame n and an expressive frame e of one person, fitted with the
identity held fixed (``frames.FrameFitter.fit_clip``), unwrapped, D(I) estimated for both.
- observed change  O = bp(D(I_e)) - bp(D(I_n))
- predicted change P = bp(DetP(D(I_n), x=AUs_n, y=AUs_e)) - bp(D(I_n))
  (and P_net = bp(DetP(.., y=AUs_e)) - bp(DetP(.., y=AUs_n)): the network's response to the
  expression alone, without its identity-reconstruction error)
at 256² (DetP's grid; the 512² maps are area-averaged), ``bp`` = a difference of Gaussians
(sigma 0.7 -> 4 texels at 256², i.e. ~1 - 4 mm on a face: the wrinkle scale) computed by
normalised convolution over the texels seen in BOTH frames, so the border adds no edges.

Per region (crow's feet, nasolabial, forehead, glabella; from the 68 landmarks' UV
positions), over the texels seen in both frames: Pearson r(P, O), the least-squares gain g
(O ~ g P) and the RMS ratio rms(P) / rms(O). Also diagnostics for WHY they disagree:
r(D_n, D_e) (how well the same skin lands on the same texels), r(P, D_n), r(O, D_n), the
partial correlation r(P, O | D_n), and the UV misregistration between the two unwraps
(dense optical flow on their luminance, texels at 256²), before and after aligning the
expressive unwrap to the neutral one by that flow (``align_to``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from facedet3d.api.expressions import DEFAULT_AGE_YEARS
from facedet3d.detail.frames import AULabels, FrameFit, landmark_aus

EVAL_SIZE = 256
BAND = (0.7, 4.0)  # DoG sigmas, texels at 256²


@functools.lru_cache(maxsize=4)
def regions(size: int = EVAL_SIZE) -> dict[str, np.ndarray]:
    """(size, size) bool masks of the fold regions, both sides, from the 68 landmarks in UV.

    crows_feet: lateral of the outer eye corner (0.012 - 0.085 UV outward, +-0.05 up/down);
    nasolabial: within 0.02 UV of the fold line (0.027 lateral of the nose wing -> 0.03
    lateral / 0.037 below the mouth corner); forehead: 0.03 - 0.2 UV above the brows,
    |u - 0.5| < 0.2; glabella: between the brows, |u - 0.5| < 0.045."""
    from facedet3d.detail.corpus import landmarks_uv, uv_grid

    lm = landmarks_uv()
    u, v = uv_grid(size)
    ad = np.abs(u - 0.5)
    eo = lm[45]  # left outer canthus (mirrored: |u - 0.5|)
    brow_v = lm[[19, 24], 1].mean()
    cf = (ad >= eo[0] - 0.5 + 0.012) & (ad <= eo[0] - 0.5 + 0.085) & (np.abs(v - eo[1]) <= 0.05)
    p0 = np.array([lm[35, 0] - 0.5 + 0.027, lm[35, 1] + 0.01])
    p1 = np.array([lm[54, 0] - 0.5 + 0.03, lm[54, 1] - 0.037])
    d = p1 - p0
    t = np.clip(((ad - p0[0]) * d[0] + (v - p0[1]) * d[1]) / (d @ d), 0, 1)
    nl = np.hypot(ad - (p0[0] + t * d[0]), v - (p0[1] + t * d[1])) <= 0.02
    fh = (v >= brow_v + 0.03) & (v <= brow_v + 0.2) & (ad < 0.2)
    gl = (ad < 0.045) & (v >= lm[27, 1]) & (v <= brow_v + 0.03)
    return {"crows_feet": cf, "nasolabial": nl, "forehead": fh, "glabella": gl}


def _down(x: np.ndarray, size: int = EVAL_SIZE) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x if x.shape[0] == size else cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA)


def bandpass(d: np.ndarray, w: np.ndarray, band=None) -> np.ndarray:
    """Difference of Gaussians of ``d`` by normalised convolution with weights ``w``
    (``band``: (sigma_lo, sigma_hi) texels at 256², default the module's ``BAND``)."""
    band = BAND if band is None else band
    def nb(s):
        a = cv2.GaussianBlur(d * w, (0, 0), s)
        b = cv2.GaussianBlur(w, (0, 0), s)
        return a / np.maximum(b, 1e-6)
    return ((nb(band[0]) - nb(band[1])) * (w > 0)).astype(np.float32)


def flow_uv(ref: FrameFit | np.ndarray, mov: FrameFit | np.ndarray) -> np.ndarray:
    """Dense flow (S, S, 2) texels so that mov(x + f(x)) ~ ref(x): DIS optical flow on the
    unwraps' luminance (contrast-equalised, so the expression's shading change matters less)."""
    def grey(t):
        t = getattr(t, "texture", t)  # a FrameFit, or anything with an unwrap
        g = cv2.cvtColor(np.ascontiguousarray(t), cv2.COLOR_RGB2GRAY)
        return cv2.createCLAHE(2.0, (8, 8)).apply(g)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(grey(ref), grey(mov), None)


def warp(img: np.ndarray, flow: np.ndarray, interp=cv2.INTER_LINEAR) -> np.ndarray:
    """mov resampled onto ref's texels: out(x) = img(x + flow(x))."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], interp, borderMode=cv2.BORDER_REPLICATE)


def align_to(ref: FrameFit, mov: FrameFit) -> tuple[FrameFit, np.ndarray]:
    """Copy of ``mov`` with texture, mask and D(I) resampled onto ``ref``'s texels by the UV
    flow (registration under expression). Returns (aligned fit, flow in texels of mov's map)."""
    import dataclasses

    f = flow_uv(ref, mov)
    return dataclasses.replace(mov, texture=warp(mov.texture, f), mask=warp(mov.mask, f, cv2.INTER_NEAREST),
                               detail=warp(mov.detail, f)), f


def _stats(p: np.ndarray, o: np.ndarray, sel: np.ndarray) -> dict:
    p, o = p[sel].astype(np.float64), o[sel].astype(np.float64)
    if p.size < 30 or p.std() == 0 or o.std() == 0:
        return {"r": float("nan"), "gain": float("nan"), "rms_ratio": float("nan"), "n": int(p.size)}
    return {"r": float(np.corrcoef(p, o)[0, 1]), "gain": float(p @ o / max(p @ p, 1e-30)),
            "rms_ratio": float(np.sqrt((p * p).mean() / max((o * o).mean(), 1e-30))), "n": int(p.size)}


def _partial(p, o, c, sel) -> float:
    """r(P, O | C): correlation of P and O after regressing C out of each."""
    p, o, c = (a[sel].astype(np.float64) for a in (p, o, c))
    if p.size < 30 or c.std() == 0:
        return float("nan")
    rp = p - c * (p @ c) / (c @ c)
    ro = o - c * (o @ c) / (c @ c)
    return float(np.corrcoef(rp, ro)[0, 1]) if rp.std() > 0 and ro.std() > 0 else float("nan")


@dataclass
class PairResult:
    aus_n: dict
    aus_e: dict
    metrics: dict  # region -> {r, gain, rms_ratio, n, r_net, r_dn_de, r_p_dn, r_o_dn, r_partial, flow_px}
    maps: dict = field(default_factory=dict)  # 256² float32: d_n, d_e, obs, pred, pred_net, seen


def compare(neutral: FrameFit, expressive: FrameFit, predictor, labels: AULabels = landmark_aus,
            age: float = DEFAULT_AGE_YEARS, flow: np.ndarray | None = None, reference: FrameFit | None = None) -> PairResult:
    """Predicted vs observed change between two fitted frames of one clip (module docstring).
    ``flow``: the UV flow between them (texels of their map) when already known, for the
    misregistration figure; measured here otherwise.
    ``reference``: a second neutral frame (aligned to ``neutral``); the observed change is then
    bp(D_e) - bp(D_ref), so the prediction (made from D_n) and the observation share no
    estimator noise: P = k D_n + ... and O = D_e - D_n are anti-correlated through -D_n
    whenever D(I) is not perfectly repeatable, whatever the expression does."""
    from facedet3d.rig.facs import normalise_aus

    aus_n, aus_e = labels(neutral), labels(expressive)
    seen_hi = (neutral.mask > 127) & (expressive.mask > 127)
    if reference is not None:
        seen_hi &= reference.mask > 127
    seen = _down(seen_hi.astype(np.float32)) > 0.99
    w = seen.astype(np.float32)
    d_n, d_e = _down(neutral.detail), _down(expressive.detail)
    pr_y = predictor(neutral.detail, aus_n, aus_e, age=age, size=EVAL_SIZE)
    pr_x = predictor(neutral.detail, aus_n, aus_n, age=age, size=EVAL_SIZE)
    bn, be, by, bx = (bandpass(m, w) for m in (d_n, d_e, pr_y, pr_x))
    bref = bn if reference is None else bandpass(_down(reference.detail), w)
    obs, pred, pred_net = be - bref, by - bn, by - bx
    if flow is None:
        flow = flow_uv(neutral, expressive)
    fmag = _down(np.hypot(flow[..., 0], flow[..., 1])) * (EVAL_SIZE / neutral.detail.shape[0])
    metrics = {}
    x, y = normalise_aus(aus_n), normalise_aus(aus_e)
    for name, reg in {**regions(), "face": np.ones_like(seen)}.items():
        sel = reg & seen
        m = _stats(pred, obs, sel)
        m["r_net"] = _stats(pred_net, obs, sel)["r"]
        m["rms_ratio_net"] = _stats(pred_net, obs, sel)["rms_ratio"]
        m["r_dn_de"] = _stats(bn, be, sel)["r"]
        m["r_p_dn"] = _stats(pred, bn, sel)["r"]
        m["r_o_dn"] = _stats(obs, bn, sel)["r"]
        m["r_partial"] = _partial(pred, obs, bn, sel)
        m["r_pnet_de"] = _stats(pred_net, be, sel)["r"]
        m["mean_obs_um"] = float(obs[sel].mean() * 1e6) if sel.any() else float("nan")
        m["mean_pred_um"] = float(pred_net[sel].mean() * 1e6) if sel.any() else float("nan")
        m["flow_px"] = float(np.median(fmag[sel])) if sel.any() else float("nan")
        metrics[name] = m
    metrics["_aus"] = {"x": x.round(3).tolist(), "y": y.round(3).tolist()}
    maps = {"d_n": bn, "d_e": be, "obs": obs, "pred": pred, "pred_net": pred_net, "seen": w}
    return PairResult(aus_n, aus_e, metrics, maps)


def _signed(m: np.ndarray, scale: float) -> np.ndarray:
    g = np.clip(0.5 + 0.5 * m / max(scale, 1e-12), 0, 1)
    return cv2.cvtColor((g * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)


def panel(res: PairResult, neutral: FrameFit, expressive: FrameFit, title: str = "") -> np.ndarray:
    """RGB panel (uint8): neutral / expressive unwrap, D_n, D_e, observed change, predicted
    change, network-only change; region outlines in colour. Signed maps: mid grey = 0,
    each scaled by its own robust max (shown in the label), darker = into the skin."""
    S = EVAL_SIZE
    crop = (slice(0, int(0.8 * S)), slice(int(0.12 * S), int(0.88 * S)))
    tiles = [cv2.resize(neutral.texture, (S, S), interpolation=cv2.INTER_AREA),
             cv2.resize(expressive.texture, (S, S), interpolation=cv2.INTER_AREA)]
    names = ["neutral", "expressive"]
    for key in ("d_n", "d_e", "obs", "pred", "pred_net"):
        m = res.maps[key]
        sc = float(np.percentile(np.abs(m[res.maps["seen"] > 0]), 99)) if (res.maps["seen"] > 0).any() else 1.0
        tiles.append(_signed(m, sc))
        names.append(f"{key} {sc * 1e6:.0f}um")
    cols = {"crows_feet": (255, 60, 60), "nasolabial": (60, 200, 255), "forehead": (255, 210, 0), "glabella": (180, 80, 255)}
    out = []
    for t, n in zip(tiles, names):
        t = np.ascontiguousarray(t.copy())
        for k, c in cols.items():
            cs, _ = cv2.findContours(regions()[k].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(t, cs, -1, c, 1)
        t = cv2.resize(np.ascontiguousarray(t[crop]), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        cv2.putText(t, n, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        out.append(t)
    img = np.concatenate(out, 1)
    bar = np.zeros((20, img.shape[1], 3), np.uint8)
    cv2.putText(bar, title, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, img], 0)


def expression_score(a: dict, b: dict) -> float:
    """L1 distance of two AU readings (0..17): how far apart two expressions are."""
    from facedet3d.rig.facs import normalise_aus

    return float(np.abs(normalise_aus(a) - normalise_aus(b)).sum())


def estimator_response(fit: FrameFit, height: np.ndarray, light=(0.0, 0.0, 1.0), ambient: float = 0.3,
                       texel_m: float | None = None, cavity: float = 0.0) -> dict:
    """Sign and shape test of the D(I) estimator on a known relief.

    Re-lights the fitted frame's unwrap in UV: albedo = the unwrap blurred (sigma 4 texels),
    normals = the fitted mesh's normals tilted by ``height`` ((S, S) metres, e.g. a corpus map;
    negative = into the skin), Lambertian ``ambient + (1 - ambient) * max(n . l, 0)`` with the
    unit ``light`` (camera frame, +Y up, +Z toward the camera), times an occlusion term
    ``exp(-cavity * depth below the local mean (sigma 3 texels) / 0.1 mm)`` (real creases are
    dark mostly because they are occluded; Lambertian shading alone darkens their walls). Then D(I) is estimated from
    that texture and compared, band-passed at 256², with the true relief and with its slope
    along the light (what shading measures under oblique light): {"r_height", "r_slope",
    "gain"} over the observed texels. r_height > 0 means the estimator's sign is right."""
    from facedet3d.assets import bfm as bfm_mod
    from facedet3d.fit import detail_input
    from facedet3d.fit.texture import uv_layout

    S = fit.texture.shape[0]
    layout = uv_layout(S)
    if texel_m is None:  # face width in metres over the chart's width in texels
        b = bfm_mod.load_bfm()
        texel_m = float(np.ptp(b.mean.reshape(-1, 3)[:, 0]) * bfm_mod.METRES_PER_UNIT) / layout.chart_width
    n0 = layout.to_image(layout.sample(fit.normals_cam), fill=0.0)
    h = np.asarray(height, np.float32)
    gx = cv2.Sobel(h, cv2.CV_32F, 1, 0, ksize=3) / (8.0 * texel_m)  # dh/dx, x = u right
    gy = -cv2.Sobel(h, cv2.CV_32F, 0, 1, ksize=3) / (8.0 * texel_m)  # dh/dy, y = v up (rows down)
    n = n0 + np.stack([-gx, -gy, np.zeros_like(gx)], -1)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
    lvec = np.asarray(light, np.float32) / np.linalg.norm(light)
    shade = ambient + (1 - ambient) * np.clip(n @ lvec, 0, 1)
    if cavity > 0:
        shade = shade * np.exp(-cavity * np.maximum(cv2.GaussianBlur(h, (0, 0), 3.0) - h, 0) / 1e-4)
    lin = (cv2.GaussianBlur(fit.texture.astype(np.float32), (0, 0), 4.0) / 255.0) ** 2.2
    tex = np.clip(255.0 * (lin * shade[..., None]) ** (1 / 2.2) + 0.5, 0, 255).astype(np.uint8)
    est = detail_input.estimate_detail(tex, fit.mask, layout, fit.normals_cam)
    w = (_down((fit.mask > 127).astype(np.float32)) > 0.99).astype(np.float32) * (_down(np.abs(est)) > 0)
    be, bh = bandpass(_down(est), w), bandpass(_down(h), w)
    slope = -(gx * lvec[0] + gy * lvec[1])  # brighter where the relief faces the light
    bs = bandpass(_down(slope), w)
    sel = w > 0
    st = _stats(bh, be, sel)
    return {"r_height": st["r"], "gain": st["gain"], "r_slope": _stats(bs, be, sel)["r"], "n": st["n"]}
