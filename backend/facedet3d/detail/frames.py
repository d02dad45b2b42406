"""Frames of real videos -> fitted, unwrapped detail inputs, with the identity held per clip.

Shared by the detail evaluation (``evaluate.py``) and the real detail corpus
(``real_corpus.py``). A frame fit is ``Backend.fit``'s pipeline on an RGB array (no file,
nothing written): detect -> MediaPipe's reading of the face (478 landmarks, blendshapes) ->
3DDFA_V2 regress + landmark refinement, whose brow, eyelid and lip targets are MediaPipe's
points when it read the face (``fit.mp68``, as the photo fit) -> (optionally) refit of the
expression and camera with the clip's identity (shape coefficients) held fixed, to the
same targets -> unwrap -> D(I) estimate -> AUs from the 68-landmark rig fit. Each
``FrameFit`` records which regions took MediaPipe's targets (``landmark_targets``) and keeps
the reading, so the MediaPipe labels source reuses it instead of reading the frame again.

AU labels are pluggable: an ``AULabels`` is any callable ``(FrameFit) -> {AU: 0..1}``.
``landmark_aus`` (the default) returns the rig fit's reading; the MediaPipe expression
reader plugs in the same way (a callable reading ``fit.rgb``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facedet3d.errors import BadImage, FaceDet3DError, NoFace


@dataclass
class FrameFit:
    """One fitted frame. Image space as ``fit.camera`` (x right, y down, pixels)."""

    rgb: np.ndarray  # (H, W, 3) uint8 frame
    box: np.ndarray  # (4,) detector box x0, y0, x1, y1
    shape: np.ndarray  # (40,) BFM identity coefficients used
    exp: np.ndarray  # (10,) BFM expression coefficients
    projection: np.ndarray  # (3, 4) camera
    verts_img: np.ndarray  # (N, 3) image-space vertices
    normals_cam: np.ndarray  # (N, 3) unit normals, camera orientation
    texture: np.ndarray  # (S, S, 3) uint8 unwrap
    mask: np.ndarray  # (S, S) uint8, 255 = observed directly
    detail: np.ndarray  # (S, S) float32 metres, D(I)
    aus: dict = field(default_factory=dict)  # {AU: 0..1} from the 68-landmark rig fit
    landmark_rms_px: float = 0.0  # fixed-identity refit residual (px) to its 68 targets
    yaw_deg: float = 0.0
    face_px: float = 0.0  # face width in the frame, pixels (quality)
    # 68-point regions whose targets were MediaPipe's (``fit.mp68``): None = the reader was
    # not run (FrameFitter(guide=False)), [] = it ran and found no face in this frame
    landmark_targets: list | None = None
    reading: object | None = None  # the reader's ``Reading`` of this face (None: none)
    occluded_fraction: float = 0.0  # share of the UV chart taken out as occluders (glasses, hair)

    @property
    def observed_fraction(self) -> float:
        return float((self.mask > 127).mean())


AULabels = Callable[[FrameFit], dict]


def landmark_aus(fit: FrameFit) -> dict:
    """The default labels source: the AUs of the 68-landmark rig fit (``meta.aus``)."""
    return dict(fit.aus)


_READER = None


def mediapipe_aus(fit: FrameFit) -> dict:
    """Labels from MediaPipe's Face Landmarker (issue 10's reader): the 52 blendshapes of the
    face inside the fitted box, mapped to AUs as the photo fit maps them
    (``expression.au.aus_of_reading``). Unlike the 68-landmark fit it reads AU6 (cheek
    raiser) and leaves neutral faces near 0. A frame the landmarker cannot read raises NoFace
    (the corpus skips it) rather than falling back to the landmark AUs."""
    global _READER
    from facedet3d.expression.au import aus_of_reading
    from facedet3d.expression.reader import FaceReader, read_photo

    if fit.landmark_targets is not None:  # the fitter read this frame already
        r = fit.reading
    else:
        if _READER is None:  # one landmarker per process: creating it costs ~0.1 s
            _READER = FaceReader("image")
        r = read_photo(fit.rgb, fit.box, reader=_READER)
    if r is None:
        raise NoFace("the expression reader found no face in this frame")
    return aus_of_reading(r)


def resolve_labels(spec: str | None) -> AULabels:
    """A labels source by name: None / "landmarks" -> ``landmark_aus``; "mediapipe" ->
    ``mediapipe_aus``; "package.module:func"
    -> that callable, which gets the ``FrameFit`` (frame ``rgb``, face ``box``, fitted mesh)
    and returns {AU number: intensity 0..1} (e.g. an adapter around the MediaPipe reader:
    ``lambda fit: reader(fit.rgb)``). A missing module or function is an error, not a fallback."""
    import importlib

    if spec in (None, "", "landmarks"):
        return landmark_aus
    if spec == "mediapipe":
        return mediapipe_aus
    mod, _, fn = spec.partition(":")
    if not fn:
        raise FaceDet3DError(f"labels source {spec!r}: use 'landmarks' or 'package.module:function'")
    try:
        obj = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as exc:
        raise FaceDet3DError(f"labels source {spec!r} not available: {exc}") from None
    if not callable(obj):
        raise FaceDet3DError(f"labels source {spec!r} is not callable")
    return obj


def read_video(path: str | Path, frames: list[int] | None = None, stride: int = 1,
               max_side: int = 1280) -> dict[int, np.ndarray]:
    """Decode frames of a video -> {index: (H, W, 3) uint8 RGB}.

    frames: the indices wanted (others skipped without conversion); else every ``stride``-th.
    max_side: frames larger than this are area-downscaled (1080p MEAD clips) to bound cost.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise BadImage(f"cannot open video {path}")
    want = None if frames is None else {int(i) for i in frames}
    out, i = {}, 0
    last = max(want) if want else None
    while True:
        if last is not None and i > last:
            break
        ok = cap.grab()
        if not ok:
            break
        if (want is not None and i in want) or (want is None and i % stride == 0):
            ok, bgr = cap.retrieve()
            if ok:
                h, w = bgr.shape[:2]
                s = max_side / max(h, w)
                if s < 1:
                    bgr = cv2.resize(bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
                out[i] = np.ascontiguousarray(bgr[..., ::-1])
        i += 1
    cap.release()
    if not out:
        raise BadImage(f"no frames decoded from {path}")
    return out


def frame_count(path: str | Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return n


def refit_fixed_shape(bfm, fp, shape: np.ndarray, stats_std: np.ndarray, iters: int = 4,
                      target: np.ndarray | None = None):
    """Re-solve expression and affine camera with the identity ``shape`` held fixed so the
    68 landmarks meet ``target`` (68, 2) pixels, default the free fit's landmarks (a clip's
    identity must not breathe with the expression). Same alternation and prior as
    ``camera.refine``. Returns (FitParams, rms px to the target).
    """
    from facedet3d.assets.bfm import N_SHAPE
    from facedet3d.fit import camera

    if target is None:
        target = camera.landmarks_image(bfm, fp)[:, :2]
    target = np.asarray(target, np.float64)[:, :2]
    rows = bfm.landmark_rows()
    eb = bfm.exp_basis[rows].astype(np.float64)
    base = bfm.mean.reshape(-1)[rows].astype(np.float64) + bfm.shape_basis[rows] @ np.asarray(shape, np.float64)
    e0 = np.asarray(fp.exp, np.float64)
    sigma = stats_std[12 + N_SHAPE: 12 + N_SHAPE + len(e0)].astype(np.float64) * 4.0
    proj, e = fp.projection.copy(), e0.copy()
    for _ in range(iters):
        A, t = proj[:2, :3], proj[:2, 3]
        J = np.einsum("ij,njk->nik", A, eb.reshape(68, 3, -1)).reshape(136, -1)
        r = (target - (base.reshape(68, 3) @ A.T + t)).reshape(-1)
        e = np.linalg.solve(J.T @ J + np.diag(1 / sigma ** 2), J.T @ r + e0 / sigma ** 2)
        X = np.hstack([(base + eb @ e).reshape(68, 3), np.ones((68, 1))])
        sol, *_ = np.linalg.lstsq(X, target, rcond=None)
        ratio = np.linalg.norm(sol.T[:, :3]) / max(np.linalg.norm(proj[:2, :3]), 1e-12)
        proj = proj.copy()
        proj[:2] = sol.T
        proj[2, :3] *= ratio
    X = np.hstack([(base + eb @ e).reshape(68, 3), np.ones((68, 1))])
    rms = float(np.sqrt((((X @ proj[:2].T) - target) ** 2).sum(1).mean()))
    return camera.FitParams(proj, np.asarray(shape, np.float32), e.astype(np.float32), fp.roi), rms


class FrameFitter:
    """Models loaded once (a ``pipeline.Backend``); ``fit(rgb, shape=None)`` per frame.
    ``guide``: read each frame with MediaPipe and fit brows, eyelids and lips to its
    landmarks (the photo fit's targets); False: the 68-point regressor alone (the fits
    before issue 10, kept for measuring the difference). ``detail_params``: the D(I)
    estimator's ``fit.detail_input.DetailParams`` (None: its defaults, as the photo fit)."""

    def __init__(self, size: int = 512, backend=None, guide: bool = True, detail_params=None):
        from facedet3d.fit import texture
        from facedet3d.fit.pipeline import Backend

        from facedet3d.fit.detail_input import DetailParams

        self.backend = backend or Backend()
        self.detail_params = detail_params or DetailParams()
        self.size = int(size)
        self.layout = texture.uv_layout(self.size)
        self.guide = bool(guide)
        self._deltas: dict[bytes, np.ndarray] = {}
        self._read: tuple = (None, None, None)  # (frame, box, reading): a frame fitted twice is read once

    def read(self, rgb: np.ndarray, box):
        """MediaPipe's reading of the face in ``box`` (None: it found none there). A missing
        mediapipe is an error (``ReaderUnavailable``), not a silent unguided fit."""
        last_rgb, last_box, last = self._read
        if last_rgb is rgb and np.allclose(last_box, box):
            return last
        r = self.backend.read_face(rgb, box)  # the photo fit's reader (image mode, crop)
        self._read = (rgb, np.asarray(box, np.float64), r)
        return r

    def fit(self, rgb: np.ndarray, shape: np.ndarray | None = None, box=None) -> FrameFit:
        """Fit one RGB frame. ``shape``: the clip's identity to hold fixed (None = free).
        ``box``: optional (x0, y0, x1, y1) hint (the previous frame's) to pick the face."""
        from facedet3d.fit import camera, detail_input, mp68, occluders, texture
        from facedet3d.fit.select import select_face
        from facedet3d.geometry import raster
        from facedet3d.rig import facs

        b = self.backend
        h, w = rgb.shape[:2]
        dets = b.detector(rgb)
        hint = None if box is None else (box[0], box[1], box[2] - box[0], box[3] - box[1])
        det = select_face(dets, face_index=0, box=hint, image_size=(w, h))
        reading = self.read(rgb, det.box) if self.guide else None
        guide = None if reading is None else reading.landmarks
        fp = camera.fit_face(rgb, np.asarray(det.box, np.float64), b.regressor, b.bfm, refine_landmarks=True,
                             guide=guide)
        rms = 0.0
        if shape is not None:
            target = camera.landmarks_image(b.bfm, fp)[:, :2]
            if guide is not None:  # the free fit only approaches MediaPipe's points (prior)
                target = mp68.targets(target, guide)
            fp, rms = refit_fixed_shape(b.bfm, fp, shape, b.regressor.stats.std, target=target)
        model_v = b.bfm.vertices(fp.shape, fp.exp)
        img_v = camera.project(model_v, fp.projection).astype(np.float32)
        pose = camera.decompose(fp.projection)
        neutral = b.bfm.vertices(fp.shape, None)
        key = np.asarray(fp.shape, np.float32).tobytes()
        if key not in self._deltas:
            self._deltas = {key: b.rig.subject_deltas(neutral)}  # one identity per clip
        rot, scale, t = pose["rotation"], pose["scale_px_per_unit"], fp.projection[:2, 3]
        target = facs.project(model_v[b.bfm.landmarks], rot, scale, t)
        aus = facs.fit_photo_aus(target, neutral, b.rig, rot, scale, t, subject_deltas=self._deltas[key])
        tex, mask = texture.unwrap(rgb, img_v, b.bfm.faces, self.layout)
        # glasses and hair out of the frame's unwrap, as the photo fit does: a rim that the
        # cheek pushes up with a smile would otherwise be learnt as a fold (personal folds)
        occ = occluders.detect(tex, mask, self.layout, b.bfm, b.rig.openings)
        tex, mask = occluders.remove(tex, mask, occ, self.layout, b.bfm, b.rig.openings)
        normals = raster.vertex_normals(model_v @ rot.T, b.bfm.faces)
        detail = detail_input.estimate_detail(tex, mask, self.layout, normals, self.detail_params)
        x0, y0, x1, y1 = (float(v) for v in det.box)
        return FrameFit(rgb=rgb, box=np.array([x0, y0, x1, y1]), shape=np.asarray(fp.shape, np.float32),
                        exp=np.asarray(fp.exp, np.float32), projection=fp.projection, verts_img=img_v,
                        normals_cam=np.asarray(normals, np.float32), texture=tex, mask=mask, detail=detail,
                        aus={int(k): float(v) for k, v in aus.items()}, landmark_rms_px=rms,
                        yaw_deg=pose["yaw_deg"], face_px=float(np.ptp(img_v[b.bfm.landmarks, 0])),
                        landmark_targets=(list(mp68.FIT_REGIONS) if guide is not None else []) if self.guide else None,
                        reading=reading, occluded_fraction=float(occ.sum() / max(int(self.layout.chart.sum()), 1)))

    def fit_clip(self, frames: dict[int, np.ndarray], neutral: int) -> dict[int, FrameFit]:
        """Fit ``frames`` with the identity of frame ``neutral`` held fixed for all of them."""
        if neutral not in frames:
            raise FaceDet3DError(f"neutral frame {neutral} not among the decoded frames")
        first = self.fit(frames[neutral])
        out = {neutral: self.fit(frames[neutral], shape=first.shape)}
        for i, rgb in frames.items():
            if i != neutral:
                try:
                    out[i] = self.fit(rgb, shape=first.shape, box=out[neutral].box)
                except NoFace:
                    continue
        return out
