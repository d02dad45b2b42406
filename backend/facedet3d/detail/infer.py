"""The one detail-inference API (CLI, add-on and server all call ``DetailPredictor``).

    pred = DetailPredictor()                       # loads the shipped weights once
    d_y = pred(detail_input, source_aus, target_aus, age=40, size=1024)

Maps are float32 METRES along the normal, BFM UV layout, row 0 = top (v = 1). DetP runs at
256² (the input is area-resampled to 256²); 1024² is one x4 super-resolution pass, 4096² two
(the second tiled, so memory stays bounded; Eq. 20).

Backends: ``"torch"`` (CUDA when present, else CPU), ``"onnx"`` (onnxruntime; the models are
exported once into the cache by ``export_onnx``, the build step), ``"auto"`` = torch on
CUDA, else onnxruntime when importable, else torch on CPU. All share ``__call__``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np

from facedet3d.api.expressions import BOTH_SIDES, DEFAULT_AGE_YEARS, normalise_aus
from facedet3d.errors import FaceDet3DError
from facedet3d.detail.nets import AGE_DIM, DETAIL_SIZE, ID_DIM, age_features

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DETP_FILE, SR_FILE = "detp.safetensors", "sr.safetensors"
SIZES = (256, 1024, 4096)
_INPUTS = ("d_x", "x", "y", "alpha_e", "age", "face_id", "id_flag")


class WeightsMissing(FaceDet3DError):
    exit_code = 3


def _load(cls, path: Path):
    """Build ``cls`` from the config in the safetensors metadata and load its tensors
    (safetensors only: no pickle). Returns (net, metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from facedet3d.detail.nets import build

    if not path.is_file():
        raise WeightsMissing(f"detail weights {path} missing (train them: python -m facedet3d.detail.train --out {path.parent})")
    with safe_open(str(path), "pt") as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    net = build(cls, **meta.get("config", {}))
    net.load_state_dict(load_file(str(path)), strict=True)
    return net.eval(), meta


def _sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def onnx_paths(weights_dir: Path | None = None) -> tuple[Path, Path]:
    """Where the build step puts the ONNX models (cache, keyed by the weights' checksums)."""
    from facedet3d.assets import files as assets

    wd = Path(weights_dir or WEIGHTS_DIR)
    d = assets.cache_root() / "detail_onnx"
    return d / f"detp_{_sha12(wd / DETP_FILE)}.onnx", d / f"sr_{_sha12(wd / SR_FILE)}.onnx"


def export_onnx(weights_dir: Path | None = None, out_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Build step: export DetP (batch 1..N, 256²) and the SR network (any H, W) to ONNX."""
    import torch

    from facedet3d.detail.nets import DetP
    from facedet3d.detail.sr import RCAN

    wd = Path(weights_dir or WEIGHTS_DIR)
    p_detp, p_sr = onnx_paths(wd)
    if out_dir is not None:
        p_detp, p_sr = Path(out_dir) / p_detp.name, Path(out_dir) / p_sr.name
    p_detp.parent.mkdir(parents=True, exist_ok=True)
    detp, _ = _load(DetP, wd / DETP_FILE)
    sr, _ = _load(RCAN, wd / SR_FILE)
    B = 1
    dummy = (torch.zeros(B, 1, DETAIL_SIZE, DETAIL_SIZE), torch.zeros(B, 17), torch.zeros(B, 17), torch.zeros(B, 53),
             torch.zeros(B, AGE_DIM), torch.zeros(B, ID_DIM), torch.zeros(B, 1))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = p_detp.with_suffix(f".{os.getpid()}.tmp")
        torch.onnx.export(detp, dummy, str(tmp), input_names=list(_INPUTS), output_names=["d_y"],
                          dynamic_axes={k: {0: "batch"} for k in (*_INPUTS, "d_y")}, opset_version=17, dynamo=False)
        os.replace(tmp, p_detp)
        tmp = p_sr.with_suffix(f".{os.getpid()}.tmp")
        torch.onnx.export(sr, (torch.zeros(1, 1, 64, 64),), str(tmp), input_names=["lr"], output_names=["hr"],
                          dynamic_axes={"lr": {0: "batch", 2: "h", 3: "w"}, "hr": {0: "batch", 2: "h4", 3: "w4"}},
                          opset_version=17, dynamo=False)
        os.replace(tmp, p_sr)
    return p_detp, p_sr


def resample(detail: np.ndarray, size: int) -> np.ndarray:
    """Resize a detail map to size² (area averaging down, cubic up: no facets in the relief)."""
    from facedet3d.imaging.maps import resize_square

    return resize_square(np.asarray(detail), size, enlarge=cv2.INTER_CUBIC)


class DetailPredictor:
    """DetP + super-resolution with loaded weights; construct once, call many times."""

    def __init__(
        self,
        weights_dir: str | os.PathLike | None = None,  # folder with detp/sr .safetensors (default: shipped)
        backend: str = "auto",  # "auto", "torch" or "onnx"
        threads: int | None = None,  # CPU threads (torch / onnxruntime); None = library default
        tile: int = 256,  # SR tile side in input texels for maps larger than this
        onnx_dir: str | os.PathLike | None = None,  # where the ONNX models are / go (default: cache)
    ):
        self.weights_dir = Path(weights_dir or WEIGHTS_DIR)
        import torch

        from facedet3d.detail.nets import DetP
        from facedet3d.detail.sr import RCAN

        self.detp, self.meta = _load(DetP, self.weights_dir / DETP_FILE)
        self.sr, _ = _load(RCAN, self.weights_dir / SR_FILE)
        self.tile = tile
        self.margin = int(np.ceil(self.sr.radius / 8.0) * 8)
        # identity embeddings only for weights trained with real ones; the status says which
        source = self.meta.get("faceid_source", "unknown")
        self.uses_faceid = source in ("folder", "dlib")
        self.identity_input = (f"identity embedding: {source}" if self.uses_faceid
                               else f"no identity embedding (weights trained with {source})")
        if backend == "auto":
            backend = "torch" if torch.cuda.is_available() else "onnx"
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                backend = "torch"
        if backend not in ("torch", "onnx"):
            raise ValueError(f"unknown detail backend {backend!r}")
        self.backend = backend
        if threads:
            torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if backend == "torch":
            self.detp.to(self.device)
            self.sr.to(self.device)
        else:
            import onnxruntime as ort

            p_detp, p_sr = onnx_paths(self.weights_dir)
            if onnx_dir is not None:
                p_detp, p_sr = Path(onnx_dir) / p_detp.name, Path(onnx_dir) / p_sr.name
            if not (p_detp.is_file() and p_sr.is_file()):
                p_detp, p_sr = export_onnx(self.weights_dir, onnx_dir)
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            prov = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
            self.s_detp = ort.InferenceSession(str(p_detp), opts, providers=prov)
            self.s_sr = ort.InferenceSession(str(p_sr), opts, providers=prov)

    # -- the two networks on arrays ---------------------------------------------------------
    def run_detp(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Raw DetP on batched float32 inputs (names as ``nets.DetP.forward``) -> (B,1,256,256)."""
        if self.backend == "onnx":
            return self.s_detp.run(None, {k: np.ascontiguousarray(feeds[k], np.float32) for k in _INPUTS})[0]
        import torch

        with torch.inference_mode():
            t = [torch.from_numpy(np.ascontiguousarray(feeds[k], np.float32)).to(self.device) for k in _INPUTS]
            return self.detp(*t).float().cpu().numpy()

    def run_sr(self, lr: np.ndarray) -> np.ndarray:
        """Raw x4 SR of a (1, 1, h, w) float32 array -> (1, 1, 4h, 4w)."""
        if self.backend == "onnx":
            return self.s_sr.run(None, {"lr": np.ascontiguousarray(lr, np.float32)})[0]
        import torch

        with torch.inference_mode():
            return self.sr(torch.from_numpy(np.ascontiguousarray(lr, np.float32)).to(self.device)).float().cpu().numpy()

    def super_resolve(self, detail: np.ndarray, size: int) -> np.ndarray:
        """256² (or any) map -> size² by repeated x4 SR passes (tiled above ``tile``²)."""
        from facedet3d.detail.sr import upscale_tiled

        d = np.asarray(detail, np.float32)
        while d.shape[0] < size:
            if d.shape[0] <= self.tile:
                d = self.run_sr(d[None, None])[0, 0]
            else:
                d = upscale_tiled(self.run_sr, d, self.tile, self.margin)
        return resample(d, size)

    # -- the API ------------------------------------------------------------------------------
    def __call__(self, detail_input: np.ndarray, source_aus, target_aus, age: float = DEFAULT_AGE_YEARS,
                 size: int = 256, face_id: np.ndarray | None = None, alpha_e: np.ndarray | None = None,
                 sides=BOTH_SIDES) -> np.ndarray:
        """D~(I_y) for D(I_x) = ``detail_input`` ((S, S) metres, any S), source AUs x and
        target AUs y ((17,) vectors or {AU: intensity} dicts in [0, 1]), the subject's
        ``age`` in years, an optional identity embedding ``face_id`` (ID_DIM,) — only for
        weights trained with real embeddings (``uses_faceid``); given to other weights it is an
        error, never silently dropped. ``alpha_e`` (53,) defaults to the blendshape weights of
        y with ``sides`` (left, right) multipliers on the lateral shapes (contempt: one side).
        Returns (size, size) float32 metres, size in (256, 1024, 4096)."""
        from facedet3d.detail.data import alpha_e as alpha_of

        if size not in SIZES:
            raise FaceDet3DError(f"detail size {size} is not one of {SIZES}")
        d = np.asarray(detail_input, np.float32)
        if d.ndim != 2 or d.shape[0] != d.shape[1] or not np.isfinite(d).all():
            raise FaceDet3DError(f"detail input must be a finite square (S, S) map, got shape {d.shape}")
        if not np.isfinite(age) or not 0 <= age <= 120:
            raise FaceDet3DError(f"age must be in years (0..120), got {age}")
        x, y = normalise_aus(source_aus), normalise_aus(target_aus)
        a = alpha_of(y, sides) if alpha_e is None else np.asarray(alpha_e, np.float32).reshape(53)
        if face_id is not None and not self.uses_faceid:
            raise FaceDet3DError(f"these DetP weights were trained without identity embeddings ({self.identity_input}); "
                                 "predict without face_id")
        use_id = face_id is not None
        feeds = {"d_x": resample(d, DETAIL_SIZE)[None, None], "x": x[None], "y": y[None], "alpha_e": a[None],
                 "age": age_features(float(age))[None],
                 "face_id": (np.asarray(face_id, np.float32).reshape(1, ID_DIM) if use_id else np.zeros((1, ID_DIM), np.float32)),
                 "id_flag": np.full((1, 1), 1.0 if use_id else 0.0, np.float32)}
        out = self.run_detp(feeds)[0, 0]
        return out if size == DETAIL_SIZE else self.super_resolve(out, size)

    def for_asset(self, asset, target_aus, age: float = DEFAULT_AGE_YEARS, size: int = 256, sides=BOTH_SIDES,
                  face_id: np.ndarray | None = None) -> np.ndarray:
        """``__call__`` for a FaceAsset (or its folder): D(I_x) = its ``detail_input``, x = its
        photo AUs (``meta.aus``; neutral when the rig has not filled them). When the asset
        holds the person's own folds (``personal_folds.npz``, enrolled from their video), their
        change x -> y is added to DetP's output (``detail.personal``)."""
        from facedet3d.fit import faceasset

        if not hasattr(asset, "detail_input"):
            asset = faceasset.read(asset)
        x = {int(k): float(v) for k, v in (asset.meta.aus or {}).items()}
        if getattr(asset, "folds", None) is None:
            return self(asset.detail_input, x, target_aus, age=age, size=size, face_id=face_id, sides=sides)
        from facedet3d.detail import personal

        try:
            folds = personal.from_arrays(asset.folds)
        except (KeyError, ValueError) as exc:
            raise FaceDet3DError(f"the FaceAsset's {personal.FILE} is unusable ({exc}); enrol again or delete it") from None
        # the person's folds are added to DetP's prior. Replacing DetP's change for the AUs the
        # video showed scores higher against real frames (r +0.35 vs +0.26), but from a low-
        # resolution video the personal maps are a few micrometres deep: rendered at the ~1 %
        # contrast the video showed (measured), they are barely visible, so replacing would take
        # the visible (generically placed) folds away (detail_real_change.md §7)
        xs, y = normalise_aus(x), normalise_aus(target_aus)
        out = self(asset.detail_input, xs, y, age=age, size=size, face_id=face_id, sides=sides)
        return out + resample(personal.to_depth(folds.change(xs, y)), size)


@functools.lru_cache(maxsize=2)
def shared_predictor(backend: str = "auto") -> DetailPredictor:
    """One warm predictor per process and backend (CLI, server, bench)."""
    return DetailPredictor(backend=backend)
