"""A fitted face posed with AUs: the target AU vector of a preset and/or AU items, and the
posed vertices (the FaceAsset's neutral mesh plus its rig's shapes, metres)."""

from __future__ import annotations

import numpy as np

from facedet3d.errors import BadRequest
from facedet3d.rig import facs


def posed_vertices(asset, au_vector: np.ndarray, sides=facs.BOTH_SIDES) -> np.ndarray:
    """(N,3) metres: the asset's neutral mesh plus its rig's shapes weighted by the AUs
    (``sides``: (left, right) multipliers of the lateral shapes, see ``facs.preset_sides``)."""
    if asset.rig is None:
        raise BadRequest("this FaceAsset has no rig.npz; fit it again with the current `facedet3d fit`")
    names = [str(n) for n in asset.rig["names"]]
    w = facs.blendshape_weights(au_vector, names, sides)
    return asset.vertices + np.tensordot(w.astype(np.float32), asset.rig["blendshapes"], axes=1)


def target_aus(au_items: list[str] | None, preset: str | None) -> tuple[np.ndarray, tuple[float, float]]:
    """((17,) AUs, (left, right) sides) from a preset and/or ``12=0.8`` items (items override
    the preset); bad input is a one-line BadRequest."""
    try:
        return facs.target_aus(au_items, preset)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
