"""Training pairs for DetP and patch pairs for the super-resolution.

A pair is two detail maps of ONE identity, (D_x, x) -> (D_y, y), as (1, 256, 256) float32
METRES with their AU vectors (17,) in [0, 1], expression parameters alpha_e (53,), age
features (8,), and the identity code.

Sources:
- ``CorpusPairs``: the procedural corpus (``corpus.py``), endless, deterministic per seed.
- ``FolderPairs``: real detail maps with AU labels, for users who have FDS/DECA-style maps.
  A folder holding a corpus built by ``facedet3d corpus`` (``index.json``, no
  ``labels.json``) is read as real pairs of the same clip (``real_corpus.CorpusReader``).
  Folder layout::

      ROOT/labels.json
      ROOT/<any name>.npy | .exr      one single-channel map each, float32 METRES along the
                                      normal, BFM UV layout (3DDFA BFM_UV), row 0 = v 1,
                                      any square size (resized to 256² by area averaging)

  ``labels.json`` maps each file name to its labels::

      {"s01_happy.npy": {"subject": "s01", "aus": {"6": 0.8, "12": 1.0}, "age": 34,
                          "faceid": "s01_faceid.npy"},          # optional (512,) embedding
       "s01_neutral.npy": {"subject": "s01", "aus": {}, "age": 34}, ...}

  AUs use the 0..1 scale (OpenFace 0..5 divided by 5). Pairs are drawn between two maps of
  the same subject (a subject needs at least two maps). Train with
  ``python -m facedet3d.detail.train --data ROOT ...`` (maps converted from DECA/FDS
  displacement outputs must be expressed in metres and unwrapped to this UV layout).

alpha_e (the target expression parameters of Eq. 2) is the vector of the 53 ARKit blendshape
weights of the AU vector (``facs.blendshape_weights`` with ICT's shape names; contempt is
one-sided there). The BFM 10-coefficient summary of ``facs.expression_params`` is not used:
it needs the transferred rig and is a linear image of the same weights.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from facedet3d.api.expressions import resolve_age
from facedet3d.errors import FaceDet3DError
from facedet3d.detail import corpus
from facedet3d.detail.nets import DETAIL_SIZE, ID_DIM, age_features


@functools.lru_cache(maxsize=1)
def shape_names() -> tuple[str, ...]:
    """The 53 ARKit blendshape names (ICT-FaceKit's expression list)."""
    from facedet3d.assets import ict

    return tuple(ict.expression_names())


@functools.lru_cache(maxsize=1)
def _au_matrix() -> np.ndarray:
    from facedet3d.rig.facs import au_to_blendshape

    return au_to_blendshape(shape_names())


def alpha_e(aus: np.ndarray, sides=(1.0, 1.0)) -> np.ndarray:
    """(53,) float32 blendshape weights for a (17,) AU vector (or (B, 17) -> (B, 53)).
    ``sides`` = (left, right) multipliers of the lateral shapes (``expressions.preset_sides``:
    contempt keeps one side)."""
    from facedet3d.api.expressions import side_multipliers

    w = np.clip(np.asarray(aus, np.float32) @ _au_matrix() * side_multipliers(shape_names(), sides), 0, 1)
    return w.astype(np.float32)


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    out = {}
    for k in samples[0]:
        out[k] = torch.from_numpy(np.stack([s[k] for s in samples]).astype(np.float32))
    return out


def _sample(d_x, d_y, x, y, age, emb, known, use_id):
    flag = np.float32(1.0 if (use_id and known) else 0.0)
    return {"d_x": d_x[None], "d_y": d_y[None], "x": x, "y": y, "alpha_x": alpha_e(x), "alpha_y": alpha_e(y),
            "age": age_features(age), "face_id": (emb if flag else np.zeros(ID_DIM, np.float32)),
            "id_flag": np.array([flag], np.float32), "id_target": emb,
            "id_known": np.array([float(known)], np.float32)}


class CorpusPairs:
    """Endless pairs from the procedural corpus.

    seed: corpus seed (identity i of batch k is drawn from a generator seeded by (seed, k)).
    size: map side (DETAIL_SIZE). p_same: share of pairs with y = x (identity mappings).
    p_id: share of samples whose identity code is given to DetP (the others take the
    absent-embedding path, so the network serves both).
    """

    def __init__(self, seed: int = 0, size: int = DETAIL_SIZE, p_same: float = 0.1, p_id: float = 0.5):
        self.seed, self.size, self.p_same, self.p_id = seed, size, p_same, p_id

    def batch(self, k: int, n: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, k])
        out = []
        for _ in range(n):
            ident = corpus.make_identity(int(rng.integers(1 << 31)))
            x = corpus.random_aus(rng)
            y = x.copy() if rng.random() < self.p_same else corpus.random_aus(rng)
            d_x = corpus.render(ident, x, self.size)
            d_y = corpus.render(ident, y, self.size)
            out.append(_sample(d_x, d_y, x, y, ident.age, ident.embedding, True, rng.random() < self.p_id))
        return collate(out)


def _read_map(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        m = np.load(path, allow_pickle=False)
    else:
        m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        if m is None:
            raise FaceDet3DError(f"cannot read detail map {path}")
    m = np.asarray(m, np.float32)
    if m.ndim == 3:
        m = m[..., 0]
    if m.shape[0] != m.shape[1]:
        raise FaceDet3DError(f"detail map {path.name} is not square: {m.shape}")
    return m


class FolderPairs:
    """Pairs from a folder of real detail maps with AU labels (format: module docstring)."""

    def __new__(cls, root: str | Path, seed: int = 0, size: int = DETAIL_SIZE):
        r = Path(root)
        if (r / "index.json").is_file() and not (r / "labels.json").is_file():
            from facedet3d.detail.real_corpus import CorpusReader

            return CorpusReader(r, seed=seed)  # a `facedet3d corpus` build: pairs within a clip
        return super().__new__(cls)

    def __init__(self, root: str | Path, seed: int = 0, size: int = DETAIL_SIZE):
        from facedet3d.rig.facs import normalise_aus

        self.root, self.seed, self.size = Path(root), seed, size
        lab_path = self.root / "labels.json"
        if not lab_path.is_file():
            raise FaceDet3DError(f"{lab_path} missing: see facedet3d.detail.data for the folder format")
        labels = json.loads(lab_path.read_text(encoding="utf-8"))
        self.items = []
        for name, lab in labels.items():
            emb = None
            if lab.get("faceid"):
                emb = np.load(self.root / lab["faceid"], allow_pickle=False).astype(np.float32).reshape(ID_DIM)
            self.items.append({"path": self.root / name, "subject": str(lab["subject"]),
                               "aus": normalise_aus({int(k): v for k, v in lab.get("aus", {}).items()}),
                               "age": resolve_age(lab.get("age", 0.0)), "emb": emb})
        self.by_subject: dict[str, list[int]] = {}
        for i, it in enumerate(self.items):
            self.by_subject.setdefault(it["subject"], []).append(i)
        self.subjects = [s for s, ids in self.by_subject.items() if len(ids) >= 2]
        if not self.subjects:
            raise FaceDet3DError(f"{self.root}: no subject has two or more labelled maps")
        self._cache: dict[int, np.ndarray] = {}

    def load(self, i: int) -> np.ndarray:
        if i not in self._cache:
            m = _read_map(self.items[i]["path"])
            self._cache[i] = cv2.resize(m, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return self._cache[i]

    def batch(self, k: int, n: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, k])
        out = []
        for _ in range(n):
            ids = self.by_subject[self.subjects[int(rng.integers(len(self.subjects)))]]
            a, b = rng.choice(ids, 2, replace=False)
            ia, ib = self.items[a], self.items[b]
            emb = ia["emb"] if ia["emb"] is not None else np.zeros(ID_DIM, np.float32)
            out.append(_sample(self.load(a), self.load(b), ia["aus"], ib["aus"], ia["age"], emb,
                               ia["emb"] is not None, True))
        return collate(out)


def sr_batch(k: int, n: int, seed: int = 0, patch: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR (n, 1, patch/4, patch/4), HR (n, 1, patch, patch)) corpus patch pairs, half from
    1024²-scale maps (SR 256 -> 1024) and half from 4096²-scale maps (1024 -> 4096)."""
    from facedet3d.detail.sr import patch_pair

    rng = np.random.default_rng([seed, 1_000_003, k])
    lrs, hrs = [], []
    for i in range(n):
        ident = corpus.make_identity(int(rng.integers(1 << 31)))
        size = 1024 if i % 2 == 0 else 4096
        # centre the patch on the face region (rows v in ~[0.3, 1], cols u in ~[0.15, 0.85])
        r0 = int(rng.uniform(0.0, 0.68) * size)
        c0 = int(rng.uniform(0.15, 0.85) * size) - patch // 2
        r0 -= r0 % 4
        c0 -= c0 % 4
        hr = corpus.render(ident, corpus.random_aus(rng), size, window=(r0, c0, patch, patch))
        lr, hr = patch_pair(hr)
        lrs.append(lr[None])
        hrs.append(hr[None])
    return torch.from_numpy(np.stack(lrs)), torch.from_numpy(np.stack(hrs))
