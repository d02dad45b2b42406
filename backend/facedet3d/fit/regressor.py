"""The 3DDFA_V2 parameter regressor: MobileNet-V1 x0.5 on a 120x120 face crop -> 62 params.

Our own torch module whose parameter names match the upstream checkpoint
(``weights/mb05_120x120.pth``) so the published weights load unchanged. Inference goes
through one ``Regressor.__call__`` shared by the torch path and the onnxruntime path;
``export_onnx`` is a build step (``facedet3d export-onnx``) with a parity test.

Input: (B, 3, 120, 120) float32, BGR channel order, ``(pixel - 127.5) / 128``.
Output: (B, 62) float32 *normalised* parameters; ``decode`` de-normalises them into
pose (3x4 matrix), 40 shape and 10 expression coefficients.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facedet3d.assets import files as assets
from facedet3d.errors import AssetCorrupt

INPUT_SIZE = 120
N_PARAMS = 62
WEIGHTS = "3DDFA_V2/weights/mb05_120x120.pth"
MEAN_STD = "3DDFA_V2/configs/param_mean_std_62d_120x120.pkl"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(
        self,
        in_ch: int,  # input channels
        out_ch: int,  # output channels
        stride: int,  # stride of the depthwise conv (1 or 2)
    ):
        super().__init__()
        self.conv_dw = nn.Conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False)
        self.bn_dw = nn.BatchNorm2d(in_ch)
        self.conv_sep = nn.Conv2d(in_ch, out_ch, 1, 1, 0, bias=False)
        self.bn_sep = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn_dw(self.conv_dw(x)))
        return torch.relu(self.bn_sep(self.conv_sep(x)))


# (name, input channels at widen 1.0, output channels at widen 1.0, stride): MobileNet-V1.
_BLOCKS = (
    ("dw2_1", 32, 64, 1),
    ("dw2_2", 64, 128, 2),
    ("dw3_1", 128, 128, 1),
    ("dw3_2", 128, 256, 2),
    ("dw4_1", 256, 256, 1),
    ("dw4_2", 256, 512, 2),
    ("dw5_1", 512, 512, 1),
    ("dw5_2", 512, 512, 1),
    ("dw5_3", 512, 512, 1),
    ("dw5_4", 512, 512, 1),
    ("dw5_5", 512, 512, 1),
    ("dw5_6", 512, 1024, 2),
    ("dw6", 1024, 1024, 1),
)


class MobileNetV1(nn.Module):
    """MobileNet-V1 backbone with the 62-parameter head (and the unused 136-d landmark
    head the checkpoint also carries, kept so the state dict loads strictly)."""

    def __init__(
        self,
        widen: float = 0.5,  # channel multiplier of MobileNet-V1 (0.5 for mb05)
        n_params: int = N_PARAMS,  # 12 pose + 40 shape + 10 expression
    ):
        super().__init__()
        ch = lambda c: int(c * widen)  # noqa: E731
        self.conv1 = nn.Conv2d(3, ch(32), 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch(32))
        for name, cin, cout, stride in _BLOCKS:
            setattr(self, name, DepthwiseSeparable(ch(cin), ch(cout), stride))
        self.fc_param = nn.Linear(ch(1024), n_params)
        self.fc_lm = nn.Linear(ch(1024), 136)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"expected (B, 3, {INPUT_SIZE}, {INPUT_SIZE}), got {tuple(x.shape)}")
        x = torch.relu(self.bn1(self.conv1(x)))
        for name, *_ in _BLOCKS:
            x = getattr(self, name)(x)
        x = x.mean(dim=(2, 3))
        return self.fc_param(x)


def load_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """Read the upstream checkpoint without executing code (``weights_only=True``)."""
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise AssetCorrupt(f"{Path(path).name}: refused or unreadable checkpoint ({exc}); {assets.FETCH_HINT}") from None
    sd = ckpt.get("state_dict", ckpt)
    return {k.removeprefix("module."): v for k, v in sd.items()}


@dataclass(frozen=True)
class ParamStats:
    """De-normalisation: ``params = out * std + mean``, each (62,) float32."""

    mean: np.ndarray
    std: np.ndarray


@functools.lru_cache(maxsize=1)
def param_stats() -> ParamStats:
    d = assets.load_pickle(assets.asset_path(MEAN_STD))
    return ParamStats(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))


def build_model(device: torch.device | None = None) -> MobileNetV1:
    model = MobileNetV1()
    try:
        model.load_state_dict(load_state_dict(assets.asset_path(WEIGHTS)), strict=True)
    except RuntimeError as exc:
        raise AssetCorrupt(f"regressor weights do not fit MobileNet-V1 x0.5 ({exc}); {assets.FETCH_HINT}") from None
    return model.eval().to(device or default_device())


def onnx_path() -> Path:
    """Where the build step writes the ONNX model (in the converted cache, keyed by weights)."""
    sha = assets._entry(WEIGHTS).sha256[:12]
    return assets.converted_dir() / f"mb05_120x120_{sha}.onnx"


def export_onnx(path: Path | None = None) -> Path:
    """Build step: export the regressor to ONNX (dynamic batch). Returns the file path."""
    path = Path(path or onnx_path())
    model = build_model(torch.device("cpu"))
    dummy = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        # the shape check at the top of forward() is a Python bool under tracing: harmless
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model, (dummy,), str(tmp), input_names=["input"], output_names=["params"],
            dynamic_axes={"input": {0: "batch"}, "params": {0: "batch"}}, opset_version=17, dynamo=False,
        )
    os.replace(tmp, path)
    return path


class Regressor:
    """Shared inference API: ``__call__(crops)`` on (B,120,120,3) uint8 BGR crops returns
    (B, 62) float32 de-normalised parameters, through torch or onnxruntime."""

    def __init__(
        self,
        backend: str = "torch",  # "torch" (CUDA when present) or "onnx" (onnxruntime)
        threads: int | None = None,  # intra-op threads for onnxruntime; None = library default
    ):
        self.backend = backend
        self.stats = param_stats()
        if backend == "torch":
            self.device = default_device()
            self.model = build_model(self.device)
        elif backend == "onnx":
            import onnxruntime as ort

            path = onnx_path()
            if not path.is_file():
                export_onnx(path)
            opts = ort.SessionOptions()
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see __init__
            if threads:
                opts.intra_op_num_threads = threads
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        else:
            raise ValueError(f"unknown regressor backend {backend!r}")

    @staticmethod
    def preprocess(crops: np.ndarray) -> np.ndarray:
        """(B,120,120,3) uint8 BGR -> (B,3,120,120) float32 normalised as upstream."""
        if crops.ndim != 4 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected (B, {INPUT_SIZE}, {INPUT_SIZE}, 3) crops, got {crops.shape}")
        x = (crops.astype(np.float32) - 127.5) / 128.0
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Normalised network output (B, 62) for preprocessed input."""
        if self.backend == "torch":
            with torch.inference_mode():
                return self.model(torch.from_numpy(x).to(self.device)).float().cpu().numpy()
        return self.session.run(None, {"input": x})[0]

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        out = self.raw(self.preprocess(crops))
        return out * self.stats.std + self.stats.mean
