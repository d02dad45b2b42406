"""Photo -> BFM parameters and geometry: ROI crop, two regressor passes, refinement.

Image space: x right, y down, in pixels of the original (EXIF-oriented) photo, 0-based
pixel centres (pixel (r, c) has its centre at x = c, y = r); z points toward the camera
(larger = closer), in the same pixel units. Model space: BFM units (micrometres),
+X image-right, +Y up, +Z toward the camera.

The camera is scaled-orthographic (weak perspective), as in 3DDFA_V2:
``[x, y, z]_img = P @ [X, 1]`` with ``P`` a 3x4 matrix (``FitParams.projection``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facedet3d.assets.bfm import BFM, N_EXP, N_SHAPE
from facedet3d.fit.regressor import INPUT_SIZE, Regressor

# iBUG-68 index of each landmark's left-right mirror (for flipped test-time augmentation).
MIRROR_68 = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)

# Prior strength of the least-squares refinement, in units of the regressor's parameter
# std: keeps shape/expression near the network's estimate while landmarks pull.
_REFINE_PRIOR = 4.0
_GUIDED_SHAPE_PRIOR = 1.0  # x the regressor's std: how far MediaPipe's targets may move the identity
_IOD_REF_PX = 100.0  # the guided pass weighs residuals as for a face this wide (outer eye corners)


@dataclass(frozen=True)
class FitParams:
    """Fitted parameters of one face.

    projection: (3, 4) float64, BFM units -> image pixels (see module docstring).
    shape:      (40,) float32 identity coefficients (3DDFA scale).
    exp:        (10,) float32 expression coefficients.
    roi:        (4,) float64 [x1, y1, x2, y2] of the last crop, image pixels.
    """

    projection: np.ndarray
    shape: np.ndarray
    exp: np.ndarray
    roi: np.ndarray


def roi_from_box(box: np.ndarray) -> np.ndarray:
    """Square ROI around a face box [x1,y1,x2,y2], shifted down as 3DDFA_V2 trains it."""
    x1, y1, x2, y2 = map(float, box[:4])
    old = (x2 - x1 + y2 - y1) / 2.0
    cx = x2 - (x2 - x1) / 2.0
    cy = y2 - (y2 - y1) / 2.0 + old * 0.14
    size = int(old * 1.58)
    return np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2])


def roi_from_landmarks(pts: np.ndarray) -> np.ndarray:
    """Square ROI of side sqrt(2) x the landmarks' larger bounding-box side, same centre."""
    lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
    centre = (lo + hi) / 2.0
    side = float(np.sqrt(2.0) * (hi - lo).max())
    return np.array([centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2])


def crop(rgb: np.ndarray, roi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``roi`` (rounded to whole pixels, zero padding outside) and resize to 120².

    Takes the RGB photo; returns the (120,120,3) uint8 crop in BGR order (what the
    regressor was trained on) and the integer box [x1,y1,x2,y2] it came from.
    Bilinear as upstream; for strong downscaling (big faces in big photos) area averaging,
    which avoids the aliasing bilinear has there.
    """
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in roi)
    side_w, side_h = max(x2 - x1, 1), max(y2 - y1, 1)
    ix1, iy1, ix2, iy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if ix1 == x1 and iy1 == y1 and ix2 == x2 and iy2 == y2:
        patch = rgb[y1:y2, x1:x2]
    else:
        patch = np.zeros((side_h, side_w, 3), np.uint8)
        if ix2 > ix1 and iy2 > iy1:
            patch[iy1 - y1 : iy2 - y1, ix1 - x1 : ix2 - x1] = rgb[iy1:iy2, ix1:ix2]
    interp = cv2.INTER_AREA if max(side_w, side_h) > 2 * INPUT_SIZE else cv2.INTER_LINEAR
    out = cv2.resize(patch, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)
    return np.ascontiguousarray(out[..., ::-1]), np.array([x1, y1, x1 + side_w, y1 + side_h], np.float64)


def decode(params: np.ndarray, box: np.ndarray) -> FitParams:
    """De-normalised 62 params of a crop taken from ``box`` -> image-space projection.

    The network's output lives in the 120² crop with a 1-based x and an upward y
    (``x -= 1; y = 120 - y`` as upstream); a crop pixel centre i maps to the image
    coordinate ``x1 + (i + 0.5) * s - 0.5`` with s = box side / 120.
    """
    p = np.asarray(params, np.float64)
    rt = p[:12].reshape(3, 4)
    sx = (box[2] - box[0]) / INPUT_SIZE
    sy = (box[3] - box[1]) / INPUT_SIZE
    # crop coords: xc = R0.X + t0 - 1 ; yc = 120 - (R1.X + t1) ; zc = R2.X + t2
    to_crop = np.array([[1, 0, 0, -1], [0, -1, 0, INPUT_SIZE], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64)
    s_z = (sx + sy) / 2.0
    to_img = np.array(
        [[sx, 0, 0, box[0] + 0.5 * sx - 0.5], [0, sy, 0, box[1] + 0.5 * sy - 0.5], [0, 0, s_z, 0], [0, 0, 0, 1]]
    )
    proj = (to_img @ to_crop @ np.vstack([rt, [0, 0, 0, 1]]))[:3]
    return FitParams(proj, p[12:52].astype(np.float32), p[52:62].astype(np.float32), np.asarray(box, np.float64))


def project(bfm_vertices: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """(N,3) model-space BFM units -> (N,3) image-space pixels."""
    return bfm_vertices.astype(np.float64) @ projection[:, :3].T + projection[:, 3]


def landmarks_image(bfm: BFM, fp: FitParams) -> np.ndarray:
    """The fitted mesh's 68 landmark vertices in image space, (68, 3) pixels."""
    rows = bfm.landmark_rows()
    pts = bfm.mean.reshape(-1)[rows] + bfm.shape_basis[rows] @ fp.shape + bfm.exp_basis[rows] @ fp.exp
    return project(pts.reshape(-1, 3), fp.projection)


def regress_landmarks(rgb: np.ndarray, roi: np.ndarray, regressor: Regressor, bfm: BFM, flip: bool) -> tuple[FitParams, np.ndarray | None]:
    """One regressor pass on ``roi``; with ``flip`` also on the mirrored crop, whose
    landmarks are un-mirrored into a second estimate (test-time augmentation)."""
    patch, box = crop(rgb, roi)
    batch = np.stack([patch, patch[:, ::-1]]) if flip else patch[None]
    params = regressor(batch)
    fp = decode(params[0], box)
    if not flip:
        return fp, None
    fp_m = decode(params[1], box)
    lm_m = landmarks_image(bfm, fp_m)
    # mirror back: x -> x1 + x2 - 1 - x in image pixels (pixel-centre convention), swap L/R
    lm_m[:, 0] = box[0] + box[2] - 1.0 - lm_m[:, 0]
    return fp, lm_m[MIRROR_68]


def refine(bfm: BFM, fp: FitParams, target: np.ndarray, stats_std: np.ndarray, iters: int = 3,
           shape_prior: float = _REFINE_PRIOR, per_face_size: bool = False) -> FitParams:
    """Least-squares refinement of the affine camera, shape and expression so the model's 68
    landmarks meet ``target`` (68, 2) image pixels, with a Gaussian prior (in units of the
    regressor's own parameter std: ``shape_prior`` for the identity, ``_REFINE_PRIOR`` for the
    expression) keeping coefficients near ``fp``'s.

    Alternates: coefficients with the camera fixed (linear), camera with coefficients
    fixed (linear). Depth (row 3 of the projection) keeps the rotation's third row, rescaled.
    ``per_face_size``: residuals in units of _IOD_REF_PX-wide faces (the outer eye corners'
    distance) instead of pixels, so the prior weighs the same on a 300 px face as on a 100 px one.
    """
    rows = bfm.landmark_rows()
    basis = np.hstack([bfm.shape_basis[rows], bfm.exp_basis[rows]]).astype(np.float64)  # (204, 50)
    mean = bfm.mean.reshape(-1)[rows].astype(np.float64)
    coef0 = np.concatenate([fp.shape, fp.exp]).astype(np.float64)
    sigma = stats_std[12:62].astype(np.float64) * np.r_[np.full(N_SHAPE, shape_prior), np.full(N_EXP, _REFINE_PRIOR)]
    coef = coef0.copy()
    proj = fp.projection.copy()
    tgt = target[:, :2].astype(np.float64)
    w = _IOD_REF_PX / max(float(np.linalg.norm(tgt[45] - tgt[36])), 1e-6) if per_face_size else 1.0
    for _ in range(iters):
        # coefficients | camera: x_i = A (mean_i + B_i c) + t  -> linear in c
        A, t = proj[:2, :3], proj[:2, 3]
        Bc = basis.reshape(68, 3, -1)
        J = np.einsum("ij,njk->nik", A, Bc).reshape(136, -1)
        r = (tgt - (mean.reshape(68, 3) @ A.T + t)).reshape(-1)
        lhs = w * w * (J.T @ J) + np.diag(1.0 / sigma**2)
        coef = np.linalg.solve(lhs, w * w * (J.T @ r) + coef0 / sigma**2)
        # camera | coefficients: 2x4 affine by least squares
        X = (mean + basis @ coef).reshape(68, 3)
        Xh = np.hstack([X, np.ones((68, 1))])
        sol, *_ = np.linalg.lstsq(Xh, tgt, rcond=None)
        new2 = sol.T  # (2, 4)
        scale_ratio = np.linalg.norm(new2[:, :3]) / max(np.linalg.norm(proj[:2, :3]), 1e-12)
        proj = proj.copy()
        proj[:2] = new2
        proj[2, :3] *= scale_ratio
    return FitParams(proj, coef[:N_SHAPE].astype(np.float32), coef[N_SHAPE : N_SHAPE + N_EXP].astype(np.float32), fp.roi)


def fit_face(rgb: np.ndarray, face_box: np.ndarray, regressor: Regressor, bfm: BFM, refine_landmarks: bool = True,
             guide: np.ndarray | None = None, guide_regions=None) -> FitParams:
    """Two-pass fit as 3DDFA_V2 (box ROI, then landmark ROI) plus, with
    ``refine_landmarks``, flipped test-time augmentation and a least-squares refinement
    toward the mean of the direct and mirrored landmark estimates.

    ``guide``: MediaPipe's (478, 2+) landmarks of this face in image pixels (the expression
    reader's, ``expression.reader.Reading.landmarks``), or None. When given, the refinement's
    targets for ``guide_regions`` (default ``mp68.FIT_REGIONS``: brows, eyelids, lips) are
    MediaPipe's points mapped to the 68 (``fit.mp68``); the regressor keeps the rest."""
    from facedet3d.fit import mp68

    fp1, _ = regress_landmarks(rgb, roi_from_box(face_box), regressor, bfm, flip=False)
    roi2 = roi_from_landmarks(landmarks_image(bfm, fp1))
    fp2, lm_flip = regress_landmarks(rgb, roi2, regressor, bfm, flip=refine_landmarks)
    if not refine_landmarks and guide is None:
        return fp2
    target = landmarks_image(bfm, fp2)[:, :2]
    if lm_flip is not None:
        target = 0.5 * (target + lm_flip[:, :2])
    fp3 = refine(bfm, fp2, target, regressor.stats.std)
    if guide is None:
        return fp3
    # MediaPipe's contours differ from the BFM's landmark vertices in definition, not only in
    # noise: letting the 40 identity coefficients chase them freely bent the face (up to 12 std
    # from the population, hollow cheeks: emma). A second pass from the regressor-refined fit
    # lets the identity move only a little (_GUIDED_SHAPE_PRIOR), with residuals per face size.
    target = mp68.targets(target, guide, mp68.FIT_REGIONS if guide_regions is None else guide_regions)
    return refine(bfm, fp3, target, regressor.stats.std, shape_prior=_GUIDED_SHAPE_PRIOR, per_face_size=True)


def decompose(projection: np.ndarray) -> dict:
    """Split P into scale (pixels per BFM unit), rotation (3x3, model -> camera with y up)
    and Euler angles (degrees: yaw about Y, pitch about X, roll about Z)."""
    A = projection[:, :3] * np.array([[1.0], [-1.0], [1.0]])  # undo the image y flip
    u, s, vt = np.linalg.svd(A)
    rot = u @ vt
    if np.linalg.det(rot) < 0:
        u[:, -1] *= -1
        rot = u @ vt
    scale = float(s.mean())
    yaw = np.degrees(np.arcsin(np.clip(-rot[2, 0], -1, 1)))
    pitch = np.degrees(np.arctan2(rot[2, 1], rot[2, 2]))
    roll = np.degrees(np.arctan2(rot[1, 0], rot[0, 0]))
    return {"scale_px_per_unit": scale, "rotation": rot, "yaw_deg": float(yaw), "pitch_deg": float(pitch), "roll_deg": float(roll)}
