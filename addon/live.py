"""Live detail: each AU change asks for a new detail map without blocking the UI.

Per face one ``DetailUpdater``: a single slot for the latest request (rapid changes
coalesce, latest wins), one worker thread calling the backend, a single slot for the latest
result. The main thread applies results (``bpy.app.timers`` in the UI; ``flush()`` in
background runs and before renders/bakes/saves) with ``pixels.foreach_set``. A failed
prediction keeps the last good map and is reported once (``facedet3d.detail_error``).
Memory stays bounded: at most one pending request, one in flight and one result per face.
"""

from __future__ import annotations

import threading
import time

import bpy
from bpy.app.handlers import persistent

_updaters: dict[int, "DetailUpdater"] = {}
_guard = 0  # > 0 while the add-on itself sets AU properties (no requests)
_TIMER_S = 0.03


class DetailUpdater:
    def __init__(self):
        self._lock = threading.Lock()
        self._pending = None  # (seq, request, client or a no-argument callable returning one)
        self._result = None  # (seq, maps or None, error or None, source)
        self._worker: threading.Thread | None = None
        self._seq = 0
        self.last_aus = None
        self.computed = 0  # how many predictions actually ran (coalescing shows here)

    def request(self, req, client) -> int:
        with self._lock:
            self._seq += 1
            self._pending = (self._seq, req, client)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="facedet3d-detail", daemon=True)
                self._worker.start()
            return self._seq

    def _run(self):
        while True:
            with self._lock:
                job, self._pending = self._pending, None
                if job is None:
                    self._worker = None
                    return
            seq, req, client = job
            try:
                if callable(client):  # started/connected here, off the main thread (server start-up: seconds)
                    client = client()
                res = client.detail(req)
                out = (seq, res.maps[-1], None, res.source)
            except Exception as exc:  # noqa: BLE001 - reported on the main thread
                out = (seq, None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, "")
            with self._lock:
                self.computed += 1
                if self._result is None or self._result[0] < seq:
                    self._result = out

    def busy(self) -> bool:
        with self._lock:
            return self._pending is not None or (self._worker is not None and self._worker.is_alive())

    def take(self):
        with self._lock:
            out, self._result = self._result, None
            return out

    def wait(self, timeout: float = 120.0) -> bool:
        t_end = time.monotonic() + timeout
        while self.busy():
            if time.monotonic() > t_end:
                return False
            time.sleep(0.002)
        return True


def updater(obj) -> DetailUpdater:
    return _updaters.setdefault(obj.session_uid, DetailUpdater())


def make_request(obj, rows=None, size=None):
    """DetailRequest for (T,19) expression rows (17 AUs + left/right side multipliers; (T,17)
    rows mean both sides), default: the object's current expression."""
    import numpy as np

    from .client import T
    from .properties import expression_row

    s = obj.facedet3d
    rows = np.asarray([expression_row(obj)] if rows is None else rows, np.float32)
    rows = rows.reshape(len(rows), -1)
    sides = rows[:, 17:19] if rows.shape[1] == 19 else None
    return T.DetailRequest(subject_id=s.subject_id, asset_dir=bpy.path.abspath(s.asset_dir), target_aus=rows[:, :17],
                           age=float(s.age), size=int(size or s.detail_resolution), sides=sides)


def is_live(obj) -> bool:
    """A face whose detail map follows its AUs (live updates on, not baked)."""
    s = getattr(obj, "facedet3d", None)
    return bool(s and s.is_face and s.live_update and not s.baked_dir)


def request_update(obj, force: bool = False) -> bool:
    """Queue a detail prediction for the object's current AUs (no-op when unchanged)."""
    from . import preferences
    from .properties import expression_row

    if not is_live(obj):
        return False
    row = expression_row(obj)  # read once: the key and the request (the AU-change hot path)
    key = (tuple(round(v, 6) for v in row), obj.facedet3d.age, obj.facedet3d.detail_resolution)
    up = updater(obj)
    if not force and key == up.last_aus:
        return False
    try:
        factory = preferences.client_factory()
    except Exception as exc:  # noqa: BLE001
        _report(obj, str(exc))
        return False
    up.last_aus = key
    up.request(make_request(obj, [row]), factory)
    _ensure_timer()
    return True


def on_settings_changed(obj) -> None:
    if _guard == 0 and obj is not None:
        request_update(obj)


class quiet:
    """``with live.quiet():`` set AU properties without triggering requests."""

    def __enter__(self):
        global _guard
        _guard += 1

    def __exit__(self, *exc):
        global _guard
        _guard -= 1


def _report(obj, msg: str) -> None:
    s = obj.facedet3d
    if s.detail_error != msg:  # report once per distinct failure
        s.detail_error = msg
        print(f"FaceDet3D: detail update failed, keeping the last map: {msg}")


def _faces():
    return [o for o in bpy.data.objects if o.session_uid in _updaters and getattr(o, "facedet3d", None)
            and o.facedet3d.is_face]


def apply_ready() -> int:
    """Apply finished predictions to their images (main thread). Returns how many."""
    from .adapters import displacement

    n = 0
    for obj in _faces():
        got = _updaters[obj.session_uid].take()
        if got is None:
            continue
        _, maps, err, source = got
        if err is not None:
            _report(obj, err)
            continue
        img = displacement.image(obj)
        # a baked face shows its sequence; the live image is GENERATED until the first save
        # packs it (then FILE), and it must keep updating after that and in reopened files
        if img is None or obj.facedet3d.baked_dir or img.source in ("SEQUENCE", "MOVIE"):
            continue
        displacement.set_pixels(img, maps)
        obj.facedet3d.detail_error = ""
        if obj.facedet3d.detail_source != source:
            obj.facedet3d.detail_source = source
        obj.update_tag()
        n += 1
    if n and not bpy.app.background and bpy.context.screen:
        for area in bpy.context.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
    return n


def busy() -> bool:
    return any(up.busy() for up in list(_updaters.values()))


def wait_all(timeout: float = 120.0) -> bool:
    """Wait for every pending prediction (any thread; nothing is applied)."""
    return all([up.wait(timeout) for up in list(_updaters.values())])


def flush(timeout: float = 120.0) -> int:
    """Wait for every pending prediction and apply the results (main thread)."""
    wait_all(timeout)
    return apply_ready()


def _timer():
    apply_ready()
    return _TIMER_S if any(up.busy() for up in _updaters.values()) else None


def _ensure_timer():
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=_TIMER_S)


@persistent
def _on_frame_change(scene, depsgraph=None):
    if _guard:
        return
    for obj in scene.objects:
        if is_live(obj):
            request_update(obj)


@persistent
def _on_load(*_args):
    _updaters.clear()


@persistent
def _on_save_pre(*_args):
    """Live images are packed before the .blend is written (reopening loses nothing): new
    (GENERATED) ones, and packed ones the live updates changed since (FILE, dirty)."""
    flush(30.0)
    for img in bpy.data.images:
        if not img.name.startswith("FaceDet3D") or img.source not in ("GENERATED", "FILE"):
            continue
        if img.is_dirty and (img.source == "GENERATED" or img.packed_file is not None):
            img.pack()


_HANDLERS = ((bpy.app.handlers.frame_change_post, _on_frame_change), (bpy.app.handlers.load_post, _on_load),
             (bpy.app.handlers.save_pre, _on_save_pre))


def register_handlers():
    for lst, fn in _HANDLERS:
        if fn not in lst:
            lst.append(fn)


def unregister_handlers():
    for lst, fn in _HANDLERS:
        if fn in lst:
            lst.remove(fn)
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    for up in _updaters.values():
        up.wait(10.0)
    _updaters.clear()
