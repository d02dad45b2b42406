"""``serve``: the operations of ``api.adapter.BackendAdapter`` over a loopback HTTP server
for a Blender whose Python has no torch.

Server protocol (``facedet3d serve``):
- binds 127.0.0.1 only (a non-loopback host is refused); port 0 picks a free port;
- every request carries ``X-FaceDet3D-Token: <token>`` (random per start, compared in
  constant time); wrong or missing token -> 403;
- ``GET /status`` -> ``BackendStatus``; ``POST /fit`` body ``FitCall`` -> ``FaceData``;
  ``POST /detail`` body ``DetailRequest`` -> ``DetailResult``; ``POST /neural-fit``
  ``NeuralFitCall`` -> ``NeuralInfo``; ``POST /neural-frame`` ``NeuralFrameRequest`` ->
  ``NeuralFrame`` (the passes files are read on this machine); ``POST /track`` ``TrackCall``
  -> ``TrackState`` (starts a track job) and ``POST /track-state`` ``TrackPoll`` ->
  ``TrackState`` (progress, cancel, and the track JSON once done); ``POST /folds`` ``FoldsCall``
  -> ``FoldsState`` (starts a folds job, or removes the folds) and ``POST /folds-state``
  ``FoldsPoll`` -> ``FoldsState``; bodies and answers use the ``api_types`` npz wire format
  (never pickled);
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


from facedet3d.api import types as T
from facedet3d.api.adapter import BackendAdapter
from facedet3d.errors import BadRequest, FaceDet3DError

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # FitCall / DetailRequest: a few KB; 4 MB covers long bakes
TOKEN_HEADER = "X-FaceDet3D-Token"


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
                  "/neural-fit": (T.NeuralFitCall, a.neural_fit), "/neural-frame": (T.NeuralFrameRequest, a.neural_frame),
                  "/track": (T.TrackCall, a.track_start), "/track-state": (T.TrackPoll, a.track_state),
                  "/folds": (T.FoldsCall, a.folds_start), "/folds-state": (T.FoldsPoll, a.folds_state)}
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
