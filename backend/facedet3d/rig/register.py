"""The ICT -> BFM registration of ``rig.transfer`` as a reusable map of points.

``transfer.build_transfer`` registers the ICT skin onto the BFM mean (similarity on the
inner landmarks, a landmark thin-plate warp, two smoothed non-rigid ICP rounds) and keeps
only the resulting motion. The head parts (``rig.parts``) need the map itself, evaluated on
ICT vertices the face transfer never touches (back of the head, neck, eyeballs, teeth,
tongue, mouth socket), so this module repeats steps 1-2 of that transfer with the same
constants and the same random seed — it reproduces the transfer's warped ICT skin — and
returns the warp as a callable.

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
from scipy.spatial import cKDTree

from facedet3d.rig.geometry import opening_masks, project_by_side, side_labels, smoothstep, umeyama
from facedet3d.rig.transfer import ICP_SMOOTHING, NO_JAW, _warp_field

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


def register(bfm, ict) -> Registration:
    """Repeat ``transfer.build_transfer`` steps 1-2 (see there) and return the final map."""
    target = bfm.mean.astype(np.float64)
    s, rot, t = umeyama(ict.neutral[ict.landmarks][NO_JAW], target[bfm.landmarks][NO_JAW])
    aligned = ict.neutral @ (s * rot).T + t
    tris = ict.skin_triangles()
    skin = np.unique(tris)
    lm_src, lm_dst = aligned[ict.landmarks][NO_JAW] * MM, target[bfm.landmarks][NO_JAW] * MM
    warped = aligned.copy()
    field = _warp_field(lm_src, lm_dst, 0.0)
    warped[skin] = aligned[skin] + field(aligned[skin] * MM) / MM
    lm_bfm = target[bfm.landmarks]
    hole = np.logical_or.reduce(list(opening_masks(target, lm_bfm).values()))
    plab = side_labels(target, lm_bfm)
    tlab = side_labels(warped[tris].mean(1), lm_bfm)
    rng = np.random.default_rng(0)  # the transfer's seed: the same samples, the same warp
    src = lm_src
    for lam in ICP_SMOOTHING:
        tri, bary, _, dist = project_by_side(target, plab, warped, tris, tlab)
        ok = np.flatnonzero(~hole & (dist < 10_000))
        pick = rng.choice(ok, size=min(1500, len(ok)), replace=False)
        pre = (bary[pick, :, None] * aligned[tris[tri[pick]]]).sum(1) * MM
        src = np.concatenate([lm_src, pre])
        dst = np.concatenate([lm_dst, target[pick] * MM])
        smooth = np.concatenate([np.zeros(len(lm_src)), np.full(len(pick), lam)])
        field = _warp_field(src, dst, smooth)
        warped[skin] = aligned[skin] + field(aligned[skin] * MM) / MM
    return Registration(scale=s, rot=rot, shift=t, field=field, controls_mm=src)
