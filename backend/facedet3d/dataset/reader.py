"""Reading a dataset: plain iteration over the tar shards, and a PyTorch IterableDataset.

    from facedet3d.dataset.reader import ShardDataset
    loader = torch.utils.data.DataLoader(ShardDataset("OUT", kinds=("photo",)), batch_size=16, num_workers=4)

Each sample: ``key``; ``rgb`` (3, H, W) uint8; ``depth`` (1, H, W) float32 metres (0 =
background); ``normals`` (3, H, W) float32 unit (x right, y up, z toward the camera);
``mask`` (1, H, W) bool; ``info`` (the sample's JSON: landmarks, AUs, pose, camera, labels).
Batching needs one output size (``--size`` with ``--crop face``, or photos of one size).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import torch


def shard_paths(root: str | Path) -> list[Path]:
    p = Path(root)
    if p.is_file():
        return [p]
    return sorted((p / "shards").glob("shard-*.tar"))


def iter_shard(path: str | Path):
    """Yields one dict of numpy arrays per sample of a tar shard, in shard order."""
    import cv2

    cur, parts = None, {}
    with tarfile.open(path, mode="r") as tf:
        for m in tf:
            if not m.isfile():
                continue
            key, _, ext = m.name.partition(".")
            if cur is not None and key != cur:
                yield _decode(cur, parts, cv2)
                parts = {}
            cur = key
            parts[ext] = tf.extractfile(m).read()
    if cur is not None:
        yield _decode(cur, parts, cv2)


def _decode(key: str, parts: dict, cv2) -> dict:
    rgb = cv2.imdecode(np.frombuffer(parts["jpg"], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    with np.load(io.BytesIO(parts["npz"]), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return {"key": key, "rgb": np.ascontiguousarray(rgb), "depth": arrays["depth"],
            "normals": arrays["normals"].astype(np.float32), "mask": arrays["mask"].astype(bool),
            "info": json.loads(parts["json"])}


class ShardDataset(torch.utils.data.IterableDataset):
    """The shards of a dataset folder (or a list of shard paths) as torch tensors; shards
    are split among DataLoader workers. ``kinds``: "photo" and/or "synth"."""

    def __init__(self, root, kinds=("photo", "synth")):
        super().__init__()
        self.paths = [Path(p) for p in root] if isinstance(root, (list, tuple)) else shard_paths(root)
        self.kinds = set(kinds)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        paths = self.paths if info is None else self.paths[info.id::info.num_workers]
        for p in paths:
            for s in iter_shard(p):
                if s["info"].get("kind", "photo") not in self.kinds:
                    continue
                yield {"key": s["key"], "rgb": torch.from_numpy(s["rgb"]).permute(2, 0, 1),
                       "depth": torch.from_numpy(s["depth"])[None], "normals": torch.from_numpy(s["normals"]).permute(2, 0, 1),
                       "mask": torch.from_numpy(s["mask"])[None], "info": s["info"]}
