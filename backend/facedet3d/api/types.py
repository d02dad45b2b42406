"""The typed interface between the Blender add-on and the backend.

Only the standard library, numpy and ``expressions`` (the AU vocabulary) are imported here,
so Blender's own Python loads this module without torch: ``addon/_api/`` holds a generated
copy of both (``python build_addon.py --sync``; a test fails when it is stale).

Conventions shared by every type:
- lengths in METRES; model space is the FaceAsset's: +Y up, +Z toward the camera (Blender
  is +Z up: the add-on maps (x, y, z) -> (x, -z, y));
- images are row 0 = top; UV maps are in the BFM UV layout with row 0 = v = 1;
- colour images are 8-bit sRGB; displacement maps are linear float32 metres along the
  vertex normal (signed);
- AU vectors are (17,) float32 in [0, 1], in ``AU_IDS`` order.

Wire format (server): one ``.npz`` (never pickled) holding every ndarray field under its
name plus ``__json__``, the UTF-8 JSON of the remaining fields.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, fields

import numpy as np

from .expressions import AU_IDS, clamp_aus  # noqa: F401  (the one vocabulary; the add-on ships a copy of both)

API_VERSION = 5  # 2: DetailRequest.sides, BackendStatus.detail_error; 3: TrackCall / TrackPoll / TrackState and FaceData.head (HeadParts);
#                 4: FoldsCall / FoldsPoll / FoldsState (personal folds); 5: FaceData.warnings
DETAIL_SIZES = (256, 1024, 4096)
# D(I)'s scale: metres of depth per unit of log luminance ratio (a crease 25 % darker than its
# surroundings reads as -0.29 mm). The estimator (fit/detail_input) and the add-on's cavity
# term (which darkens the texture by the inverse of the same mapping) share it.
DETAIL_METRES_PER_LOG_UNIT = 1.0e-3
# The cavity term's exponent stays within +-0.7 log units (0.5x .. 2x of the photo's colour),
# in the face material and in the neural pass alike.
DETAIL_CAVITY_CLAMP = 0.7
# The view-layer AOV (Value) that carries the material's cavity exponent, in log units, to the
# neural pass (``neural/passes.py``); 0 where a material does not write it (no darkening).
CAVITY_PASS = "FaceDet3DCavity"


@dataclass
class CameraSpec:
    """The photo's scaled-orthographic camera, in model space.

    rotation: 3x3 (row-major nested lists) model -> camera rotation (camera x right, y up,
      z toward the viewer).
    scale_px_per_m: photo pixels per metre.
    translation_px: [tx, ty] photo pixel (0-based pixel centres, y down) where the model
      origin projects: ``u = s (R X)_x + tx``, ``v = -s (R X)_y + ty`` (X in metres).
    image_size: [width, height] of the photo, pixels.
    face_box: [x1, y1, x2, y2] the fitted face's box in photo pixels ([] = unknown).
    """

    rotation: list
    scale_px_per_m: float
    translation_px: list
    image_size: list
    face_box: list = field(default_factory=list)


FACE_MARGIN = 0.12  # share of the face box side added around it by ``face_square``


def face_square(box, margin: float = FACE_MARGIN) -> list:
    """[cx, cy, half] photo pixels: the square around a face box [x1, y1, x2, y2] that the
    neural pass is trained on and the face-framing camera shows."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return [(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * (0.5 + margin)]


@dataclass
class FitCall:
    """Fit a photo.

    photo: path of the photo (the server runs on the same machine: loopback only).
    out_dir: where to write the FaceAsset folder ("" = keep it in memory only).
    box: optional face box [left, top, width, height] in photo pixels; face: 0 = largest.
    texture_size: side of the UV texture / detail map, texels.
    """

    photo: str
    out_dir: str = ""
    box: list | None = None
    face: int = 0
    texture_size: int = 1024


# the Blender custom property ``facedet3d_part`` takes one of these (issue 13's contract)
PART_TAGS = ("face", "head", "eye_L", "eye_R", "teeth_upper", "teeth_lower", "tongue", "mouth")


@dataclass
class HeadPart:
    """One part of the head around the face, in the face's model space (metres).

    vertices (M,3) float32; faces (T,3) int32; uv (M,2) float32 (its own layout);
    face_uv (M,2) float32: its place in the face's texture (the render UV map a UV pass
    reads: skin, eye and lip texels, never background); blendshapes (K,M,3) float32 metres,
    the face's K shapes in the face's order; colour (M,3) uint8 sRGB per vertex; material
    (T,) int8 index into ``materials`` (names from skin, mouth, teeth, gums, sclera, iris,
    cornea); centre [x, y, z] metres: an eye's centre (its object's origin), [] otherwise;
    merged: the part names this one also holds (teeth_lower: ["tongue"]).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    face_uv: np.ndarray
    blendshapes: np.ndarray
    colour: np.ndarray
    material: np.ndarray
    materials: list
    centre: list = field(default_factory=list)
    merged: list = field(default_factory=list)


@dataclass
class HeadParts:
    """The head around the face: head and neck, eyes, teeth (gums, tongue), mouth socket.

    parts: part name (head, eye_L, eye_R, teeth_upper, teeth_lower, mouth) -> HeadPart, in
      build order; face_hidden (H,) int32: the face triangles over the eyes, not built
      when the parts are; head_seam / mouth_seam (S,) int32: face vertex ids the head and
      the mouth socket copy exactly (the face's detail displacement fades to 0 there).
    """

    parts: dict
    face_hidden: np.ndarray
    head_seam: np.ndarray
    mouth_seam: np.ndarray


@dataclass
class FaceData:
    """Everything the add-on needs to build a face.

    subject_id: backend handle for detail requests (with asset_dir as fallback when the
      backend restarted and no longer holds it).
    vertices (N,3) float32 metres, neutral, model space; faces (F,3) int32 CCW from outside;
    uv (N,2) float32 in [0,1], v = 1 at the top of the image.
    texture (S,S,3) uint8 sRGB, row 0 = top (v = 1).
    detail (S,S) float32 metres along the normal: the photo's own detail map D(Ix).
    blendshapes (K,N,3) float32 metres model space: full-weight offsets of the K FACS shapes.
    names: K ARKit names. au_to_blendshape (17,K) float32: blendshape weights per unit AU.
    photo_aus (17,) float32 [0,1]: the expression seen in the photo.
    camera: the photo's camera. photo: photo file name. detail_source: "detp" or
      "detail_input" (no detail predictor available: maps do not change with AUs).
    head: the parts around the face (None: a FaceAsset fitted before they existed).
    warnings: one-line notes from the fit that the user should see (a small face, a photo
      colour profile that could not be applied): the FaceAsset's ``meta.warnings``.
    """

    subject_id: str
    asset_dir: str
    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    texture: np.ndarray
    detail: np.ndarray
    blendshapes: np.ndarray
    names: list
    au_to_blendshape: np.ndarray
    photo_aus: np.ndarray
    camera: CameraSpec
    photo: str = ""
    detail_source: str = "detail_input"
    timings_ms: dict = field(default_factory=dict)
    head: HeadParts | None = None
    warnings: list = field(default_factory=list)


@dataclass
class DetailRequest:
    """Predict the detail map of a subject for target AUs.

    target_aus (T,17) float32 [0,1]: one row per map (T = 1 for a live update, one per frame
      when baking). age: subject age in years (0 = unknown, read as ``DEFAULT_AGE_YEARS``).
      size: 256, 1024 or 4096 texels. sides: None (both) or (T,2) float32 (left, right)
      multipliers of the lateral blendshapes per row (contempt moves one side).
    """

    subject_id: str
    asset_dir: str
    target_aus: np.ndarray
    age: float = 0.0
    size: int = 256
    sides: np.ndarray | None = None


@dataclass
class DetailResult:
    """maps (T,S,S) float32 metres along the normal, row 0 = top (v = 1).
    source: "detp" (the network; without it the request fails with the reason).
    ms: backend wall time, milliseconds."""

    maps: np.ndarray
    source: str
    ms: float = 0.0


@dataclass
class NeuralFitCall:
    """Fit the neural render pass (paper Sec. 3.3) to the subject's own photo; the weights go
    into the FaceAsset folder (``neural.safetensors``). Minutes on a CPU.

    asset_dir: the FaceAsset folder. photo: the photo it was fitted on ("" = the file named
      in meta.json, looked up beside the folder). steps / size: optimisation steps and
      training side in pixels (0 = the defaults: 400 steps, 256 px). refit: fit again even
      when the folder already holds a fitted pass.
    """

    asset_dir: str
    photo: str = ""
    steps: int = 0
    size: int = 0
    refit: bool = False


@dataclass
class NeuralInfo:
    """A subject's fitted neural pass.

    size: side in pixels of the square it renders (and was trained at).
    crop: [cx, cy, half] the square it frames, photo pixels (0-based centres, y down): the
      face box with a 12 % margin; a camera covering it at ``size``² matches the training.
    psnr_db, ssim: input-view reproduction of the photo inside the face mask.
    fit_s: training time in seconds (0 when an existing pass was reused); device: torch device.
    perceptual_used: whether the VGG16 perceptual term trained it; perceptual: the one-line
      status of that term (why it was off, or which weights).
    """

    size: int
    crop: list
    psnr_db: float
    ssim: float
    fit_s: float = 0.0
    device: str = ""
    perceptual_used: bool = False
    perceptual: str = ""


@dataclass
class NeuralFrameRequest:
    """One neural frame from the renderer's passes (``facedet3d.neural.passes``).

    asset_dir: FaceAsset folder with a fitted pass. detailed_exr / proxy_exr: multilayer EXR
      files of one camera and size (multiples of 16): Cycles' UV, Normal (world space) and
      Combined alpha, rendered with the details on (Displace + bump) and off.
    world_to_camera: 3x3 nested lists, Blender world -> camera rotation (camera x right,
      y up, z toward the viewer). lighting: 9 SH coefficients ([] = the photo's).
    """

    asset_dir: str
    detailed_exr: str
    proxy_exr: str
    world_to_camera: list
    lighting: list = field(default_factory=list)


@dataclass
class NeuralFrame:
    """image / image_proxy: (H, W, 3) uint8 sRGB neural renders with and without the details
    (the face over a dark grey background). ms: backend wall time, milliseconds."""

    image: np.ndarray
    image_proxy: np.ndarray
    ms: float = 0.0


@dataclass
class BackendStatus:
    """What the panel shows. mode: "in-process" or "server"; detail_source: "detp" or
    "unavailable" (then ``detail_error`` says why, one line); message: one line for people.
    presets: emotion name -> (17,) AU list (EMFACS, ``expressions.PRESETS``)."""

    mode: str
    version: str
    detail_source: str
    message: str = ""
    presets: dict = field(default_factory=dict)
    api_version: int = API_VERSION
    detail_error: str = ""


@dataclass
class TrackCall:
    """Start tracking (``facedet3d track``) in the background; poll with ``TrackPoll``.

    source: path of a video or a Live Link Face .csv (same machine: loopback only).
    frames: stop after this many frames (0 = all). neutral: [start_s, end_s] where the face
      rests, for calibration ([] = the population's rest). box: [left, top, width, height]
      pixels of the face to follow ([] = the largest, most central).
    """

    source: str
    frames: int = 0
    neutral: list = field(default_factory=list)
    box: list = field(default_factory=list)


@dataclass
class TrackPoll:
    """Ask how a track job goes; ``cancel`` asks it to stop (it answers "cancelled" once it has)."""

    job: str
    cancel: bool = False


@dataclass
class TrackState:
    """A track job. state: "running", "done", "failed" or "cancelled" (a finished job is
    answered once, then forgotten). frames: frames tracked so far. message: one line (why it
    failed). track_json: when done, the track JSON text (the schema of ``facedet3d track``)."""

    job: str
    state: str
    frames: int = 0
    message: str = ""
    track_json: str = ""


@dataclass
class FoldsCall:
    """Learn the person's own folds (``facedet3d folds``) from ``video`` (same machine) into the
    FaceAsset ``asset_dir`` as a background job; poll with ``FoldsPoll``. max_frames (>= 8): scan
    at most this many frames, spread over the video; stride: fit every N-th frame. remove:
    delete the asset's folds instead (no job: answered at once with state "done")."""

    asset_dir: str
    video: str = ""
    max_frames: int = 120
    stride: int = 2
    remove: bool = False


@dataclass
class FoldsPoll:
    """``cancel`` stops the job; nothing is written (state "cancelled" once it has stopped)."""

    job: str
    cancel: bool = False


@dataclass
class FoldsState:
    """A folds job: state and frames as ``TrackState``'s, frames_done / frames_total video frames
    scanned; message: one line (why it failed). When done: frames (enrolment frames used),
    split_check_r (first half -> second half r, None: not measurable), active_aus (AU numbers
    given a fold map), source (the video's name); empty after a remove."""

    job: str
    state: str
    frames_done: int = 0
    frames_total: int = 0
    message: str = ""
    frames: int = 0
    split_check_r: float | None = None
    active_aus: list = field(default_factory=list)
    source: str = ""

def check_aus(aus) -> np.ndarray:
    """(T,17) float32 in [0,1]; NaN/inf raise ValueError, out-of-range values are clamped
    with a warning (``expressions.clamp_aus``)."""
    return clamp_aus(aus)


def check_sides(sides, rows: int) -> np.ndarray:
    """(rows, 2) float32 (left, right) lateral multipliers in [0, 1]; None means both sides."""
    if sides is None:
        return np.ones((rows, 2), np.float32)
    s = np.asarray(sides, np.float32).reshape(-1, 2)
    if len(s) == 1:
        s = np.repeat(s, rows, 0)
    if s.shape != (rows, 2) or not np.isfinite(s).all() or (s < 0).any() or (s > 1).any():
        raise ValueError(f"sides must be (T, 2) numbers in [0, 1] for T = {rows} AU rows, got {np.shape(sides)}")
    return s


_TYPES = {c.__name__: c for c in (CameraSpec, FitCall, HeadPart, HeadParts, FaceData, DetailRequest, DetailResult,
                                   NeuralFitCall, NeuralInfo, NeuralFrameRequest, NeuralFrame, BackendStatus,
                                   TrackCall, TrackPoll, TrackState, FoldsCall, FoldsPoll, FoldsState)}


def _flat(v, path: str, arrays: dict):
    """JSON-able form of a field value; its arrays go into ``arrays`` under dotted paths
    (nested dataclasses and dicts of them, e.g. ``head.parts.eye_L.vertices``)."""
    if isinstance(v, np.ndarray):
        arrays[path] = v
        return {"__array__": path}
    if hasattr(v, "__dataclass_fields__"):
        return {"__type__": type(v).__name__, **{f.name: _flat(getattr(v, f.name), f"{path}.{f.name}", arrays)
                                                 for f in fields(v)}}
    if isinstance(v, dict):
        return {k: _flat(x, f"{path}.{k}", arrays) for k, x in v.items()}
    return v


def _unflat(v, arrays: dict):
    if isinstance(v, dict):
        if "__array__" in v:
            return arrays[v["__array__"]]
        out = {k: _unflat(x, arrays) for k, x in v.items() if k != "__type__"}
        if "__type__" in v:
            cls = _TYPES.get(v["__type__"])
            if cls is None:
                raise ValueError(f"unexpected message part {v['__type__']!r}")
            return cls(**out)
        return out
    return v


def encode(obj) -> bytes:
    """Dataclass -> npz bytes (arrays by name, other fields as JSON under ``__json__``)."""
    arrays: dict = {}
    rest = {f.name: _flat(getattr(obj, f.name), f.name, arrays) for f in fields(obj)}
    rest["__type__"] = type(obj).__name__
    buf = io.BytesIO()
    np.savez(buf, __json__=np.frombuffer(json.dumps(rest).encode("utf-8"), np.uint8), **arrays)
    return buf.getvalue()


def decode(data: bytes, expect: type | None = None):
    """npz bytes -> dataclass (never unpickles). ``expect`` checks the type."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        rest = json.loads(bytes(z["__json__"]).decode("utf-8"))
        arrays = {k: z[k] for k in z.files if k != "__json__"}
    cls = _TYPES.get(rest.pop("__type__", ""))
    if cls is None or (expect is not None and cls is not expect):
        raise ValueError(f"unexpected message type {cls.__name__ if cls else '?'}")
    return cls(**{k: _unflat(v, arrays) for k, v in rest.items()})
