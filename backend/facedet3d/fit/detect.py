"""Face detection with facenet-pytorch's MTCNN, and choosing which face to fit.

``FaceDetector`` runs MTCNN (facenet-pytorch's P-, R- and O-net, driven by our own numpy/cv2
implementation of the cascade, see ``FaceDetector._mtcnn``) on a downscaled copy of the photo
and maps the boxes and 5 landmarks back to original photo pixels. ``select_face`` applies the user's choice
(largest face, the N-th largest, or the face under a ``--box``).

Coordinates: continuous pixel coordinates of the ORIGINAL photo (after EXIF orientation), x to
the right, y down, with pixel centres at integers (pixel (0, 0) covers [-0.5, 0.5]^2). Boxes
are ``[x1, y1, x2, y2]``; MTCNN boxes are not clipped to the image (a face cut by the border
keeps its full extent, which the cropper pads).

Weights: the three MTCNN state dicts ship inside the facenet_pytorch wheel
(``facenet_pytorch/data/{p,r,o}net.pt``). facenet_pytorch itself loads them with a bare
``torch.load``; we build the nets with ``pretrained=False`` and load the state dicts ourselves
with ``torch.load(weights_only=True)``, so loading can never execute code, and nothing is
downloaded.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from facedet3d.errors import AssetsMissing
from facedet3d.fit.select import (  # noqa: F401  (re-exported: detection and face choice go together)
    MIN_FACE_PX, SMALL_FACE_PX, Detection, select_face, small_face_warning)
from facedet3d.fit.photo import downscale

DETECT_MAX_SIDE = 640
"""Longer side (px) of the copy MTCNN runs on."""

MTCNN_MIN_FACE = 20
"""MTCNN's smallest face (px) in the downscaled copy: 20 px of 640 is ~3 % of the longer side."""

MTCNN_THRESHOLDS = (0.6, 0.7, 0.8)
"""P-, R-, O-net score thresholds. The last is above facenet's default (0.7) to drop
face-like clutter; real faces on our photos score > 0.99."""

MTCNN_FACTOR = 0.709
"""Image-pyramid scale step (the MTCNN paper's value)."""


def _weights_dir() -> Path:
    import facenet_pytorch

    return Path(facenet_pytorch.__file__).resolve().parent / "data"


def _load_net(cls, filename: str, torch):
    path = _weights_dir() / filename
    if not path.is_file():
        raise AssetsMissing(f"MTCNN weights {path} are missing; reinstall facenet-pytorch "
                            f"(pip install --no-deps facenet-pytorch)")
    net = cls(pretrained=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class FaceDetector:
    """MTCNN face detector. Build once, call many times.

    ``detector(rgb)`` takes an (H, W, 3) uint8 sRGB array (``Photo.rgb``) and returns every
    face found as a list of Detection in original pixels, largest box area first.

    device: "cuda" / "cpu" / torch.device; default CUDA when available, else CPU.
    max_side: the photo is shrunk (cv2.INTER_AREA) so its longer side is at most this many
        pixels before detection; boxes are mapped back.
    num_threads: torch intra-op threads for CPU inference; None leaves torch's setting alone
        (torch already uses one thread per core).
    """

    def __init__(self, device=None, max_side: int = DETECT_MAX_SIDE,
                 min_face_size: int = MTCNN_MIN_FACE,
                 thresholds: Sequence[float] = MTCNN_THRESHOLDS,
                 factor: float = MTCNN_FACTOR, num_threads: int | None = None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
            from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

        self._torch = torch
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.max_side = int(max_side)
        self.min_face_size = int(min_face_size)
        self.thresholds = [float(t) for t in thresholds]
        self.factor = float(factor)
        self.pnet = _load_net(PNet, "pnet.pt", torch).to(self.device)
        self.rnet = _load_net(RNet, "rnet.pt", torch).to(self.device)
        self.onet = _load_net(ONet, "onet.pt", torch).to(self.device)

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError("FaceDetector expects an (H, W, 3) uint8 RGB array")
        h, w = rgb.shape[:2]
        small, _ = downscale(rgb, self.max_side)
        sh, sw = small.shape[:2]
        if min(sh, sw) < 12:  # MTCNN's smallest window; nothing can be found
            return []
        sx, sy = sw / w, sh / h

        with warnings.catch_warnings(), self._torch.inference_mode():
            warnings.simplefilter("ignore")
            boxes, points = self._mtcnn(np.ascontiguousarray(small))

        dets = []
        for b, p in zip(boxes, points):
            if not np.all(np.isfinite(b)) or not np.all(np.isfinite(p)):
                continue
            # small -> original with pixel centres at integers: x = (x_s + 0.5) / s - 0.5
            box = np.array([(b[0] + 0.5) / sx - 0.5, (b[1] + 0.5) / sy - 0.5,
                            (b[2] + 0.5) / sx - 0.5, (b[3] + 0.5) / sy - 0.5], np.float32)
            lm = np.stack([(p[:, 0] + 0.5) / sx - 0.5, (p[:, 1] + 0.5) / sy - 0.5], axis=1)
            dets.append(Detection(box=box, score=float(b[4]), landmarks5=lm.astype(np.float32)))
        dets.sort(key=lambda d: d.area, reverse=True)
        return dets

    # ------------------------------------------------------------------ MTCNN pipeline
    # The three cascaded stages of Zhang et al. 2016 as facenet_pytorch runs them (same nets,
    # NMS and box calibration), but with the image pyramid and the per-candidate crops done by
    # cv2 on uint8 arrays and batched into one forward per stage; facenet's version resamples
    # every candidate with torch's area interpolation one at a time (20-30 % slower on this
    # CPU at 640 px). Candidates reaching past the border are zero-padded as
    # in the original MTCNN (facenet clips them instead). Box coordinates follow facenet
    # (MATLAB heritage, ~1-based); the landmark formula turns them 0-based.

    def _net_input(self, batch_hwc: np.ndarray):
        torch = self._torch
        x = torch.from_numpy(batch_hwc).to(self.device).permute(0, 3, 1, 2).float()
        return x.sub_(127.5).mul_(0.0078125)

    def _mtcnn(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """img (H, W, 3) uint8 RGB -> boxes (N, 5) [x1, y1, x2, y2, score], points (N, 5, 2)."""
        h, w = img.shape[:2]
        t1, t2, t3 = self.thresholds
        empty = (np.zeros((0, 5)), np.zeros((0, 5, 2)))

        # Stage 1: P-net over the image pyramid.
        m = 12.0 / self.min_face_size
        minl = min(h, w) * m
        scale = m
        found = []
        while minl >= 12:
            hs, ws = int(h * scale + 1), int(w * scale + 1)
            level = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA)
            reg, prob = self.pnet(self._net_input(level[None]))
            cand = _generate_boxes(reg[0].cpu().numpy(), prob[0, 1].cpu().numpy(), scale, t1)
            if len(cand):
                found.append(cand[_nms(cand[:, :4], cand[:, 4], 0.5, "union")])
            scale *= self.factor
            minl *= self.factor
        if not found:
            return empty
        boxes = np.concatenate(found)
        boxes = boxes[_nms(boxes[:, :4], boxes[:, 4], 0.7, "union")]
        regw = boxes[:, 2] - boxes[:, 0]
        regh = boxes[:, 3] - boxes[:, 1]
        calibrated = np.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                               boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh,
                               boxes[:, 4]], axis=1)
        boxes = _rerec(calibrated)

        # Stage 2: R-net on 24x24 crops.
        reg, prob = self._batched(self.rnet, _crops(img, boxes, 24))
        keep = prob[:, 1] > t2
        boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
        reg = reg[keep]
        if not len(boxes):
            return empty
        pick = _nms(boxes[:, :4], boxes[:, 4], 0.7, "union")
        boxes = _rerec(_bbreg(boxes[pick], reg[pick]))

        # Stage 3: O-net on 48x48 crops -> final boxes and 5 landmarks.
        reg, lm, prob = self._batched(self.onet, _crops(img, boxes, 48))
        keep = prob[:, 1] > t3
        boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
        reg, lm = reg[keep], lm[keep]
        if not len(boxes):
            return empty
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        px = bw[:, None] * lm[:, :5] + boxes[:, 0:1] - 1
        py = bh[:, None] * lm[:, 5:10] + boxes[:, 1:2] - 1
        points = np.stack([px, py], axis=2)
        boxes = _bbreg(boxes, reg)
        pick = _nms(boxes[:, :4], boxes[:, 4], 0.7, "min")
        return boxes[pick], points[pick]

    def _batched(self, net, crops: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, ...]:
        outs = []
        for i in range(0, len(crops), chunk):
            outs.append([o.float().cpu().numpy() for o in net(self._net_input(crops[i:i + chunk]))])
        return tuple(np.concatenate(parts) for parts in zip(*outs))


def _generate_boxes(reg: np.ndarray, prob: np.ndarray, scale: float, thresh: float) -> np.ndarray:
    """P-net maps -> candidate boxes (n, 9): x1, y1, x2, y2, score, 4 regression offsets."""
    ys, xs = np.nonzero(prob >= thresh)
    if len(ys) == 0:
        return np.zeros((0, 9))
    q1x = np.floor((2.0 * xs + 1) / scale)
    q1y = np.floor((2.0 * ys + 1) / scale)
    q2x = np.floor((2.0 * xs + 12) / scale)
    q2y = np.floor((2.0 * ys + 12) / scale)
    return np.stack([q1x, q1y, q2x, q2y, prob[ys, xs], *reg[:, ys, xs]], axis=1).astype(np.float64)


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """Greedy NMS; overlap is IoU ("union") or intersection / smaller area ("min")."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = iw * ih
        if method == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _rerec(boxes: np.ndarray) -> np.ndarray:
    """Make boxes square (side = the longer side), keeping their centres."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _bbreg(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def _crops(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Cut each box (1-based inclusive, truncated) out of img, zero-padded, resized to size^2."""
    h, w = img.shape[:2]
    ib = np.trunc(boxes[:, :4]).astype(np.int64)
    out = np.zeros((len(ib), size, size, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(ib):
        x0, y0 = x1 - 1, y1 - 1  # 0-based top-left
        bw, bh = x2 - x0, y2 - y0
        if bw <= 0 or bh <= 0:
            continue
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x2, w), min(y2, h)
        if sx1 <= sx0 or sy1 <= sy0:
            continue
        if sx0 == x0 and sy0 == y0 and sx1 == x2 and sy1 == y2:
            patch = img[sy0:sy1, sx0:sx1]
        else:
            patch = np.zeros((bh, bw, 3), np.uint8)
            patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def default_detector() -> FaceDetector:
    """A process-wide FaceDetector (built on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = FaceDetector()
    return _DEFAULT


_DEFAULT: FaceDetector | None = None

__all__ = ["Detection", "FaceDetector", "select_face", "default_detector", "DETECT_MAX_SIDE",
           "MIN_FACE_PX", "SMALL_FACE_PX", "small_face_warning"]
