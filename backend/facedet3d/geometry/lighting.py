"""Low-order lighting as 9-term real spherical harmonics (SH9), shared by the input
detail estimate (``fit.detail_input``) and the neural pass (``neural.geometry``).

Conventions
- Normals are unit (K, 3) vectors in camera orientation: +X right, +Y up, +Z toward the
  camera (as ``geometry.raster.vertex_normals`` of the fitted mesh turned by the camera's
  rotation).
- The basis is up to band 2 without its normalising constants (they fold into the fitted
  coefficients): 1, x, y, z, xy, yz, 3z^2 - 1, xz, x^2 - y^2.
- Coefficients carry the unit of what was fitted: linear-light luminance in
  ``detail_input`` (albedo x irradiance), relative shading (mean 1 over the skin) in the
  neural pass. Nothing here is in sRGB.
"""

from __future__ import annotations

import numpy as np

SH_TERMS = 9
FIRST_ORDER_TERMS = 4  # 1, x, y, z: what a fit with few samples keeps
# Robust fit: Tukey biweight cut-off in units of the residual's robust sigma (MAD * 1.4826);
# 4.685 gives 95 % efficiency on Gaussian residuals.
_TUKEY_C = 4.685
_MAD_TO_SIGMA = 1.4826
_MIN_SAMPLES_PER_TERM = 20  # fewer samples per column than this: fit first order only
_RIDGE = 1e-9  # relative Tikhonov term (x trace of the normal matrix)


def sh9(n: np.ndarray) -> np.ndarray:
    """(K, 9) SH9 basis (see the module docstring) of unit normals (K, 3)."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    return np.stack([np.ones_like(x), x, y, z, x * y, y * z, 3 * z * z - 1, x * z,
                     x * x - y * y], axis=1)


def sh9_dot(x: np.ndarray, y: np.ndarray, z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``sh9(n) @ c`` for normals given as three (K,) float32 component arrays, evaluated
    in float32 without building the (K, 9) matrix (the per-texel shading of a map)."""
    c = [np.float32(v) for v in c]
    return (c[0] + c[1] * x + c[2] * y + c[3] * z + x * (c[4] * y + c[7] * z)
            + c[5] * y * z + c[6] * (3 * z * z - 1) + c[8] * (x * x - y * y))


def fit_lighting(y: np.ndarray, B: np.ndarray, iters: int = 3) -> np.ndarray:
    """Robust least squares ``y (K,) ~ B (K, P) @ c`` -> c (P,): iteratively reweighted
    (Tukey biweight), so shadows, highlights and non-skin samples do not pull the fit.

    B is one or more 9-column SH9 blocks side by side (``sh9(n)``, possibly multiplied by
    per-sample factors). With fewer than 20 samples per column only each block's
    first-order terms (its first 4 columns) are fitted; the others stay 0."""
    B = np.asarray(B, np.float64)
    y = np.asarray(y, np.float64)
    cols = np.arange(B.shape[1])
    if len(y) < _MIN_SAMPLES_PER_TERM * B.shape[1]:
        cols = cols[(cols % SH_TERMS) < FIRST_ORDER_TERMS]
    Bc = B[:, cols]
    w = np.ones(len(y))
    c = np.zeros(len(cols))
    ridge = _RIDGE * np.eye(len(cols))
    for _ in range(iters):
        # Normal equations (P x P): much faster than lstsq on (K, P), and the basis is
        # well conditioned over a face's normals.
        Bw = Bc * w[:, None]
        A = Bw.T @ Bc
        c = np.linalg.solve(A + ridge * np.trace(A), Bw.T @ y)
        r = y - Bc @ c
        s = _MAD_TO_SIGMA * np.median(np.abs(r)) + 1e-9
        u = np.clip(r / (_TUKEY_C * s), -1, 1)
        w = (1 - u * u) ** 2
    out = np.zeros(B.shape[1])
    out[cols] = c
    return out
