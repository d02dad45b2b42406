"""``BackendAdapter``: the typed operations the Blender add-on calls (fit, detail, neural
pass), in-process. ``api.http`` serves the same operations over a loopback server for a
Blender whose Python has no torch. Models load lazily, once per adapter."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np

from facedet3d import __version__
from facedet3d.api import types as T
from facedet3d.errors import BadRequest, FaceDet3DError

MAX_SUBJECTS = 8
RETRY_DETP_S = 10.0  # a failed DetP load is tried again on requests at least this far apart


class BackendAdapter:
    """The operations of the add-on over ``fit.pipeline.Backend`` and the detail and neural
    stages (models load lazily, once).

    Thread-safe: a lock serialises fits and detail predictions (one model instance)."""

    def __init__(self, regressor: str = "onnx"):
        self._regressor = regressor
        self._backend = None
        self._lock = threading.RLock()
        self._subjects: OrderedDict[str, object] = OrderedDict()  # subject_id -> FaceAsset
        self._subject_dirs: dict[str, Path] = {}  # subject_id -> its FaceAsset folder (resolved), when it has one
        self._predictor = None
        self._predictor_error = ""
        self._predictor_tried = -RETRY_DETP_S  # time.monotonic() of the last load attempt
        self._tracks = None  # api.tracking.TrackJobs, made on the first track
        self._folds = None  # api.folds.FoldsJobs, made on the first folds call

    # -- status ------------------------------------------------------------------------
    def _detail_predictor(self):
        """The warm DetP predictor (``facedet3d.detail.infer``) or None. A failure is kept
        as ``detail_error`` (shown in the status and the panel) and the load is retried on
        later requests, so a fixed installation recovers without a restart."""
        if self._predictor is None and time.monotonic() - self._predictor_tried >= RETRY_DETP_S:
            self._predictor_tried = time.monotonic()
            try:
                from facedet3d.detail.infer import shared_predictor  # noqa: PLC0415 - heavy stage

                shared_predictor.cache_clear() if self._predictor_error else None
                self._predictor, self._predictor_error = shared_predictor(), ""
            except Exception as exc:  # noqa: BLE001 - any failure: DetP is unavailable, and why
                msg = str(exc).splitlines()[0] if str(exc) else ""
                self._predictor_error = f"detail network unavailable ({type(exc).__name__}: {msg})"
        return self._predictor

    def status(self, mode: str = "in-process") -> T.BackendStatus:
        from facedet3d.api.expressions import PRESETS, preset_aus

        presets = {name: preset_aus(name).tolist() for name in PRESETS}
        pred = self._detail_predictor()
        if pred is not None:
            return T.BackendStatus(mode, __version__, "detp", f"detail network ready ({pred.identity_input})", presets)
        return T.BackendStatus(mode, __version__, "unavailable", self._predictor_error, presets,
                               detail_error=self._predictor_error)

    # -- track (facedet3d track as a background job; api/tracking.py) ---------------------
    def _track_jobs(self):
        with self._lock:
            if self._tracks is None:
                from facedet3d.api.tracking import TrackJobs

                self._tracks = TrackJobs()
            return self._tracks

    def track_start(self, call: T.TrackCall) -> T.TrackState:
        """Start tracking ``call.source`` (a video or a Live Link Face CSV); poll with ``track_state``."""
        return self._track_jobs().start(call)

    def track_state(self, req: T.TrackPoll) -> T.TrackState:
        """Progress of a track job (and its track JSON once done); ``req.cancel`` stops it."""
        return self._track_jobs().poll(req)

    # -- personal folds (facedet3d folds as a background job; api/folds.py) ---------------
    def _folds_jobs(self):
        with self._lock:
            if self._folds is None:
                from facedet3d.api.folds import FoldsJobs

                self._folds = FoldsJobs(on_change=self._reload_subjects)
            return self._folds

    def folds_start(self, call: T.FoldsCall) -> T.FoldsState:
        """Learn the person's folds from ``call.video`` into ``call.asset_dir`` (poll with
        ``folds_state``), or, with ``call.remove``, delete them at once."""
        return self._folds_jobs().start(call)

    def folds_state(self, req: T.FoldsPoll) -> T.FoldsState:
        """Progress of a folds job (and what was learnt once done); ``req.cancel`` stops it."""
        return self._folds_jobs().poll(req)

    def _reload_subjects(self, asset_dir: Path) -> None:
        """Re-read the cached subjects of ``asset_dir`` (its folds changed on disk)."""
        from facedet3d.fit import faceasset

        with self._lock:
            sids = [sid for sid, d in self._subject_dirs.items() if d == asset_dir and sid in self._subjects]
            if sids:
                asset = faceasset.read(asset_dir)
                for sid in sids:
                    self._subjects[sid] = asset

    # -- fit -----------------------------------------------------------------------------
    def _service(self):
        if self._backend is None:
            from facedet3d.fit.pipeline import Backend

            self._backend = Backend(regressor_backend=self._regressor)
        return self._backend

    def fit(self, call: T.FitCall) -> T.FaceData:
        from facedet3d.fit import faceasset
        from facedet3d.fit.pipeline import FitRequest

        box = tuple(float(v) for v in call.box) if call.box else None
        req = FitRequest(photo=str(call.photo), box=box, face=int(call.face), texture_size=int(call.texture_size))
        with self._lock:
            svc = self._service()
            t0 = time.perf_counter()
            asset, asset_dir = svc.fit(req), ""
            if call.out_dir:  # written once; the in-memory asset is the one just written
                asset_dir = str(faceasset.write(asset, call.out_dir).resolve())
            fit_ms = (time.perf_counter() - t0) * 1000.0
            sid = uuid.uuid4().hex[:12]
            self._remember(sid, asset, asset_dir)
        return self._face_data(sid, asset_dir, asset, {"fit": round(fit_ms, 1)})

    def face_data(self, asset_dir: str) -> T.FaceData:
        """An existing FaceAsset folder as FaceData (no fit)."""
        from facedet3d.fit import faceasset

        asset = faceasset.read(asset_dir)
        sid = uuid.uuid4().hex[:12]
        with self._lock:
            self._remember(sid, asset, asset_dir)
        return self._face_data(sid, str(Path(asset_dir).resolve()), asset, {})

    def _remember(self, sid: str, asset, asset_dir: str = "") -> None:
        self._subjects[sid] = asset
        if asset_dir:
            self._subject_dirs[sid] = Path(asset_dir).resolve()
        while len(self._subjects) > MAX_SUBJECTS:
            self._subject_dirs.pop(self._subjects.popitem(last=False)[0], None)

    def _face_data(self, sid: str, asset_dir: str, asset, timings: dict) -> T.FaceData:
        from facedet3d.assets import bfm as bfm_mod
        from facedet3d.rig import facs

        t0 = time.perf_counter()
        names, shapes, a2b = self._rig_arrays(asset)
        timings["rig"] = round((time.perf_counter() - t0) * 1000.0, 1)
        photo_aus = np.zeros(len(T.AU_IDS), np.float32)
        for k, v in (asset.meta.aus or {}).items():
            if int(k) in T.AU_IDS:
                photo_aus[T.AU_IDS.index(int(k))] = float(v)
        pose = asset.meta.pose
        proj = np.asarray(pose.projection, np.float64)
        cam = T.CameraSpec(rotation=np.asarray(pose.rotation, np.float64).tolist(),
                           scale_px_per_m=float(pose.scale_px_per_m),
                           translation_px=[float(proj[0, 3]), float(proj[1, 3])],
                           image_size=[int(v) for v in asset.meta.image_size],
                           face_box=[float(v) for v in asset.meta.box])
        assert tuple(facs.AU_IDS) == T.AU_IDS and bfm_mod.METRES_PER_UNIT > 0
        return T.FaceData(
            subject_id=sid, asset_dir=asset_dir,
            vertices=np.asarray(asset.vertices, np.float32), faces=np.asarray(asset.faces, np.int32),
            uv=np.asarray(asset.uv, np.float32), texture=np.ascontiguousarray(asset.texture, np.uint8),
            detail=np.asarray(asset.detail_input, np.float32), blendshapes=shapes, names=names,
            au_to_blendshape=a2b, photo_aus=photo_aus, camera=cam, photo=asset.meta.photo,
            detail_source="detp" if self._detail_predictor() is not None else "unavailable", timings_ms=timings,
            head=head_parts(asset.head, names), warnings=[str(w) for w in (asset.meta.warnings or [])])

    @staticmethod
    def _rig_arrays(asset):
        """(names, (K,N,3) metres, (17,K)) from the asset's rig.npz, else the cached rig."""
        from facedet3d.assets import bfm as bfm_mod
        from facedet3d.rig import facs

        if asset.rig is not None and "blendshapes" in asset.rig:
            names = [str(n) for n in asset.rig["names"]]
            a2b = asset.rig.get("au_to_blendshape")
            return names, np.asarray(asset.rig["blendshapes"], np.float32), \
                np.asarray(a2b if a2b is not None else facs.au_to_blendshape(names), np.float32)
        from facedet3d.rig import transfer as rig_mod

        r = rig_mod.load_rig()
        names = [str(n) for n in r.names]
        shapes = rig_mod.subject_blendshapes(r, np.asarray(asset.vertices, np.float64) / bfm_mod.METRES_PER_UNIT)
        return names, shapes, facs.au_to_blendshape(names)

    # -- detail --------------------------------------------------------------------------
    def _subject(self, sid: str, asset_dir: str):
        from facedet3d.fit import faceasset

        if sid in self._subjects:
            self._subjects.move_to_end(sid)
            return self._subjects[sid]
        if asset_dir and Path(asset_dir, "meta.json").is_file():
            asset = faceasset.read(asset_dir)
            self._remember(sid, asset, asset_dir)
            return asset
        raise BadRequest(f"unknown subject {sid!r} and no FaceAsset folder to reload it from; import the photo again")

    def detail(self, req: T.DetailRequest) -> T.DetailResult:
        """DetP maps for the request's AU rows. Without DetP this fails with the reason
        (never the photo's own map in its place)."""
        from facedet3d.api.expressions import resolve_age

        if int(req.size) not in T.DETAIL_SIZES:
            raise BadRequest(f"detail size {req.size} is not one of {T.DETAIL_SIZES}")
        try:
            aus = T.check_aus(req.target_aus)
            sides = T.check_sides(req.sides, len(aus))
            years = resolve_age(req.age)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        t0 = time.perf_counter()
        with self._lock:
            asset = self._subject(req.subject_id, req.asset_dir)
            pred = self._detail_predictor()
            if pred is None:
                raise FaceDet3DError(self._predictor_error)
            maps = np.stack([np.asarray(pred.for_asset(asset, row, age=years, size=int(req.size), sides=side),
                                        np.float32) for row, side in zip(aus, sides)])
        return T.DetailResult(np.ascontiguousarray(maps, np.float32), "detp", (time.perf_counter() - t0) * 1000.0)

    # -- neural render pass ---------------------------------------------------------------
    def neural_fit(self, call: T.NeuralFitCall) -> T.NeuralInfo:
        """Fit (or, unless ``refit``, reuse) the subject's neural pass."""
        from facedet3d.fit import faceasset
        from facedet3d.neural import fit as nfit, model as nmodel
        from facedet3d.neural.scene import NeuralInputError

        d = Path(call.asset_dir)
        try:
            box = faceasset.read_meta(d).box  # meta.json only: the fit reads the rest itself
        except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
            raise NeuralInputError(f"{d} is not a FaceAsset folder ({exc}); create one with `facedet3d fit`") from None
        t0, fitted = time.perf_counter(), False
        with self._lock:
            if call.refit or not (d / nmodel.WEIGHTS_FILE).is_file():
                fitted = True
                cfg = nmodel.NeuralConfig()
                if call.steps:
                    cfg.steps = int(call.steps)
                if call.size:
                    if call.size < 64 or call.size % 16:
                        raise BadRequest("neural size must be a multiple of 16, at least 64")
                    cfg.size = int(call.size)
                nfit.fit_subject(d, cfg, photo=call.photo or None)
            meta = nmodel.read_meta(d)
        fit_s = time.perf_counter() - t0 if fitted else 0.0
        m = meta["report"]["metrics"]["render"]
        return T.NeuralInfo(size=int(meta["config"]["size"]), crop=T.face_square(box),
                            psnr_db=float(m["psnr"]), ssim=float(m["ssim"]), fit_s=round(fit_s, 2),
                            device=str(meta["report"].get("device", "")),
                            perceptual_used=str(meta["report"].get("perceptual", "")).startswith("perceptual loss on"),
                            perceptual=str(meta["report"].get("perceptual", "")))

    def neural_frame(self, req: T.NeuralFrameRequest) -> T.NeuralFrame:
        from facedet3d.neural.passes import render_from_passes

        t0 = time.perf_counter()
        with self._lock:
            img, proxy = render_from_passes(req.asset_dir, req.detailed_exr, req.proxy_exr,
                                            np.asarray(req.world_to_camera, np.float64), req.lighting or None)
        return T.NeuralFrame(img, proxy, (time.perf_counter() - t0) * 1000.0)


def head_parts(head: dict | None, names: list) -> T.HeadParts | None:
    """The FaceAsset's ``head.npz`` arrays (``rig.head.subject_head``) as the typed
    ``HeadParts`` of FaceData; None for an asset without them. A head whose shapes are not
    the face's (``names``) is an error: the asset is from another rig version."""
    if head is None:
        return None
    from facedet3d.rig.parts import MERGED

    if [str(n) for n in head["names"]] != [str(n) for n in names]:
        raise ValueError("head.npz shape names differ from the face's rig: fit the photo again")
    parts = {}
    for name in (str(n) for n in head["part_names"]):
        parts[name] = T.HeadPart(
            vertices=np.asarray(head[f"{name}_vertices"], np.float32),
            faces=np.asarray(head[f"{name}_faces"], np.int32),
            uv=np.asarray(head[f"{name}_uv"], np.float32),
            face_uv=np.asarray(head[f"{name}_face_uv"], np.float32),
            blendshapes=np.asarray(head[f"{name}_blendshapes"], np.float32),
            colour=np.asarray(head[f"{name}_colour"], np.uint8),
            material=np.asarray(head[f"{name}_material"], np.int8),
            materials=[str(m) for m in head[f"{name}_materials"]],
            centre=[float(c) for c in head[f"{name}_centre"]] if f"{name}_centre" in head else [],
            merged=[m for m in MERGED.get(name, ()) if m in T.PART_TAGS])  # gums are no tag
    return T.HeadParts(parts=parts, face_hidden=np.asarray(head["face_hidden"], np.int32),
                       head_seam=np.asarray(head["head_seam_bfm"], np.int32),
                       mouth_seam=np.asarray(head["mouth_seam_bfm"], np.int32))
