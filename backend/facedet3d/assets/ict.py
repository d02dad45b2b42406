"""ICT-FaceKit (MIT) face model files: fast OBJ parsing and the FACS expression shapes.

Source files (installed by ``assets.fetch(stages=("rig",))``, see ``asset_manifest.json``):
``ICT-FaceKit/FaceXModel/generic_neutral_mesh.obj`` (26,719 vertices, mostly quads), one OBJ
per expression shape (the full mesh in that expression, same vertex order) and
``vertex_indices.json`` (vertex index sets, the iBUG-68 landmarks, the expression list).

Units and axes: ICT coordinates are centimetres (outer eye corners ~8.4 apart), +Y up,
+Z out of the face; ``rig.py`` aligns them to the BFM with a similarity transform anyway.

Which 53 shapes: the mirror holds 57 expression OBJs = ARKit's 52 names minus ``tongueOut``
(ICT has none), with ``browInnerUp`` and ``cheekPuff`` split into ``_L``/``_R`` (+2), plus
ICT's own ``cheekRaiser_L/R`` and ``PupilDilate_L/R``. The 53 we use are exactly the list
``vertex_indices.json["expressions"]`` — the ICT model's own expression set, which is also
every file with an ARKit name. ``PupilDilate_*`` only moves the eyeball's pupil (the BFM
has no eyeballs) and ``cheekRaiser_*`` is not an ARKit name and not in ICT's set; AU6 is
driven through ``cheekSquint_*`` as in the published ARKit-FACS mappings (see facs.py).

The parsed arrays are cached once per asset version as one ``.npz`` in
``assets.converted_dir()`` keyed by the files' pinned checksums.
"""

from __future__ import annotations

import functools
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedet3d.assets import files as assets
from facedet3d.errors import AssetCorrupt

DIR = "ICT-FaceKit/FaceXModel"
NEUTRAL = f"{DIR}/generic_neutral_mesh.obj"
INDICES = f"{DIR}/vertex_indices.json"
N_VERTICES = 26719

# Geometry ranges of the ICT topology (from the ICT-FaceKit README table, "Face Model
# Topology"): vertex and polygon index ranges, half-open. Only these parts are skin.
FACE_VERTS = (0, 9409)  # "Face"
FACE_POLYS = (0, 9230)
HEAD_VERTS = (9409, 11248)  # "Head and Neck"
HEAD_POLYS = (9230, 11144)

_VTX_RE = re.compile(rb"^v[ \t]+([^\n\r]*)", re.MULTILINE)
_FACE_RE = re.compile(rb"^f[ \t]+([^\n\r]*)", re.MULTILINE)
_SLASH_RE = re.compile(rb"/[0-9]*(/[0-9]*)?")


def read_obj_vertices(path: str | Path) -> np.ndarray:
    """(V, 3) float64 vertex positions of an OBJ file (``v`` lines only, in file order).

    One regex pass collects the ``v`` lines and numpy parses the joined numbers, so a
    26k-vertex file takes a few tens of milliseconds instead of a Python loop per line.
    """
    data = Path(path).read_bytes()
    lines = _VTX_RE.findall(data)
    # Some exporters append vertex colours (v x y z r g b): keep the first three columns.
    ncol = len(lines[0].split()) if lines else 3
    flat = np.array(b" ".join(lines).split(), dtype=np.float64)
    if flat.size != len(lines) * ncol or ncol < 3:
        raise AssetCorrupt(f"{Path(path).name}: malformed vertex lines; {assets.FETCH_HINT}")
    return flat.reshape(len(lines), ncol)[:, :3]


def read_obj_polygons(path: str | Path) -> list[np.ndarray]:
    """The ``f`` lines of an OBJ as a list of zero-based vertex-index arrays (3 or 4 long;
    texture/normal indices after '/' are dropped), in file order = polygon index."""
    data = Path(path).read_bytes()
    out = []
    for line in _FACE_RE.findall(data):
        idx = np.array(_SLASH_RE.sub(b"", line).split(), dtype=np.int64)
        out.append(idx - 1 if idx.min() > 0 else idx + N_VERTICES)  # negative = relative
    return out


def triangulate(polys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Fan-triangulate polygons. Returns (T, 3) int64 triangles and (T,) int64 source
    polygon index (so a triangle can be traced back to its geometry part)."""
    tris, src = [], []
    for p, idx in enumerate(polys):
        for k in range(1, len(idx) - 1):
            tris.append((idx[0], idx[k], idx[k + 1]))
            src.append(p)
    return np.asarray(tris, np.int64), np.asarray(src, np.int64)


@dataclass(frozen=True)
class ICTModel:
    """The ICT neutral head and its 53 expression shapes.

    neutral:    (V, 3) float64 neutral vertices, centimetres, V = 26,719.
    triangles:  (T, 3) int64 triangles of the whole head (quads fan-split).
    tri_poly:   (T,) int64 source polygon index of each triangle (geometry part lookup).
    names:      (K,) str ARKit-style shape names, K = 53, ICT's ``expressions`` order.
    deltas:     (K, V, 3) float32 displacement of each shape from the neutral, centimetres.
    landmarks:  (68,) int64 iBUG-68 landmark vertex ids (``idx_to_landmark_verts``).
    """

    neutral: np.ndarray
    triangles: np.ndarray
    tri_poly: np.ndarray
    names: np.ndarray
    deltas: np.ndarray
    landmarks: np.ndarray

    def skin_triangles(self) -> np.ndarray:
        """(T', 3) triangles of the skin surface: the "Face" and "Head and Neck" parts (not
        the mouth/eye sockets, teeth, gums, eyeballs or lacrimal/occlusion shells)."""
        p = self.tri_poly
        keep = (p >= FACE_POLYS[0]) & (p < HEAD_POLYS[1])
        return self.triangles[keep]

    def face_triangles(self) -> np.ndarray:
        """(T'', 3) triangles of the "Face" part only (the part that carries expressions)."""
        return self.triangles[(self.tri_poly >= FACE_POLYS[0]) & (self.tri_poly < FACE_POLYS[1])]


def vertex_index_sets(path: str | Path | None = None) -> dict:
    """``vertex_indices.json`` as a dict of lists (``idx_to_landmark_verts``: 68 ids in iBUG
    order, ``expressions``: the 53 shape names, ``idx_to_rigid_verts``, ...)."""
    path = Path(path) if path is not None else assets.asset_path(INDICES)
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise AssetCorrupt(f"{Path(path).name} unreadable ({exc}); {assets.FETCH_HINT}") from None


def landmark_vertices(sets: dict | None = None) -> np.ndarray:
    """(68,) int64 ICT vertex ids of the iBUG-68 landmarks, in iBUG order."""
    sets = vertex_index_sets() if sets is None else sets
    lm = np.asarray(sets["idx_to_landmark_verts"], np.int64)
    if lm.shape != (68,):
        raise AssetCorrupt(f"vertex_indices.json: expected 68 landmarks, got {lm.shape}")
    return lm


def expression_names(sets: dict | None = None) -> list[str]:
    """The 53 expression shape names (ICT's ``expressions`` list; see the module docstring)."""
    sets = vertex_index_sets() if sets is None else sets
    return list(sets["expressions"])


def source_files() -> list[str]:
    """Manifest paths this module reads (neutral, index file, the 53 shapes)."""
    return [NEUTRAL, INDICES] + [f"{DIR}/{n}.obj" for n in expression_names()]


def cache_key() -> str:
    """Short digest of the pinned checksums of every file read (changes with the assets)."""
    import hashlib

    h = hashlib.sha256()
    for rel in sorted(source_files()):
        h.update(assets._entry(rel).sha256.encode())
    return h.hexdigest()[:16]


def _convert() -> dict[str, np.ndarray]:
    sets = vertex_index_sets()
    names = expression_names(sets)
    neutral_path = assets.asset_path(NEUTRAL)
    neutral = read_obj_vertices(neutral_path)
    if neutral.shape != (N_VERTICES, 3):
        raise AssetCorrupt(f"ICT neutral: expected {N_VERTICES} vertices, got {neutral.shape[0]}")
    tris, src = triangulate(read_obj_polygons(neutral_path))
    paths = [assets.asset_path(f"{DIR}/{n}.obj") for n in names]
    # Regex and float parsing release the GIL for part of the work; threads help a little.
    with ThreadPoolExecutor(max_workers=8) as pool:
        shapes = list(pool.map(read_obj_vertices, paths))
    deltas = np.empty((len(names), N_VERTICES, 3), np.float32)
    for k, (n, v) in enumerate(zip(names, shapes)):
        if v.shape != neutral.shape:
            raise AssetCorrupt(f"ICT {n}.obj: {v.shape[0]} vertices, expected {N_VERTICES}")
        deltas[k] = v - neutral
    return {
        "neutral": neutral,
        "triangles": tris,
        "tri_poly": src,
        "names": np.asarray(names),
        "deltas": deltas,
        "landmarks": landmark_vertices(sets),
    }


@functools.lru_cache(maxsize=1)
def load_ict() -> ICTModel:
    """Load (and cache as .npz) the ICT neutral, triangles, landmarks and 53 shape deltas.
    Raises AssetsMissing / AssetCorrupt with a one-line fix (``facedet3d assets fetch``)."""
    for rel in source_files():
        assets.asset_path(rel)  # verifies, or raises with the fetch hint
    return ICTModel(**assets.cached_arrays(assets.converted_dir() / f"ict_facekit_{cache_key()}.npz", _convert))
