"""The Basel Face Model (BFM 2009, 3DDFA "no-neck" layout) as plain numpy arrays.

Units: the BFM's own units are micrometres (outer eye corners ~86,000 apart);
``METRES_PER_UNIT`` converts to metres. Model space: +X toward the subject's left (image
right when facing the camera), +Y up, +Z toward the camera.

Loaded once from the verified upstream files (``assets``) and cached as one ``.npz`` keyed
by the source checksums, so later loads take a few milliseconds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from facedet3d.assets import files as assets
from facedet3d.errors import AssetCorrupt

METRES_PER_UNIT = 1e-6  # BFM units are micrometres
N_SHAPE = 40
N_EXP = 10

_FILES = {
    "model": "3DDFA_V2/configs/bfm_noneck_v3.pkl",
    "tri": "3DDFA_V2/configs/tri.pkl",
    "uv": "3DDFA_V2/configs/BFM_UV.mat",
    "indices": "3DDFA_V2/configs/indices.npy",
}


@dataclass(frozen=True)
class BFM:
    """The morphable model. N = 38,365 vertices, F = 76,073 triangles.

    mean:        (N, 3) float32, BFM units (micrometres), model space.
    shape_basis: (N*3, 40) float32, rows interleaved x0,y0,z0,x1,... (3DDFA's ``w_shp``).
    exp_basis:   (N*3, 10) float32, same layout (3DDFA's ``w_exp``).
    faces:       (F, 3) int32, zero-based vertex indices, counter-clockwise seen from +Z.
    uv:          (N, 2) float32, texture coordinates in [0, 1], v = 1 at the top (forehead).
    landmarks:   (68,) int64 vertex indices of the iBUG 68 landmarks.
    """

    mean: np.ndarray
    shape_basis: np.ndarray
    exp_basis: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    landmarks: np.ndarray

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0]

    def vertices(self, shape: np.ndarray | None = None, exp: np.ndarray | None = None) -> np.ndarray:
        """(N, 3) float32 model-space vertices in BFM units for coefficient vectors
        ``shape`` (40,) and ``exp`` (10,) (either may be None = zeros)."""
        flat = self.mean.reshape(-1).astype(np.float32, copy=True)
        if shape is not None:
            flat += self.shape_basis @ np.asarray(shape, np.float32)
        if exp is not None:
            flat += self.exp_basis @ np.asarray(exp, np.float32)
        return flat.reshape(-1, 3)

    def landmark_uv(self) -> np.ndarray:
        """(68, 2) float64 UV positions of the iBUG-68 landmarks on this layout (v up)."""
        return self.uv[self.landmarks].astype(np.float64)

    def landmark_rows(self) -> np.ndarray:
        """(204,) row indices into the interleaved 3N vectors for the 68 landmarks' x,y,z."""
        return (self.landmarks[:, None] * 3 + np.arange(3)[None, :]).reshape(-1)


def _convert() -> dict[str, np.ndarray]:
    model = assets.load_pickle(assets.asset_path(_FILES["model"]))
    tri = np.asarray(assets.load_pickle(assets.asset_path(_FILES["tri"])))
    try:
        import scipy.io

        uv_full = scipy.io.loadmat(str(assets.asset_path(_FILES["uv"])))["UV"]
        indices = np.load(assets.asset_path(_FILES["indices"]), allow_pickle=False)
    except (ValueError, KeyError, OSError) as exc:
        raise AssetCorrupt(f"BFM UV files unreadable ({exc}); {assets.FETCH_HINT}") from None

    u = np.asarray(model["u"], np.float32).reshape(-1)
    keypoints = np.asarray(model["keypoints"]).reshape(-1)
    if tri.shape[0] == 3:
        tri = tri.T
    uv = np.asarray(uv_full, np.float32)[indices.astype(np.int64)]
    return {
        "mean": u.reshape(-1, 3),
        "shape_basis": np.asarray(model["w_shp"], np.float32),
        "exp_basis": np.asarray(model["w_exp"], np.float32),
        # 3DDFA's tri.pkl winds clockwise seen from the camera; flip so normals face +Z.
        "faces": np.ascontiguousarray(tri[:, [0, 2, 1]].astype(np.int32)),
        "uv": uv,
        "landmarks": (keypoints[::3] // 3).astype(np.int64),
    }


def _cache_key() -> str:
    digest = "".join(assets._entry(p).sha256[:8] for p in _FILES.values())
    return f"bfm_noneck_{digest}.npz"


@functools.lru_cache(maxsize=1)
def load_bfm() -> BFM:
    """Load (and cache) the BFM. Raises AssetsMissing / AssetCorrupt with a one-line fix."""
    for rel in _FILES.values():
        assets.asset_path(rel)  # verifies, or raises with the fetch hint
    return BFM(**assets.cached_arrays(assets.converted_dir() / _cache_key(), _convert))
