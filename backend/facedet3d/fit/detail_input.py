"""Input detail map D(Ix): fine skin relief estimated from the unwrapped photo.

Output: (S, S) float32, signed displacement in METRES along the vertex normal, in the BFM
UV layout with row 0 = top of UV space (v = 1), same texel grid as the texture.

Method (shape-from-shading in spirit, deliberately conservative):
1. Linear luminance Y of the sRGB texture (Rec. 709 weights).
2. Low-order lighting: Y ~ albedo * SH9(n) fitted by iteratively reweighted least squares
   on directly observed, skin-coloured texels (n: the fitted mesh's smooth normals in
   camera orientation, interpolated per texel). The smooth shading is divided out.
3. Band-pass of the log shading ratio log(Y / shading): a normalised-convolution
   difference of Gaussians, from ~1 texel (finest-scale noise suppressed) to ~2% of the
   map (wrinkles, creases, pores; broader albedo/shape variation removed).
4. Regularisation: attenuate where the local chroma (log R/G, log B/G, intensity
   invariant) departs from the skin's median chroma (hair, eyebrows, lips, make-up) or
   where it is very dark; soft-clip by the map's robust spread (MAD); core the weakest
   responses (sensor/JPEG noise).
5. Scale: ``METRES_PER_LOG_UNIT`` (1 mm per unit of log intensity ratio): a crease 25 %
   darker than its surroundings becomes about -0.29 mm (darker = into the skin = negative);
   typical wrinkles come out at 0.1 - 1 mm, i.e. amplitudes around 1e-4 m. The log ratio
   is soft-clipped (tanh) at max(6 MAD, 0.35), i.e. about 0.35 mm for clean skin, and
   the result hard-clipped to ``MAX_ABS_M`` = 3 mm.
6. Only directly observed texels (the unwrap mask, not its symmetric fill) carry detail;
   the map fades smoothly to 0 at their border and at grazing angles.
"""

from __future__ import annotations

import cv2
import numpy as np

from facedet3d.fit.texture import UVLayout

METRES_PER_LOG_UNIT = 1.0e-3
MAX_ABS_M = 3.0e-3
_EPS_LIN = 2e-3  # linear-light floor: keeps logs of near-black texels finite and calm
_CHROMA_TAU = 0.12  # chroma distance (log-ratio units) at which detail is ~37 % kept
_SRGB_LUT = np.where(np.arange(256) / 255.0 <= 0.04045, np.arange(256) / 255.0 / 12.92,
                     ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _smoothstep(x, lo, hi):
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an (S, S) or (S, S, C) float32 map; large sigmas run on a downscaled copy
    (the result is smooth anyway, and it keeps the whole estimate under ~100 ms)."""
    if sigma <= 3.0:
        return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    f = int(min(8, max(1, sigma // 2)))
    h, w = x.shape[:2]
    small = cv2.resize(x, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / f, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(x.shape)


def _nblur(x: np.ndarray, w: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised convolution: weighted local mean of x (weights w >= 0), so unobserved or
    attenuated texels neither pull the mean nor create edges."""
    xw = _blur(cv2.merge([x * w, w]), sigma)  # both blurs in one two-channel pass
    return xw[..., 0] / np.maximum(xw[..., 1], 1e-6)


def _sh9(n: np.ndarray) -> np.ndarray:
    """(K, 9) real spherical-harmonics basis (up to band 2, constants folded into the
    fitted coefficients) of unit normals (K, 3)."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    return np.stack([np.ones_like(x), x, y, z, x * y, y * z, 3 * z * z - 1, x * z,
                     x * x - y * y], axis=1)


def _median(x: np.ndarray, n: int = 60000) -> float:
    """Median of a 1-D sample, from an evenly strided subsample of at most ~n values
    (a robust statistic; exactness does not matter, speed does)."""
    if x.size == 0:
        return 0.0
    return float(np.median(x[:: max(1, x.size // n)]))


def _sh_eval(x: np.ndarray, y: np.ndarray, z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """SH9(n) @ c for normals given as three (K,) float32 component arrays (the same
    basis as :func:`_sh9`, evaluated without building a (K, 9) matrix)."""
    c = [np.float32(v) for v in c]
    return (c[0] + c[1] * x + c[2] * y + c[3] * z + x * (c[4] * y + c[7] * z)
            + c[5] * y * z + c[6] * (3 * z * z - 1) + c[8] * (x * x - y * y))


def _fit_lighting(y: np.ndarray, B: np.ndarray, iters: int = 3) -> np.ndarray:
    """Robust (IRLS, Tukey biweight) least squares y (K,) ~ B (K, P) @ c -> c (P,).

    With too few samples for the full basis only the columns of the first-order SH terms
    (every 9-block's first 4) are fitted; the others stay 0."""
    B = np.asarray(B, np.float64)
    y = np.asarray(y, np.float64)
    cols = np.arange(B.shape[1])
    if len(y) < 20 * B.shape[1]:
        cols = cols[(cols % 9) < 4]
    Bc = B[:, cols]
    w = np.ones(len(y))
    c = np.zeros(len(cols))
    ridge = 1e-9 * np.eye(len(cols))
    for _ in range(iters):
        # Normal equations (P x P): much faster than lstsq on (K, P), and the basis is
        # well conditioned over a face's normals.
        Bw = Bc * w[:, None]
        A = Bw.T @ Bc
        c = np.linalg.solve(A + ridge * np.trace(A), Bw.T @ y)
        r = y - Bc @ c
        s = 1.4826 * np.median(np.abs(r)) + 1e-9
        u = np.clip(r / (4.685 * s), -1, 1)
        w = (1 - u * u) ** 2
    out = np.zeros(B.shape[1])
    out[cols] = c
    return out


def estimate_detail(texture: np.ndarray, mask: np.ndarray, layout: UVLayout,
                    normals_cam: np.ndarray) -> np.ndarray:
    """Estimate the input detail map D(Ix) from an unwrapped photo.

    texture:     (S, S, 3) uint8 sRGB unwrapped texture (row 0 = top of UV space).
    mask:        (S, S) uint8, > 0 where the texel was observed directly (unwrap's mask).
    layout:      the :class:`~facedet3d.texture.UVLayout` of size S.
    normals_cam: (N, 3) unit vertex normals of the fitted mesh in camera orientation
                 (+Z toward the camera, +Y up).
    Returns (S, S) float32 displacement in metres along the normal (negative = into the
    skin), 0 outside the observed region; see the module docstring for the scale.
    """
    S = layout.size
    if texture.shape[:2] != (S, S) or mask.shape != (S, S):
        raise ValueError(f"texture/mask must be {S}x{S} to match the layout")
    k = S / 1024.0  # texel scale relative to the 1024 reference

    # 1. Linear RGB planes and luminance.
    lut = _SRGB_LUT.reshape(1, 256)
    r, g, b = (cv2.LUT(p, lut) for p in cv2.split(np.ascontiguousarray(texture[..., :3])))
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b

    # Smooth per-texel normals (camera frame) and the observed weight.
    # Per-texel unit normals (Phong-style: interpolated, renormalised), so shading varies
    # inside each triangle as it does on the real surface.
    nk = layout.sample(np.asarray(normals_cam, np.float32))
    nx_, ny_, nz_ = (np.ascontiguousarray(nk[:, i]) for i in range(3))
    inv = 1.0 / np.maximum(np.sqrt(nx_ * nx_ + ny_ * ny_ + nz_ * nz_), 1e-9)
    nx_ *= inv
    ny_ *= inv
    nz_ *= inv
    nz = layout.to_image(nz_, fill=0.0)
    obs = (mask > 0) & layout.chart
    head_on = _smoothstep(nz, 0.2, 0.5)

    # 4a. Skin chroma: intensity-invariant log ratios, lightly smoothed so a crease (same
    # chroma, darker) keeps its chroma while hair/brows/lips stand out.
    lg = np.log(g + _EPS_LIN)
    # One two-channel blur instead of two single-channel ones.
    crb = _blur(cv2.merge([np.log(r + _EPS_LIN) - lg, np.log(b + _EPS_LIN) - lg]), 1.5 * k)
    cr, cb = crb[..., 0], crb[..., 1]
    sel = obs & (head_on > 0.5) & (lum > 0.01)
    out = np.zeros((S, S), np.float32)
    if sel.sum() < 50:
        return out  # (almost) nothing observed head-on: no detail rather than noise
    med_r, med_b = _median(cr[sel]), _median(cb[sel])
    d2 = (cr - med_r) ** 2 + (cb - med_b) ** 2
    skin = np.exp(-d2 / _CHROMA_TAU ** 2)
    core_skin = sel & (skin > 0.5)
    med_lum = _median(lum[core_skin]) if core_skin.any() else _median(lum[sel])
    # Very dark texels (hair, nostrils, deep shadow) carry no usable shading detail.
    skin *= _smoothstep(_blur(lum, 2.0 * k), 0.1 * med_lum, 0.3 * med_lum)

    # 2. Lighting fit on observed skin texels (subsampled: the fit is 9 numbers).
    fit_sel = np.nonzero((sel & (skin > 0.5)).reshape(-1)[layout.texel_index])[0]
    step = max(1, fit_sel.size // 8000)
    fit_sel = fit_sel[::step]
    pix = layout.texel_index[fit_sel]
    y_fit = lum.reshape(-1)[pix].astype(np.float64)
    # Lighting x smooth albedo: Y ~ SH9(n).l + u' SH9(n).m + v' SH9(n).p (u', v' centred
    # UV). The linear albedo terms keep a skin-tone gradient across the face from being
    # explained by the n_x / n_y lighting terms, whose error would then show up at
    # mesh-scale features (nose wings, eyelids).
    tu, tv = layout.texel_uv
    uk, vk = tu - np.float32(0.5), np.float32(0.6) - tv
    uc, vc = uk[fit_sel].astype(np.float64), vk[fit_sel].astype(np.float64)
    B9 = _sh9(np.stack([nx_[fit_sel], ny_[fit_sel], nz_[fit_sel]], 1)).astype(np.float64)
    coef = _fit_lighting(y_fit, np.hstack([B9, B9 * uc[:, None], B9 * vc[:, None]]))
    shading_k = (_sh_eval(nx_, ny_, nz_, coef[:9]) + uk * _sh_eval(nx_, ny_, nz_, coef[9:18])
                 + vk * _sh_eval(nx_, ny_, nz_, coef[18:]))
    shading = layout.to_image(np.maximum(shading_k, 0.05 * med_lum), fill=med_lum)
    wfit = (obs * head_on * skin).astype(np.float32)

    # 3. Band-pass of the log shading ratio, with normalised convolution over the
    # trusted texels so the observed border and hair/lips do not create edges.
    logr = np.log(lum + _EPS_LIN) - np.log(shading + _EPS_LIN)
    fine = _nblur(logr, wfit, 0.8 * k)
    coarse = _nblur(logr, wfit, 0.01 * S)
    d = fine - coarse

    # 4b. Robust soft clip and coring, from the spread over the trusted texels.
    trusted = wfit > 0.5
    if trusted.any():
        dv = d[trusted]
        mad = 1.4826 * _median(np.abs(dv - _median(dv)))
    else:
        mad = 0.0
    clip = max(6.0 * mad, 0.35)
    d = clip * np.tanh(d / clip)
    # Coring: responses below ~half the typical spread are mostly noise; the floor is
    # about one 8-bit sRGB step (quantisation contours on smooth gradients).
    core = max(0.5 * mad, 0.01)
    d = d * (d * d / (d * d + core * core))

    # 6. Fade: observed (eroded + blurred so the border ramps to 0), head-on, skin.
    rad = max(2, int(round(6 * k)))
    er = cv2.erode(obs.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                                     (2 * rad + 1,) * 2))
    fade = cv2.GaussianBlur(er.astype(np.float32), (0, 0), rad / 2.0) * obs
    # Attenuation spread slightly outward (min with its blur) so hair edges stay calm.
    att = np.minimum(skin, _blur(skin, 2.0 * k))
    wout = fade * head_on * att

    # 5. Metres, darker = negative, soft-limited.
    disp = METRES_PER_LOG_UNIT * d * wout
    out = np.clip(disp, -MAX_ABS_M, MAX_ABS_M).astype(np.float32)
    return np.nan_to_num(out, copy=False, nan=0.0)


def shade_preview(detail: np.ndarray, texel_m: float = 2.5e-4, exaggerate: float = 4.0,
                  light_deg: tuple[float, float] = (135.0, 25.0)) -> np.ndarray:
    """Grey shaded relief (S, S, 3) uint8 of a detail map, for people to look at.

    detail:     (S, S) displacement in metres (row 0 = top of UV space).
    texel_m:    size of one texel on the face in metres (a 1024 map spans ~0.25 m).
    exaggerate: height multiplier so 0.1 mm features are visible.
    light_deg:  (azimuth, elevation) of a raking light; azimuth 135 = from the upper left.
    Lambertian shading of the height field's normals, flat areas at mid grey.
    """
    h = np.asarray(detail, np.float32) * (exaggerate / texel_m)  # height in texels
    gx = cv2.Sobel(h, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(h, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    # Image rows go down, UV v goes up: the surface normal is (-dh/dx, +dh/drow, 1).
    n = np.stack([-gx, gy, np.ones_like(h)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    az, el = np.deg2rad(light_deg[0]), np.deg2rad(light_deg[1])
    light = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], np.float32)
    flat = float(light[2])  # shade of a flat surface
    lam = np.clip(n @ light, 0.0, 1.0)
    grey = np.clip(0.5 + 0.5 * (lam - flat) / max(1.0 - flat, 1e-3), 0.0, 1.0)
    g8 = (grey * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(g8[..., None], 3, axis=2)
