"""Input detail map D(Ix): fine skin relief estimated from the unwrapped photo.

Output: (S, S) float32, signed displacement in METRES along the vertex normal, in the BFM
UV layout with row 0 = top of UV space (v = 1), same texel grid as the texture.

Method (shape-from-shading in spirit, deliberately conservative), the steps of
:func:`estimate_detail` in order; every number is a field of :class:`DetailParams`:
1. Linear light: RGB planes and luminance Y of the sRGB texture (Rec. 709 weights).
2. Per-texel smooth normals of the fitted mesh in camera orientation, the observed texels
   (the unwrap mask, not its symmetric fill) and a head-on weight from the normal's n_z.
3. Skin weight: attenuate where the local chroma (log R/G, log B/G, intensity invariant)
   departs from the chroma of the skin around it (hair, eyebrows, lips, make-up, moles) by
   more than this face's own chroma noise, or where it is very dark (nostrils, deep
   shadow). The reference is local because skin's chroma drifts across a face (shadowed
   skin is redder; on the darker skin of X-Portrait's clip log R/G spans 0.6 over the face,
   five times the tolerance): a single median kept 2 % of that face's skin, and 27-52 % of
   the sample photos', in blotches that followed video codec blocks.
4. Smooth shading: Y ~ albedo * SH9(n) fitted by iteratively reweighted least squares on
   observed skin texels, with a linear albedo gradient across the face
   (``geometry.lighting``).
5. Band-pass of the log shading ratio log(Y / shading): a normalised-convolution
   difference of Gaussians, from ~1 texel (finest-scale noise suppressed) to a sigma of
   1 % of the map side (wrinkles, creases, pores kept; broader albedo/shape variation
   removed).
6. Soft clip by the map's robust spread (MAD), then core the weakest responses
   (sensor/JPEG noise).
7. Fade: the map goes smoothly to 0 at the border of the observed texels, at grazing
   angles, off the skin's colour, and on the parts that are not skin (eyes and lashes,
   brows, lips, nostrils: ``skin_regions``; 5.6 % of the face chart).
8. Scale: ``METRES_PER_LOG_UNIT`` (1 mm per unit of log intensity ratio): a crease 25 %
   darker than its surroundings becomes about -0.29 mm (darker = into the skin = negative);
   typical wrinkles come out at 0.1 - 1 mm, i.e. amplitudes around 1e-4 m. The log ratio
   is soft-clipped (tanh) at max(6 MAD, 0.35), i.e. about 0.35 mm for clean skin, and
   the result hard-clipped to ``MAX_ABS_M`` = 3 mm.

Lengths in texels are given for a 1024² map ("texels@1024") and scale with the map side S.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facedet3d.api.types import DETAIL_METRES_PER_LOG_UNIT
from facedet3d.fit import skin_regions
from facedet3d.fit.texture import UVLayout
from facedet3d.geometry.lighting import fit_lighting, sh9, sh9_dot
from facedet3d.geometry.ramps import smoothstep
from facedet3d.imaging.color import REC709_LUMA, SRGB8_TO_LINEAR

METRES_PER_LOG_UNIT = DETAIL_METRES_PER_LOG_UNIT  # api/types: the add-on's cavity term uses it too
MAX_ABS_M = 3.0e-3
REFERENCE_SIZE = 1024  # map side the texel lengths in DetailParams are given for
_MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation of a Gaussian


@dataclass(frozen=True)
class DetailParams:
    """Every number of :func:`estimate_detail`. Luminance is linear light in [0, 1];
    "texels@1024" lengths scale with the map side; log units are natural logs of ratios."""

    # 2. Head-on weight: smoothstep of the normal's n_z (cosine to the view axis) over this range.
    head_on_nz: tuple[float, float] = (0.2, 0.5)
    # Texels that set the skin statistics: observed, head-on weight and luminance above these.
    trusted_head_on: float = 0.5
    min_luminance: float = 0.01
    min_texels: int = 50            # fewer such texels: no detail at all rather than noise
    # 3. Skin weight.
    eps_lin: float = 2e-3           # linear-light floor: keeps logs of near-black texels finite and calm
    chroma_blur: float = 4.0        # texels@1024 (~1.2 mm): a crease keeps its chroma; codec chroma noise averages out
    chroma_ref: float = 0.04        # fraction of the map side (~12 mm): sigma of the surrounding skin's chroma;
                                    # 0: one median for the face (the cue before stop 25, with blur 1.5, tau_noise 0)
    chroma_iters: int = 2           # reweightings of that reference (hair and brows stop pulling it)
    chroma_tau: float = 0.12        # chroma distance (log units) at which detail is ~37 % kept, at least
    chroma_tau_noise: float = 2.0   # ... or this many times the face's median distance (its chroma noise)
    chroma_global: float = 4.0      # x tau: a colour this far from the face's median skin is never skin
    skin_core: float = 0.5          # skin weight above which a texel counts as skin
    dark_blur: float = 2.0          # texels@1024, luminance blur before the darkness ramp
    dark_ramp: tuple[float, float] = (0.1, 0.3)  # x median skin luminance: attenuated below, kept above
    # 4. Smooth shading.
    lighting_samples: int = 8000    # texels (about) in the lighting fit: it is 27 numbers
    albedo_uv_centre: tuple[float, float] = (0.5, 0.6)  # UV origin of the linear albedo terms
    shading_floor: float = 0.05     # x median skin luminance: the shading never falls below
    # 5. Band-pass (Gaussian sigmas).
    fine_sigma: float = 0.8         # texels@1024: suppresses single-texel noise
    coarse_sigma: float = 0.01      # fraction of the map side: removes broad albedo/shape variation
    # 6. Soft clip and coring (log units).
    trusted_weight: float = 0.5     # texels whose trust weight exceeds this set the spread (MAD)
    clip_mads: float = 6.0
    clip_min: float = 0.35
    core_mads: float = 0.5          # responses below ~half the typical spread are mostly noise
    core_min: float = 0.01          # about one 8-bit sRGB step (quantisation contours)
    # 7. Fade.
    fade_radius: float = 6.0        # texels@1024: erosion of the observed region, then blur radius / 2
    fade_radius_min: int = 2        # texels
    attenuation_blur: float = 2.0   # texels@1024: spreads the skin attenuation outward (calm hair edges)
    # 8. Scale.
    metres_per_log_unit: float = METRES_PER_LOG_UNIT
    max_abs_m: float = MAX_ABS_M


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


def _median(x: np.ndarray, n: int = 60000) -> float:
    """Median of a 1-D sample, from an evenly strided subsample of at most ~n values
    (a robust statistic; exactness does not matter, speed does)."""
    if x.size == 0:
        return 0.0
    return float(np.median(x[:: max(1, x.size // n)]))


def _linear_light(texture: np.ndarray):
    """Step 1: (r, g, b, luminance) (S, S) float32 linear-light planes of a uint8 sRGB map."""
    lut = SRGB8_TO_LINEAR.reshape(1, 256)
    r, g, b = (cv2.LUT(p, lut) for p in cv2.split(np.ascontiguousarray(texture[..., :3])))
    wr, wg, wb = REC709_LUMA
    return r, g, b, wr * r + wg * g + wb * b


def _texel_normals(layout: UVLayout, normals_cam: np.ndarray):
    """Step 2: per chart texel unit normals (three (K,) float32 arrays), interpolated from
    the vertex normals and renormalised (Phong-style), so shading varies inside each
    triangle as it does on the real surface."""
    nk = layout.sample(np.asarray(normals_cam, np.float32))
    nx, ny, nz = (np.ascontiguousarray(nk[:, i]) for i in range(3))
    inv = 1.0 / np.maximum(np.sqrt(nx * nx + ny * ny + nz * nz), 1e-9)
    nx *= inv
    ny *= inv
    nz *= inv
    return nx, ny, nz


def _chroma(r, g, b, sigma: float, eps: float) -> np.ndarray:
    """Step 3a: (S, S, 2) intensity-invariant chroma (log R/G, log B/G), lightly blurred
    (one two-channel blur instead of two single-channel ones)."""
    lg = np.log(g + eps)
    return _blur(cv2.merge([np.log(r + eps) - lg, np.log(b + eps) - lg]), sigma)


def _skin_weight(chroma: np.ndarray, lum: np.ndarray, sel: np.ndarray, k: float, p: DetailParams):
    """Step 3b: (skin weight (S, S) in [0, 1], median skin luminance). ``sel``: the texels
    that set the skin's chroma. Each texel is compared with a normalised-convolution mean of
    the skin's chroma around it (``chroma_ref``), reweighted ``chroma_iters`` times so that
    hair, brows and lips stop pulling it, with a tolerance of max(``chroma_tau``,
    ``chroma_tau_noise`` x the face's median distance): a noisier video keeps its skin."""
    S = chroma.shape[0]
    g2 = ((chroma - np.array([_median(chroma[..., 0][sel]), _median(chroma[..., 1][sel])], np.float32)) ** 2).sum(-1)
    d2 = g2
    if p.chroma_ref > 0:
        w = (sel * np.exp(-g2 / (p.chroma_global * p.chroma_tau) ** 2)).astype(np.float32)
        for _ in range(max(1, p.chroma_iters)):
            ref = np.stack([_nblur(np.ascontiguousarray(chroma[..., c]), w, p.chroma_ref * S) for c in (0, 1)], -1)
            d2 = ((chroma - ref) ** 2).sum(-1)
            w = (sel * np.exp(-d2 / p.chroma_tau ** 2)).astype(np.float32)
    tau = p.chroma_tau
    if p.chroma_tau_noise > 0 and sel.any():
        tau = max(tau, p.chroma_tau_noise * _median(np.sqrt(d2[sel])))
    skin = np.exp(-d2 / tau ** 2)
    if p.chroma_ref > 0:  # a colour far from all of this face's skin is never skin
        skin = skin * np.exp(-g2 / (p.chroma_global * tau) ** 2)
    core_skin = sel & (skin > p.skin_core)
    med_lum = _median(lum[core_skin]) if core_skin.any() else _median(lum[sel])
    # Very dark texels (hair, nostrils, deep shadow) carry no usable shading detail.
    lo, hi = p.dark_ramp
    skin *= smoothstep(_blur(lum, p.dark_blur * k), lo * med_lum, hi * med_lum)
    return skin.astype(np.float32), med_lum


def _smooth_shading(lum: np.ndarray, layout: UVLayout, normals, fit_texels: np.ndarray, med_lum: float,
                    p: DetailParams) -> np.ndarray:
    """Step 4: (S, S) smooth shading x albedo, fitted on the ``fit_texels`` (S, S) bool.

    Y ~ SH9(n).l + u' SH9(n).m + v' SH9(n).p (u', v' UV centred on ``albedo_uv_centre``):
    the linear albedo terms keep a skin-tone gradient across the face from being explained
    by the n_x / n_y lighting terms, whose error would then show up at mesh-scale features
    (nose wings, eyelids). The fit is subsampled: it is 27 numbers."""
    nx, ny, nz = normals
    fit_sel = np.nonzero(fit_texels.reshape(-1)[layout.texel_index])[0]
    fit_sel = fit_sel[::max(1, fit_sel.size // p.lighting_samples)]
    y_fit = lum.reshape(-1)[layout.texel_index[fit_sel]].astype(np.float64)
    tu, tv = layout.texel_uv
    uk, vk = tu - np.float32(p.albedo_uv_centre[0]), np.float32(p.albedo_uv_centre[1]) - tv
    uc, vc = uk[fit_sel].astype(np.float64), vk[fit_sel].astype(np.float64)
    B9 = sh9(np.stack([nx[fit_sel], ny[fit_sel], nz[fit_sel]], 1)).astype(np.float64)
    coef = fit_lighting(y_fit, np.hstack([B9, B9 * uc[:, None], B9 * vc[:, None]]))
    shading_k = (sh9_dot(nx, ny, nz, coef[:9]) + uk * sh9_dot(nx, ny, nz, coef[9:18])
                 + vk * sh9_dot(nx, ny, nz, coef[18:]))
    return layout.to_image(np.maximum(shading_k, p.shading_floor * med_lum), fill=med_lum)


def _band_pass(log_ratio: np.ndarray, trust: np.ndarray, k: float, S: int, p: DetailParams) -> np.ndarray:
    """Step 5: difference of normalised-convolution Gaussians over the trusted texels, so
    the observed border and hair/lips do not create edges."""
    return _nblur(log_ratio, trust, p.fine_sigma * k) - _nblur(log_ratio, trust, p.coarse_sigma * S)


def _soft_clip_and_core(d: np.ndarray, trusted: np.ndarray, p: DetailParams) -> np.ndarray:
    """Step 6: tanh soft clip at max(clip_mads MAD, clip_min), then coring below
    max(core_mads MAD, core_min); MAD over the ``trusted`` texels."""
    if trusted.any():
        dv = d[trusted]
        mad = _MAD_TO_SIGMA * _median(np.abs(dv - _median(dv)))
    else:
        mad = 0.0
    clip = max(p.clip_mads * mad, p.clip_min)
    d = clip * np.tanh(d / clip)
    core = max(p.core_mads * mad, p.core_min)
    return d * (d * d / (d * d + core * core))


def _observed_fade(obs: np.ndarray, k: float, p: DetailParams) -> np.ndarray:
    """Step 7a: (S, S) float32 weight ramping from 0 at the border of the observed texels
    to 1 inside (eroded, then blurred)."""
    rad = max(p.fade_radius_min, int(round(p.fade_radius * k)))
    er = cv2.erode(obs.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rad + 1,) * 2))
    return cv2.GaussianBlur(er.astype(np.float32), (0, 0), rad / 2.0) * obs


def _observed(texture: np.ndarray, mask: np.ndarray, layout: UVLayout, normals_cam: np.ndarray, p: DetailParams):
    """Steps 1-2 and the texels that set step 3: (linear R, G, B, luminance, texel normals,
    observed texels, head-on weight, the texels seen head-on and not black)."""
    r, g, b, lum = _linear_light(texture)
    normals = _texel_normals(layout, normals_cam)
    obs = (mask > 0) & layout.chart
    head_on = smoothstep(layout.to_image(normals[2], fill=0.0), *p.head_on_nz)
    return r, g, b, lum, normals, obs, head_on, obs & (head_on > p.trusted_head_on) & (lum > p.min_luminance)


def skin_weight(texture: np.ndarray, mask: np.ndarray, layout: UVLayout, normals_cam: np.ndarray,
                params: DetailParams = DetailParams()) -> tuple[np.ndarray, np.ndarray]:
    """Step 3 alone, for reports (``scripts/skin_cue_check.py``): (the colour cue's skin weight
    (S, S) in [0, 1], the texels that set it (S, S) bool); arguments as ``estimate_detail``."""
    r, g, b, lum, _, _, _, sel = _observed(texture, mask, layout, normals_cam, params)
    k = layout.size / float(REFERENCE_SIZE)
    return _skin_weight(_chroma(r, g, b, params.chroma_blur * k, params.eps_lin), lum, sel, k, params)[0], sel


def estimate_detail(texture: np.ndarray, mask: np.ndarray, layout: UVLayout,
                    normals_cam: np.ndarray, params: DetailParams = DetailParams()) -> np.ndarray:
    """Estimate the input detail map D(Ix) from an unwrapped photo.

    texture:     (S, S, 3) uint8 sRGB unwrapped texture (row 0 = top of UV space).
    mask:        (S, S) uint8, > 0 where the texel was observed directly (unwrap's mask).
    layout:      the :class:`~facedet3d.fit.texture.UVLayout` of size S.
    normals_cam: (N, 3) unit vertex normals of the fitted mesh in camera orientation
                 (+Z toward the camera, +Y up).
    params:      the method's numbers (:class:`DetailParams`).
    Returns (S, S) float32 displacement in metres along the normal (negative = into the
    skin), 0 outside the observed region; see the module docstring for the steps and scale.
    """
    p = params
    S = layout.size
    if texture.shape[:2] != (S, S) or mask.shape != (S, S):
        raise ValueError(f"texture/mask must be {S}x{S} to match the layout")
    k = S / float(REFERENCE_SIZE)  # texels@1024 -> texels of this map
    # 1-2. Linear light; normals, observed texels, head-on weight.
    r, g, b, lum, normals, obs, head_on, sel = _observed(texture, mask, layout, normals_cam, p)
    if sel.sum() < p.min_texels:
        return np.zeros((S, S), np.float32)  # (almost) nothing observed head-on: no detail rather than noise
    # 3. Skin weight, from the texels seen head-on and not black.
    skin, med_lum = _skin_weight(_chroma(r, g, b, p.chroma_blur * k, p.eps_lin), lum, sel, k, p)
    # 4. Smooth shading on the skin texels among them.
    shading = _smooth_shading(lum, layout, normals, sel & (skin > p.skin_core), med_lum, p)
    # 5. Band-pass of the log shading ratio, weighted by how much each texel is trusted.
    trust = (obs * head_on * skin).astype(np.float32)
    log_ratio = np.log(lum + p.eps_lin) - np.log(shading + p.eps_lin)
    d = _band_pass(log_ratio, trust, k, S, p)
    # 6. Robust soft clip and coring.
    d = _soft_clip_and_core(d, trust > p.trusted_weight, p)
    # 7. Fade: observed border, grazing angles, off the skin (attenuation spread slightly
    # outward, min with its blur, so hair edges stay calm).
    weight = _observed_fade(obs, k, p) * head_on * np.minimum(skin, _blur(skin, p.attenuation_blur * k))
    # ... and off the parts that are not skin wherever they are in the photo (eyes and lashes,
    # brows, lips, nostrils: ``skin_regions``), which the colour cue alone misses when a brow
    # is fair or a nostril has the skin's hue.
    weight = weight * skin_regions.skin_weight(S)
    # 8. Metres, darker = negative, limited.
    out = np.clip(p.metres_per_log_unit * d * weight, -p.max_abs_m, p.max_abs_m).astype(np.float32)
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
