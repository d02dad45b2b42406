"""The add-on's backend: ``BackendAdapter`` (the typed operations the Blender add-on calls,
in-process) and ``serve`` (the same operations over a loopback HTTP server for a Blender
whose Python has no torch).

Server protocol (``facedet3d serve``):
- binds 127.0.0.1 only (a non-loopback host is refused); port 0 picks a free port;
- every request carries ``X-FaceDet3D-Token: <token>`` (random per start, compared in
  constant time); wrong or missing token -> 403;
- ``GET /status`` -> ``BackendStatus``; ``POST /fit`` body ``FitCall`` -> ``FaceData``;
  ``POST /detail`` body ``DetailRequest`` -> ``DetailResult``; ``POST /neural-fit``
  ``NeuralFitCall`` -> ``NeuralInfo``; ``POST /neural-frame`` ``NeuralFrameRequest`` ->
  ``NeuralFrame`` (the passes files are read on this machine); bodies and answers use the
  ``api_types`` npz wire format (never pickled);
- request bodies are limited to ``MAX_REQUEST_BYTES`` (413 beyond); errors answer JSON
  ``{"error": one line, "kind": class name}`` with 400 (bad input) or 500;
- on start it prints one JSON line ``{"facedet3d_server": 1, "port": P, "token": T}`` on
  stdout, which is how the add-on that started it learns where to connect.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import sys
import threading
import time
import uuid
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from . import __version__, api_types as T
from .errors import FaceDet3DError

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # FitCall / DetailRequest: a few KB; 4 MB covers long bakes
MAX_SUBJECTS = 8
DEFAULT_AGE = 35.0  # years, when the user leaves the age unknown (0)
TOKEN_HEADER = "X-FaceDet3D-Token"


class BadRequest(FaceDet3DError):
    """A request the backend cannot serve (unknown subject, bad size, bad AUs)."""

    exit_code = 2


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[0] == size:
        return img.astype(np.float32, copy=True)
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img.astype(np.float32), (size, size), interpolation=interp)


class BackendAdapter:
    """The operations of the add-on over ``facedet3d.service`` (models load lazily, once).

    Thread-safe: a lock serialises fits and detail predictions (one model instance)."""

    def __init__(self, regressor: str = "onnx"):
        self._regressor = regressor
        self._backend = None
        self._lock = threading.RLock()
        self._subjects: OrderedDict[str, object] = OrderedDict()  # subject_id -> FaceAsset
        self._predictor = None
        self._predictor_error = ""

    # -- status ------------------------------------------------------------------------
    def _detail_predictor(self):
        """The warm DetP predictor (``facedet3d.detail.infer``) or None (the reason is kept
        and shown as the backend status; the add-on then uses the photo's own map)."""
        if self._predictor is None and not self._predictor_error:
            try:
                from .detail.infer import shared_predictor  # noqa: PLC0415 - optional stage

                self._predictor = shared_predictor()
            except Exception as exc:  # noqa: BLE001 - any failure means "not available"
                msg = str(exc).splitlines()[0] if str(exc) else ""
                self._predictor_error = f"detail network unavailable ({type(exc).__name__}: {msg})"
        return self._predictor

    def status(self, mode: str = "in-process") -> T.BackendStatus:
        from . import facs

        presets = {name: facs.preset_aus(name).tolist() for name in facs.PRESETS}
        if self._detail_predictor() is not None:
            return T.BackendStatus(mode, __version__, "detp", "detail network ready", presets)
        return T.BackendStatus(mode, __version__, "detail_input",
                               f"{self._predictor_error}; using the photo's own detail map (no expression wrinkles)",
                               presets)

    # -- fit -----------------------------------------------------------------------------
    def _service(self):
        if self._backend is None:
            from .service import Backend

            self._backend = Backend(regressor_backend=self._regressor)
        return self._backend

    def fit(self, call: T.FitCall) -> T.FaceData:
        from . import faceasset
        from .service import FitRequest

        box = tuple(float(v) for v in call.box) if call.box else None
        req = FitRequest(photo=str(call.photo), box=box, face=int(call.face), texture_size=int(call.texture_size))
        with self._lock:
            svc = self._service()
            t0 = time.perf_counter()
            if call.out_dir:
                path = svc.fit_to_disk(req, call.out_dir)
                asset = faceasset.read(path)
                asset_dir = str(Path(path).resolve())
            else:
                asset, asset_dir = svc.fit(req), ""
            fit_ms = (time.perf_counter() - t0) * 1000.0
            sid = uuid.uuid4().hex[:12]
            self._remember(sid, asset)
        return self._face_data(sid, asset_dir, asset, {"fit": round(fit_ms, 1)})

    def face_data(self, asset_dir: str) -> T.FaceData:
        """An existing FaceAsset folder as FaceData (no fit)."""
        from . import faceasset

        asset = faceasset.read(asset_dir)
        sid = uuid.uuid4().hex[:12]
        with self._lock:
            self._remember(sid, asset)
        return self._face_data(sid, str(Path(asset_dir).resolve()), asset, {})

    def _remember(self, sid: str, asset) -> None:
        self._subjects[sid] = asset
        while len(self._subjects) > MAX_SUBJECTS:
            self._subjects.popitem(last=False)

    def _face_data(self, sid: str, asset_dir: str, asset, timings: dict) -> T.FaceData:
        from . import bfm as bfm_mod, facs

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
            detail_source=self.status().detail_source, timings_ms=timings)

    @staticmethod
    def _rig_arrays(asset):
        """(names, (K,N,3) metres, (17,K)) from the asset's rig.npz, else the cached rig."""
        from . import bfm as bfm_mod, facs

        if asset.rig is not None and "blendshapes" in asset.rig:
            names = [str(n) for n in asset.rig["names"]]
            a2b = asset.rig.get("au_to_blendshape")
            return names, np.asarray(asset.rig["blendshapes"], np.float32), \
                np.asarray(a2b if a2b is not None else facs.au_to_blendshape(names), np.float32)
        from . import rig as rig_mod

        r = rig_mod.load_rig()
        names = [str(n) for n in r.names]
        shapes = rig_mod.subject_blendshapes(r, np.asarray(asset.vertices, np.float64) / bfm_mod.METRES_PER_UNIT)
        return names, shapes, facs.au_to_blendshape(names)

    # -- detail --------------------------------------------------------------------------
    def _subject(self, sid: str, asset_dir: str):
        from . import faceasset

        if sid in self._subjects:
            self._subjects.move_to_end(sid)
            return self._subjects[sid]
        if asset_dir and Path(asset_dir, "meta.json").is_file():
            asset = faceasset.read(asset_dir)
            self._remember(sid, asset)
            return asset
        raise BadRequest(f"unknown subject {sid!r} and no FaceAsset folder to reload it from; import the photo again")

    def detail(self, req: T.DetailRequest) -> T.DetailResult:
        if int(req.size) not in T.DETAIL_SIZES:
            raise BadRequest(f"detail size {req.size} is not one of {T.DETAIL_SIZES}")
        try:
            aus = T.check_aus(req.target_aus)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        t0 = time.perf_counter()
        with self._lock:
            asset = self._subject(req.subject_id, req.asset_dir)
            pred = self._detail_predictor()
            if pred is not None:
                maps, source = self._predict(pred, asset, aus, float(req.age), int(req.size)), "detp"
            else:
                base = _resize(asset.detail_input, int(req.size))
                maps, source = np.repeat(base[None], len(aus), 0), "detail_input"
        return T.DetailResult(np.ascontiguousarray(maps, np.float32), source, (time.perf_counter() - t0) * 1000.0)

    @staticmethod
    def _predict(pred, asset, aus: np.ndarray, age: float, size: int) -> np.ndarray:
        """(T,S,S) metres from ``DetailPredictor.for_asset`` (source = the photo's map and
        AUs). Age 0 (unknown) is sent as DEFAULT_AGE years."""
        years = age if age > 0 else DEFAULT_AGE
        return np.stack([np.asarray(pred.for_asset(asset, row, age=years, size=size), np.float32) for row in aus])


    # -- neural render pass ---------------------------------------------------------------
    def neural_fit(self, call: T.NeuralFitCall) -> T.NeuralInfo:
        """Fit (or, unless ``refit``, reuse) the subject's neural pass."""
        from . import faceasset
        from .neural import fit as nfit, model as nmodel
        from .neural.scene import NeuralInputError

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
                            device=str(meta["report"].get("device", "")))

    def neural_frame(self, req: T.NeuralFrameRequest) -> T.NeuralFrame:
        from .neural.passes import render_from_passes

        t0 = time.perf_counter()
        with self._lock:
            img, proxy = render_from_passes(req.asset_dir, req.detailed_exr, req.proxy_exr,
                                            np.asarray(req.world_to_camera, np.float64), req.lighting or None)
        return T.NeuralFrame(img, proxy, (time.perf_counter() - t0) * 1000.0)


# --- HTTP ---------------------------------------------------------------------------------

def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    server_version = "facedet3d"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if getattr(self.server, "verbose", False):
            sys.stderr.write("serve: " + fmt % args + "\n")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, message: str, kind: str = "error") -> None:
        self._send(code, json.dumps({"error": message, "kind": kind}).encode(), "application/json")

    def _authorised(self) -> bool:
        token = self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.server.token.encode()):
            self._error(403, "wrong or missing token", "Forbidden")
            return False
        return True

    def do_GET(self):  # noqa: N802
        if not self._authorised():
            return
        if self.path != "/status":
            return self._error(404, f"no such endpoint {self.path}", "NotFound")
        self._send(200, T.encode(self.server.adapter.status("server")), "application/x-npz")

    def do_POST(self):  # noqa: N802
        if not self._authorised():
            return
        a = self.server.adapter
        routes = {"/fit": (T.FitCall, a.fit), "/detail": (T.DetailRequest, a.detail),
                  "/neural-fit": (T.NeuralFitCall, a.neural_fit), "/neural-frame": (T.NeuralFrameRequest, a.neural_frame)}
        if self.path not in routes:
            return self._error(404, f"no such endpoint {self.path}", "NotFound")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._error(411, "Content-Length required", "LengthRequired")
        if length < 0 or length > MAX_REQUEST_BYTES:
            self.close_connection = True
            return self._error(413, f"request of {length} bytes exceeds the {MAX_REQUEST_BYTES}-byte limit", "TooLarge")
        cls, fn = routes[self.path]
        try:
            req = T.decode(self.rfile.read(length), expect=cls)
        except Exception as exc:  # noqa: BLE001 - malformed body
            return self._error(400, f"malformed {cls.__name__}: {exc}", "BadRequest")
        try:
            result = fn(req)
        except FaceDet3DError as exc:
            return self._error(400, str(exc), type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - one line back to the add-on
            return self._error(500, f"unexpected {type(exc).__name__}: {exc}", type(exc).__name__)
        self._send(200, T.encode(result), "application/x-npz")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, adapter: BackendAdapter, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, verbose: bool = False):
        if not _is_loopback(host):
            raise BadRequest(f"refusing to listen on {host}: the backend server is loopback only (127.0.0.1)")
        super().__init__((host, port), _Handler)
        self.adapter, self.token, self.verbose = adapter, token or secrets.token_urlsafe(32), verbose

    @property
    def port(self) -> int:
        return self.server_address[1]


def serve(host: str = "127.0.0.1", port: int = 0, token: str | None = None, regressor: str = "onnx",
          verbose: bool = False, adapter: BackendAdapter | None = None) -> None:
    """Run the server until interrupted; prints the connection line first."""
    srv = Server(adapter or BackendAdapter(regressor), host, port, token, verbose)
    print(json.dumps({"facedet3d_server": T.API_VERSION, "port": srv.port, "token": srv.token}), flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
