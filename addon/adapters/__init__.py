"""Scene adapters: FaceData -> Blender datablocks (mesh, shape keys, drivers, material,
displacement, camera, animation). Model space (+Y up, +Z toward the camera) maps to
Blender (+Z up) by ``to_blender``: (x, y, z) -> (x, -z, y)."""

import numpy as np

# model -> Blender world rotation (+90 degrees about X)
MODEL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def to_blender(points: np.ndarray) -> np.ndarray:
    """(..., 3) model-space points/offsets -> Blender axes (same units)."""
    p = np.asarray(points, np.float32)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], -1)
