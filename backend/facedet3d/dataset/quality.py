"""Fit-quality score of one photo: a landmark residual and a photometric residual.

- Landmark residual: the fitted mesh's eye centres, nose tip and mouth corners against the
  five points MTCNN found independently (another network than the 3DDFA regressor), mean
  distance over the inter-ocular distance. A fit that slid off the face, or a wrong face,
  shows here.
- Photometric residual: inside the face mask (eroded), the photo's linear luminance
  against a Lambertian model ``Y ~ SH9(n) . c`` of the fitted normals (9 lighting-times-
  albedo coefficients, robust least squares). Where the mesh covers background, hair or an
  occluder, or its normals disagree with the shading, the relative residual grows.
- ``quality = exp(-(lm / LM_SCALE)^2 / 2 - (photo / PH_SCALE)^2 / 2)`` in (0, 1]. Scales from
  the 98 fitted portraits of ``shared/data/faces/interfaces`` looked at one by one: fits
  with lm <= 0.11 all sat on the face; from ~0.13 on (mostly profiles past 45 degrees of yaw,
  hands or cameras in front of the face) the mask visibly overran or missed the face. The
  photometric residual separates less (sunglasses, dark skin under hard light and good
  fits reach 0.5-0.7), so it weighs less: it only pulls the score down when very large.
  ``--min-quality 0.5`` keeps roughly lm < 0.11. Both residuals are in the manifest.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

LM_SCALE = 0.12  # inter-ocular distances
PH_SCALE = 0.8  # relative luminance residual
_SRGB_LUT = np.where(np.arange(256) / 255.0 <= 0.04045, np.arange(256) / 255.0 / 12.92,
                     ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4).astype(np.float32)


def five_points(lm68: np.ndarray) -> np.ndarray:
    """(5, 2) in MTCNN's order (image-left eye, image-right eye, nose tip, image-left and
    image-right mouth corner) from iBUG-68 landmarks (68, 2)."""
    lm = np.asarray(lm68, np.float64)[:, :2]
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def landmark_residual(lm68: np.ndarray, mtcnn5: np.ndarray | None) -> float | None:
    """Mean 5-point distance / inter-ocular distance (MTCNN's eyes); None without MTCNN points."""
    if mtcnn5 is None:
        return None
    ref = np.asarray(mtcnn5, np.float64)
    iod = float(np.linalg.norm(ref[1] - ref[0]))
    if not math.isfinite(iod) or iod < 1.0:
        return None
    return float(np.linalg.norm(five_points(lm68) - ref, axis=1).mean() / iod)


def sh9(n: np.ndarray) -> np.ndarray:
    """(K, 9) real SH basis up to band 2 (constants folded into the coefficients)."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    return np.stack([np.ones_like(x), x, y, z, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y], axis=1)


def linear_luminance(rgb: np.ndarray) -> np.ndarray:
    lut = _SRGB_LUT.reshape(1, 256)
    r, g, b = (cv2.LUT(np.ascontiguousarray(rgb[..., i]), lut) for i in range(3))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def photometric_fit(rgb: np.ndarray, normals: np.ndarray, mask: np.ndarray, max_samples: int = 20000
                    ) -> tuple[float | None, np.ndarray | None]:
    """Relative robust residual of ``Y ~ SH9(n) . c`` over the eroded mask, and c (9,)
    (the photo's lighting times a mean albedo, used to shade synthesized details).
    (None, None) when the mask is too small to judge."""
    m = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    idx = np.flatnonzero(m)
    if idx.size < 200:
        return None, None
    idx = idx[:: max(1, idx.size // max_samples)]
    y = linear_luminance(rgb).reshape(-1)[idx].astype(np.float64)
    B = sh9(normals.reshape(-1, 3)[idx].astype(np.float64))
    w = np.ones(len(y))
    c = np.zeros(9)
    for _ in range(3):  # IRLS, Tukey biweight: specular spots and small occluders count less
        Bw = B * w[:, None]
        A = Bw.T @ B
        c = np.linalg.solve(A + 1e-9 * np.trace(A) * np.eye(9), Bw.T @ y)
        r = y - B @ c
        s = 1.4826 * np.median(np.abs(r)) + 1e-9
        u = np.clip(r / (4.685 * s), -1, 1)
        w = (1 - u * u) ** 2
    # Mean absolute residual (not a robust one: the outliers are what a bad fit produces)
    # over the mean luminance.
    res = float(np.mean(np.abs(y - B @ c)) / max(float(np.mean(y)), 1e-6))
    return res, c


def score(lm_res: float | None, ph_res: float | None) -> float | None:
    """Combined quality in (0, 1]; a missing part counts as neutral, both missing -> None."""
    if lm_res is None and ph_res is None:
        return None
    e = 0.0
    if lm_res is not None:
        e += 0.5 * (lm_res / LM_SCALE) ** 2
    if ph_res is not None:
        e += 0.5 * (ph_res / PH_SCALE) ** 2
    return float(math.exp(-e))
