"""A fitted face posed with AUs: the target AU vector of a preset and/or AU items, and the
posed vertices (the FaceAsset's neutral mesh plus its rig's shapes, metres)."""

from __future__ import annotations

import numpy as np

from facedet3d.errors import BadRequest



def posed_vertices(asset, au_vector: np.ndarray, unilateral: str | None = None) -> np.ndarray:
    """(N,3) metres: the asset's neutral mesh plus its rig's shapes weighted by the AUs."""
    from facedet3d.rig import facs

    if asset.rig is None:
        raise BadRequest("this FaceAsset has no rig.npz; fit it again with the current `facedet3d fit`")
    names = [str(n) for n in asset.rig["names"]]
    w = facs.blendshape_weights(au_vector, names, unilateral)
    return asset.vertices + np.tensordot(w.astype(np.float32), asset.rig["blendshapes"], axes=1)


def posed_head(asset, au_vector: np.ndarray, unilateral: str | None = None) -> dict[str, np.ndarray] | None:
    """name -> (M,3) metres: the asset's head parts posed with the same AUs (None when the
    FaceAsset has no head.npz)."""
    from facedet3d.rig import facs, head

    if asset.head is None or asset.rig is None:
        return None
    w = facs.blendshape_weights(au_vector, [str(n) for n in asset.rig["names"]], unilateral)
    return head.posed_parts(asset.head, w)


def target_aus(au_items: list[str] | None, preset: str | None) -> tuple[np.ndarray, str | None]:
    """AU vector (17,) from a preset and/or ``12=0.8`` items (items override the preset)."""
    from facedet3d.rig import facs

    vec = np.zeros(len(facs.AU_IDS), np.float32)
    unilateral = None
    try:
        if preset:
            if preset not in facs.PRESETS:
                raise BadRequest(f"unknown preset {preset!r}; choose from {', '.join(facs.PRESETS)}")
            vec = facs.preset_aus(preset).astype(np.float32)
            unilateral = facs.CONTEMPT_SIDE if preset == "contempt" else None
        if au_items:
            for au, value in facs.parse_aus(au_items).items():
                vec[facs.AU_IDS.index(au)] = value
        return facs.normalise_aus(vec), unilateral
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
