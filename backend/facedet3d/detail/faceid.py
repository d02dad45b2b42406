"""FaceID(I_x) of Eq. 2: a FaceNet embedding (Schroff et al. 2015) of the photo's face.

facenet-pytorch's ``InceptionResnetV1`` (VGGFace2 weights) is used when its pretrained
weights are on the machine: they cannot be downloaded here, so the file is named by
``FACEDET3D_FACENET_WEIGHTS`` (or passed explicitly): a ``.safetensors`` file, or the
upstream ``20180402-114759-vggface2.pt`` state dict (loaded with ``weights_only=True``, which
never executes code). Classifier ("logits.*") entries are ignored.

Absent-embedding path: without weights (or without a photo), ``embed`` returns ``None`` and
DetP receives a zero vector with ``id_flag = 0``. DetP is trained with that path on half of
its samples, so it works either way; the shipped weights were trained on the procedural
corpus, whose identity codes are synthetic, so ``DetailPredictor`` feeds real embeddings only
to weights whose metadata says they were trained with FaceNet embeddings.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facedet3d.errors import FaceDet3DError

ENV = "FACEDET3D_FACENET_WEIGHTS"
CROP = 160


class FaceNetMissing(FaceDet3DError):
    """FaceNet weights were asked for but are not there."""


def weights_path(path: str | os.PathLike | None = None) -> Path | None:
    """The FaceNet weights file (argument, else $FACEDET3D_FACENET_WEIGHTS), or None."""
    p = path or os.environ.get(ENV)
    if not p:
        return None
    p = Path(p)
    if not p.is_file():
        raise FaceNetMissing(f"FaceNet weights {p} not found (set {ENV} to the InceptionResnetV1 VGGFace2 file)")
    return p


def load_facenet(path: str | os.PathLike):
    """InceptionResnetV1 (facenet-pytorch) with weights from a local file, eval mode."""
    import torch
    from facenet_pytorch import InceptionResnetV1

    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(p))
    else:
        sd = torch.load(str(p), map_location="cpu", weights_only=True)
    sd = {k: v for k, v in sd.items() if not k.startswith("logits.")}
    net = InceptionResnetV1(pretrained=None, classify=False)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if unexpected or [m for m in missing if not m.startswith("logits.")]:
        raise FaceNetMissing(f"{p.name} is not an InceptionResnetV1 state dict")
    return net.eval()


def face_crop(rgb: np.ndarray, box) -> np.ndarray:
    """(160, 160, 3) uint8 crop of the face box [x1, y1, x2, y2] (as facenet-pytorch's MTCNN
    returns it), margin 0, resized with area averaging."""
    import cv2

    x1, y1, x2, y2 = [int(round(v)) for v in box]
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        raise FaceDet3DError("face box lies outside the photo")
    return cv2.resize(rgb[y1:y2, x1:x2], (CROP, CROP), interpolation=cv2.INTER_AREA)


def embed(rgb: np.ndarray | None, box, path: str | os.PathLike | None = None) -> np.ndarray | None:
    """(512,) L2-normalised FaceNet embedding of the face in ``rgb`` (uint8 RGB photo) at
    ``box``, or None (absent-embedding path) when no weights are configured or no photo."""
    p = weights_path(path)
    if p is None or rgb is None:
        return None
    import torch

    net = load_facenet(p)
    x = (face_crop(rgb, box).astype(np.float32) - 127.5) / 128.0  # facenet-pytorch's fixed_image_standardization
    with torch.inference_mode():
        e = net(torch.from_numpy(x.transpose(2, 0, 1))[None])[0].numpy()
    return (e / max(np.linalg.norm(e), 1e-9)).astype(np.float32)
