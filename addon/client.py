"""The ONE way the add-on reaches the backend (no bpy, no torch here).

- in-process: ``facedet3d.api.adapter.BackendAdapter`` when ``facedet3d`` and torch import in
  this Python (the bpy module in the project venv, ``facedet3d render`` batch runs);
- server: ``facedet3d serve`` started with the Python interpreter named in the preferences
  (it prints its port and a random token on its first stdout line), or a server already
  running on 127.0.0.1 at a given port with its token.

Every client has ``status() -> BackendStatus``, ``fit(FitCall) -> FaceData``,
``detail(DetailRequest) -> DetailResult``, ``neural_fit(NeuralFitCall) -> NeuralInfo`` and
``neural_frame(NeuralFrameRequest) -> NeuralFrame``, ``track_start(TrackCall) -> TrackState``,
``track_state(TrackPoll) -> TrackState``, ``folds_start(FoldsCall) -> FoldsState`` and
``folds_state(FoldsPoll) -> FoldsState``; failures raise ``BackendError`` (one line).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import threading
import urllib.error
import urllib.request

from ._api import types as T  # generated copy of facedet3d/api/types.py (build_addon.py --sync)

TOKEN_HEADER = "X-FaceDet3D-Token"
MAX_RESPONSE_BYTES = 2 * 1024**3
START_TIMEOUT_S = 120.0


class BackendError(Exception):
    """A backend failure; ``str(e)`` is one line for ``self.report``."""


class BackendUnavailable(BackendError):
    """No backend could be reached or started."""


def in_process_available() -> bool:
    return importlib.util.find_spec("facedet3d") is not None and importlib.util.find_spec("torch") is not None


class InProcessClient:
    mode = "in-process"

    def __init__(self):
        from facedet3d.api.adapter import BackendAdapter

        self._adapter = BackendAdapter()

    def _call(self, fn, *args):
        from facedet3d.errors import FaceDet3DError

        try:
            return fn(*args)
        except FaceDet3DError as exc:
            raise BackendError(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise BackendError(f"{type(exc).__name__}: {exc}") from None

    def status(self) -> T.BackendStatus:
        return self._adapter.status(self.mode)

    def fit(self, call: T.FitCall) -> T.FaceData:
        return self._call(self._adapter.fit, call)

    def detail(self, req: T.DetailRequest) -> T.DetailResult:
        return self._call(self._adapter.detail, req)

    def neural_fit(self, call: T.NeuralFitCall) -> T.NeuralInfo:
        return self._call(self._adapter.neural_fit, call)

    def neural_frame(self, req: T.NeuralFrameRequest) -> T.NeuralFrame:
        return self._call(self._adapter.neural_frame, req)

    def track_start(self, call: T.TrackCall) -> T.TrackState:
        return self._call(self._adapter.track_start, call)

    def track_state(self, req: T.TrackPoll) -> T.TrackState:
        return self._call(self._adapter.track_state, req)

    def folds_start(self, call: T.FoldsCall) -> T.FoldsState:
        return self._call(self._adapter.folds_start, call)

    def folds_state(self, req: T.FoldsPoll) -> T.FoldsState:
        return self._call(self._adapter.folds_state, req)

    def close(self):
        pass


class HttpClient:
    mode = "server"

    def __init__(self, port: int, token: str, proc: subprocess.Popen | None = None, host: str = "127.0.0.1"):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise BackendUnavailable(f"the backend server must be on this computer (127.0.0.1), not {host}")
        self.url, self.token, self.proc = f"http://{host}:{int(port)}", token, proc

    def _request(self, path: str, body, expect, timeout: float = 600):
        data = None if body is None else T.encode(body)
        req = urllib.request.Request(self.url + path, data=data, method="GET" if body is None else "POST",
                                     headers={TOKEN_HEADER: self.token, "Content-Type": "application/x-npz"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = resp.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            try:
                msg = json.loads(exc.read(65536).decode("utf-8"))["error"]
            except Exception:  # noqa: BLE001
                msg = f"HTTP {exc.code}"
            raise BackendError(f"backend: {msg}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendUnavailable(f"backend server at {self.url} is not reachable ({reason}); "
                                     "start 'facedet3d serve' or check the add-on preferences") from None
        if len(payload) > MAX_RESPONSE_BYTES:
            raise BackendError("backend answer exceeds the size limit")
        try:
            return T.decode(payload, expect=expect)
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"malformed backend answer: {exc}") from None

    def status(self) -> T.BackendStatus:
        st = self._request("/status", None, T.BackendStatus)
        check_version(getattr(st, "api_version", None))
        return st

    def fit(self, call: T.FitCall) -> T.FaceData:
        return self._request("/fit", call, T.FaceData)

    def detail(self, req: T.DetailRequest) -> T.DetailResult:
        return self._request("/detail", req, T.DetailResult)

    def neural_fit(self, call: T.NeuralFitCall) -> T.NeuralInfo:
        return self._request("/neural-fit", call, T.NeuralInfo, timeout=3600)

    def neural_frame(self, req: T.NeuralFrameRequest) -> T.NeuralFrame:
        return self._request("/neural-frame", req, T.NeuralFrame)

    def track_start(self, call: T.TrackCall) -> T.TrackState:
        return self._request("/track", call, T.TrackState)

    def track_state(self, req: T.TrackPoll) -> T.TrackState:
        return self._request("/track-state", req, T.TrackState)

    def folds_start(self, call: T.FoldsCall) -> T.FoldsState:
        return self._request("/folds", call, T.FoldsState)

    def folds_state(self, req: T.FoldsPoll) -> T.FoldsState:
        return self._request("/folds-state", req, T.FoldsState)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def start_server(python: str, timeout_s: float = START_TIMEOUT_S) -> HttpClient:
    """Start ``python -m facedet3d.cli serve --port 0`` and connect to it."""
    try:
        proc = subprocess.Popen([python, "-m", "facedet3d.cli", "serve", "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise BackendUnavailable(f"cannot start the backend with {python!r}: {exc.strerror or exc}") from None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    try:
        info = json.loads(line[0]) if line and line[0] else None
    except ValueError:
        info = None
    if not info or "port" not in info:
        proc.kill()
        err = (proc.stderr.read() if proc.poll() is not None else "").strip().splitlines()
        why = err[-1] if err else "no answer"
        raise BackendUnavailable(f"the backend server did not start with {python!r} ({why}); "
                                 "is facedet3d installed for that Python?")
    try:
        check_version(info.get("facedet3d_server"))
    except BackendError:
        proc.kill()
        raise
    return HttpClient(info["port"], info["token"], proc)


def check_version(got) -> None:
    """Refuse a backend of another API version, with a one-line reason."""
    if got != T.API_VERSION:
        raise BackendUnavailable(f"the backend speaks API version {got}, this add-on needs {T.API_VERSION}: "
                                 "install the matching facedet3d backend (preferences > Set Up Backend)")


_lock = threading.Lock()
_client = None
_client_key = None


def get_client(mode: str = "AUTO", python: str = "", port: int = 0, token: str = ""):
    """The shared client for these settings (created once; changing settings replaces it)."""
    global _client, _client_key
    key = (mode, python, port, token)
    with _lock:
        if _client is not None and (_client_key == key or _client_key == ("INJECTED",)):
            return _client
        if _client is not None:
            _client.close()
            _client = None
        if mode == "ADDRESS":
            if not port or not token:
                raise BackendUnavailable("set the backend server's port and token in the add-on preferences")
            client = HttpClient(port, token)
            client.status()  # reachable, and the same API version
        elif mode == "AUTO" and in_process_available():
            client = InProcessClient()
        elif python:
            client = start_server(python)
        else:
            raise BackendUnavailable("the facedet3d backend is not importable in this Blender; "
                                     "name its Python interpreter in the add-on preferences")
        _client, _client_key = client, key
        return client


def set_client(client) -> None:
    """Replace the shared client (tests inject fakes; ``None`` resets)."""
    global _client, _client_key
    with _lock:
        _client, _client_key = client, ("INJECTED",) if client is not None else None


def current():
    return _client


def shutdown() -> None:
    global _client, _client_key
    with _lock:
        if _client is not None:
            _client.close()
        _client, _client_key = None, None
