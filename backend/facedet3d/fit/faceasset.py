"""The FaceAsset: one fitted face on disk, the contract between backend and add-on.

A folder holding
- ``mesh.npz``: ``vertices`` (N,3) float32 model space, METRES, +Y up, +Z toward the
  camera, identity applied and expression removed; ``faces`` (F,3) int32 (counter-clockwise
  seen from outside); ``uv`` (N,2) float32 in [0,1], v = 1 at the top; ``landmarks`` (68,)
  int64 vertex indices (iBUG order).
- ``texture.png``: (S,S) 8-bit sRGB colour in UV space, row 0 = top (v = 1);
  ``texture_mask.png``: 8-bit, 255 where the photo observed the surface directly.
- ``detail_input.npy`` and ``detail_input.exr``: (S,S) float32 signed displacement in
  METRES along the vertex normal, UV space, row 0 = top (v = 1). Linear data.
- ``meta.json``: ``FaceMeta`` below.
- ``rig.npz``: ``blendshapes`` (K,N,3) float32 METRES in the same model space as
  ``mesh.npz`` (K = 53 FACS shapes on this subject), ``names`` (K,) ARKit names, ``au_ids``
  (17,) AU numbers, ``au_to_blendshape`` (17,K) weights (AU intensity 1 -> shape weights).
- ``head.npz``: the head parts (``rig.head.subject_head``): ``part_names``; per part
  ``{part}_vertices`` (M,3) float32 METRES, ``_faces``, ``_uv``, ``_blendshapes`` (K,M,3)
  METRES, ``_colour`` (M,3) uint8 sRGB, ``_material`` / ``_materials``, ``_face_uv`` (a
  place in the face texture); ``face_hidden`` (face triangles over the eyes),
  ``head_seam_bfm`` / ``mouth_seam_bfm``, ``iris_rgb``, ``skin_rgb``, ``eye_L_centre`` ...
- ``personal_folds.npz`` (optional, ``facedet3d folds VIDEO --asset DIR``): the person's own
  fold maps enrolled from their video (``detail.personal``): ``basis`` (17,256,256) float32
  METRES per unit AU, ``seen``, ``au_ids``, ``active``, ``meta`` (JSON string).
- ``occluder_mask.png``: 8-bit UV-space mask, 255 where an occluder (glasses, hair, a
  hand, a microphone) was removed from the texture (and from the observation mask).
- with ``--overlay``: ``overlay.png`` and ``texture_preview.png``.

The folder is written to a temporary sibling and renamed into place, so a failed run
leaves nothing behind and an existing asset is replaced only by a complete one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

FORMAT_VERSION = 1


@dataclass
class Pose:
    """Scaled-orthographic camera of the photo.

    projection: 3x4, BFM units (micrometres) -> image pixels [x right, y down, z toward
      the camera]; ``P @ [X, 1]``. Includes the image y flip.
    rotation: 3x3 model -> camera rotation (camera y up, z toward the viewer).
    scale_px_per_m: image pixels per metre of the model (orthographic scale).
    yaw/pitch/roll in degrees.
    """

    projection: list
    rotation: list
    scale_px_per_m: float
    yaw_deg: float
    pitch_deg: float
    roll_deg: float


@dataclass
class FaceMeta:
    """meta.json. Pixel coordinates are in the original photo after EXIF orientation,
    0-based pixel centres. Timings in milliseconds."""

    format_version: int
    photo: str  # the photo's file name
    image_size: list  # [width, height] pixels
    box: list  # face box [x1, y1, x2, y2] pixels
    box_source: str  # "detector" or "user"
    detector_score: float | None
    landmarks_2d: list  # 68 x [x, y] pixels: the fitted mesh's landmark vertices projected
    pose: Pose
    shape_coeffs: list  # 40 BFM identity coefficients (3DDFA scale)
    exp_coeffs: list  # 10 BFM expression coefficients of the photo
    units: dict = field(default_factory=lambda: {"mesh": "metres", "detail": "metres along normal", "bfm": "micrometres"})
    texture_size: int = 1024
    observed_fraction: float = 0.0  # share of the UV chart seen directly in the photo
    aus: dict = field(default_factory=dict)  # photo AUs: "AU number" -> intensity 0..1
    aus_source: str = "landmarks"  # "mediapipe" (expression reader) or "landmarks" (68-landmark fit fallback)
    # 68-point regions whose fit targets came from MediaPipe's 478 landmarks (fit/mp68.py):
    # ["brows", "eyes", "mouth"] when the reader found the face, else [] (regressor only)
    landmark_targets: list = field(default_factory=list)
    rig_residual_mm: float | None = None  # mean closest-point distance of the rig transfer
    versions: dict = field(default_factory=dict)
    assets: dict = field(default_factory=dict)  # manifest path -> sha256
    timings_ms: dict = field(default_factory=dict)
    photo_path: str = ""  # the photo's absolute path when fitted (later steps read it from here)
    face_px: float = 0.0  # the face box's side in photo pixels
    warnings: list = field(default_factory=list)  # one line each: fitted, but quality may suffer


@dataclass
class FaceAsset:
    """In-memory FaceAsset; see the module docstring for shapes and units."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    landmarks: np.ndarray
    texture: np.ndarray
    texture_mask: np.ndarray
    detail_input: np.ndarray
    meta: FaceMeta
    rig: dict[str, np.ndarray] | None = None  # rig.npz arrays, when built
    head: dict[str, np.ndarray] | None = None  # head.npz arrays (head parts), when built
    folds: dict[str, np.ndarray] | None = None  # personal_folds.npz arrays, when enrolled
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # name.png -> uint8 image


def _write_exr(path: Path, img: np.ndarray) -> None:
    ok = cv2.imwrite(str(path), img.astype(np.float32), [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_FLOAT])
    if not ok:
        raise OSError(f"could not write {path.name} (OpenCV EXR support disabled?)")


def _write_png(path: Path, rgb: np.ndarray) -> None:
    img = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path.name}")


def write(asset: FaceAsset, out_dir: str | os.PathLike) -> Path:
    """Write ``asset`` to ``out_dir`` atomically (temp folder + rename)."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    t0 = time.perf_counter()
    try:
        np.savez(tmp / "mesh.npz", vertices=asset.vertices.astype(np.float32), faces=asset.faces.astype(np.int32),
                 uv=asset.uv.astype(np.float32), landmarks=asset.landmarks.astype(np.int64))
        _write_png(tmp / "texture.png", asset.texture)
        _write_png(tmp / "texture_mask.png", asset.texture_mask)
        np.save(tmp / "detail_input.npy", asset.detail_input.astype(np.float32))
        _write_exr(tmp / "detail_input.exr", asset.detail_input)
        if asset.rig is not None:
            np.savez(tmp / "rig.npz", **asset.rig)
        if asset.head is not None:
            np.savez_compressed(tmp / "head.npz", **asset.head)  # 3.4 MB instead of 12 (shape keys are mostly 0)
        if asset.folds is not None:
            np.savez_compressed(tmp / "personal_folds.npz", **asset.folds)
        for name, img in asset.extras.items():
            _write_png(tmp / name, img)
        # meta.json last and once, with the time the rest took (milliseconds)
        asset.meta.timings_ms["write"] = round((time.perf_counter() - t0) * 1000.0, 2)
        (tmp / "meta.json").write_text(json.dumps(asdict(asset.meta), indent=1), encoding="utf-8")
        backup = None
        if out.exists():
            backup = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, backup)
        os.replace(tmp, out)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_meta(path: str | os.PathLike) -> FaceMeta:
    """Only a FaceAsset folder's meta.json (no arrays, no images)."""
    p = Path(path)
    meta_d = json.loads((p / "meta.json").read_text(encoding="utf-8"))
    if meta_d.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{p}: FaceAsset format {meta_d.get('format_version')} is not {FORMAT_VERSION}")
    meta_d["pose"] = Pose(**meta_d["pose"])
    return FaceMeta(**meta_d)


def read(path: str | os.PathLike) -> FaceAsset:
    """Load a FaceAsset folder (raises FileNotFoundError / ValueError when incomplete)."""
    p = Path(path)
    with np.load(p / "mesh.npz", allow_pickle=False) as z:
        mesh = {k: z[k] for k in z.files}
    meta = read_meta(p)
    tex = cv2.imread(str(p / "texture.png"), cv2.IMREAD_COLOR)[..., ::-1]
    mask = cv2.imread(str(p / "texture_mask.png"), cv2.IMREAD_GRAYSCALE)
    rig = None
    if (p / "rig.npz").is_file():
        with np.load(p / "rig.npz", allow_pickle=False) as z:
            rig = {k: z[k] for k in z.files}
    head = None
    if (p / "head.npz").is_file():
        with np.load(p / "head.npz", allow_pickle=False) as z:
            head = {k: z[k] for k in z.files}
    folds = None
    if (p / "personal_folds.npz").is_file():
        with np.load(p / "personal_folds.npz", allow_pickle=False) as z:
            folds = {k: z[k] for k in z.files}
    return FaceAsset(mesh["vertices"], mesh["faces"], mesh["uv"], mesh["landmarks"], np.ascontiguousarray(tex), mask,
                     np.load(p / "detail_input.npy", allow_pickle=False), meta, rig, head=head, folds=folds)
