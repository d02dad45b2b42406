"""The ICT -> BFM registration of ``rig.transfer`` as a reusable map of points.

``transfer.build_transfer`` registers the ICT skin onto the BFM mean (similarity on the
inner landmarks, a landmark thin-plate warp, two smoothed non-rigid ICP rounds) and keeps
only the resulting motion. The head parts (``rig.parts``) need the map itself, evaluated on
ICT vertices the face transfer never touches (back of the head, neck, eyeballs, teeth,
tongue, mouth socket), so steps 1-2 of that transfer live here (``register_skin``, used by
the transfer too) and ``register`` returns the warp as a callable.

Far from the face the thin-plate displacement is an extrapolation (r² log r kernel plus
an affine part that is 3-4 cm off at the back of the head), so beyond ``FADE_MM`` from the
warp's control points the non-rigid part fades out: the back of the head and the neck
follow the landmark similarity, which sets their size; the seam to the face is made exact
separately (``rig.parts``).

Units: BFM units (micrometres) in and out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RBFInterpolator
from scipy.spatial import cKDTree

from facedet3d.rig.geometry import opening_masks, project_by_side, side_labels, smoothstep, umeyama

NO_JAW = np.r_[17:68]  # landmarks used for alignment/warp (jaw contour 0..16 excluded)
ICP_SMOOTHING = (10.0, 1.0)  # TPS regularisation (mm²) of the two non-rigid ICP rounds

MM = 1e-3  # micrometres -> millimetres (the warp works in mm, as in the transfer)
FADE_MM = (25.0, 60.0)  # full spline within 25 mm of a control point, similarity only beyond 60 mm


@dataclass
class Registration:
    """similarity ``scale, rot, shift`` (ICT cm -> BFM um) and the non-rigid warp."""

    scale: float
    rot: np.ndarray
    shift: np.ndarray
    field: object  # scipy RBFInterpolator on mm (displacement, mm)
    controls_mm: np.ndarray  # (M, 3) control points of the final warp, mm (aligned ICT space)

    def similarity(self, ict_cm: np.ndarray) -> np.ndarray:
        """(P, 3) ICT centimetres -> BFM micrometres, rigid + scale only."""
        return np.asarray(ict_cm, np.float64) @ (self.scale * self.rot).T + self.shift

    def linear(self) -> np.ndarray:
        """(3, 3) the similarity's linear part (applied to ICT motion, cm -> um)."""
        return self.scale * self.rot

    def __call__(self, ict_cm: np.ndarray) -> np.ndarray:
        """(P, 3) ICT centimetres -> registered BFM micrometres (similarity + faded warp)."""
        al = self.similarity(ict_cm)
        p = al * MM
        dist, _ = cKDTree(self.controls_mm).query(p)
        w = 1.0 - smoothstep(dist, *FADE_MM)
        return al + w[:, None] * self.field(p) / MM


def _warp_field(src_mm: np.ndarray, dst_mm: np.ndarray, smoothing: np.ndarray | float) -> RBFInterpolator:
    """3D thin-plate spline (affine part included) mapping src -> dst as a displacement
    field, in millimetres (so ``smoothing`` is a plain mm² regulariser)."""
    return RBFInterpolator(src_mm, dst_mm - src_mm, kernel="thin_plate_spline",
                           smoothing=smoothing, degree=1)


@dataclass
class SkinFit:
    """The ICT skin registered onto the BFM mean (BFM units): what ``transfer`` and the head
    parts both start from."""

    scale: float
    rot: np.ndarray
    shift: np.ndarray
    aligned: np.ndarray  # (V, 3) ICT after the similarity
    warped: np.ndarray  # (V, 3) after the landmark warp and the ICP rounds (skin vertices)
    tris: np.ndarray  # ICT skin triangles
    field: object  # the final warp (mm displacement at aligned mm points)
    controls_mm: np.ndarray  # its control points
    in_hole: dict  # BFM opening masks (eye_r, eye_l, mouth)
    hole: np.ndarray  # (N,) any opening
    plab: np.ndarray  # BFM vertex side labels
    tlab: np.ndarray  # ICT triangle side labels
    landmark_residual_mm: float  # after the landmark warp alone


def register_skin(bfm, ict, say=lambda msg: None) -> SkinFit:
    """Steps 1-2 of the transfer: (1) similarity on the inner landmarks and a landmark-only
    thin-plate warp, exact at them; (2) regularised non-rigid ICP, BFM samples pulling the
    ICT skin onto the BFM surface (fixed seed: the same samples every run)."""
    target = bfm.mean.astype(np.float64)  # micrometres
    s, rot, t = umeyama(ict.neutral[ict.landmarks][NO_JAW], target[bfm.landmarks][NO_JAW])
    aligned = ict.neutral @ (s * rot).T + t  # ICT in BFM space, micrometres
    tris = ict.skin_triangles()
    skin = np.unique(tris)
    lm_src, lm_dst = aligned[ict.landmarks][NO_JAW] * MM, target[bfm.landmarks][NO_JAW] * MM
    warped = aligned.copy()
    field = _warp_field(lm_src, lm_dst, 0.0)
    warped[skin] = aligned[skin] + field(aligned[skin] * MM) / MM
    lm_bfm = target[bfm.landmarks]
    in_hole = opening_masks(target, lm_bfm)
    hole = np.logical_or.reduce(list(in_hole.values()))
    plab = side_labels(target, lm_bfm)
    # ICT triangles labelled in the warped space, where the ICT landmarks sit on the BFM's.
    tlab = side_labels(warped[tris].mean(1), lm_bfm)
    lm_residual_mm = float(project_by_side(target, plab, warped, tris, tlab)[3][~hole].mean() * MM)
    say("landmark warp done")
    rng = np.random.default_rng(0)
    src = lm_src
    for it, lam in enumerate(ICP_SMOOTHING):
        tri, bary, _, dist = project_by_side(target, plab, warped, tris, tlab)
        ok = np.flatnonzero(~hole & (dist < 10_000))
        pick = rng.choice(ok, size=min(1500, len(ok)), replace=False)
        pre = (bary[pick, :, None] * aligned[tris[tri[pick]]]).sum(1) * MM
        src = np.concatenate([lm_src, pre])
        dst = np.concatenate([lm_dst, target[pick] * MM])
        smooth = np.concatenate([np.zeros(len(lm_src)), np.full(len(pick), lam)])
        field = _warp_field(src, dst, smooth)
        warped[skin] = aligned[skin] + field(aligned[skin] * MM) / MM
        say(f"ICP round {it + 1} done")
    return SkinFit(s, rot, t, aligned, warped, tris, field, src, in_hole, hole, plab, tlab, lm_residual_mm)


def register(bfm, ict) -> Registration:
    """The transfer's registration (``register_skin``) as a map of points."""
    fit = register_skin(bfm, ict)
    return Registration(scale=fit.scale, rot=fit.rot, shift=fit.shift, field=fit.field, controls_mm=fit.controls_mm)
