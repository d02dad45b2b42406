"""Long backend work off the UI thread.

``Job(work)`` runs ``work(progress, cancelled)`` in a worker thread; the modal operator that
owns it polls ``job.done`` on its timer and applies the result on the main thread. Under
``--background`` (and the bpy module) callers use ``run_sync`` instead: same work, inline.
Progress goes to the status bar; Esc / the Cancel button set ``cancelled`` (the backend call
finishes, its result is dropped).
"""

from __future__ import annotations

import threading

import bpy

_active: list["Job"] = []


class Job:
    def __init__(self, name: str, work):
        self.name, self._work = name, work
        self.result = None
        self.error: str | None = None
        self.message = name
        self.cancel_event = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"facedet3d-{name}", daemon=True)

    def start(self) -> "Job":
        _active.append(self)
        self._thread.start()
        return self

    def _run(self):
        try:
            self.result = self._work(self.progress, self.cancel_event.is_set)
        except Exception as exc:  # noqa: BLE001 - shown by the operator
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def progress(self, message: str) -> None:
        self.message = f"{self.name}: {message}"

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def cancel(self) -> None:
        self.cancel_event.set()

    def finish(self) -> None:
        if self in _active:
            _active.remove(self)


def run_sync(name: str, work):
    """Run ``work`` inline (background mode). Returns (result, error line or None)."""
    try:
        return work(lambda msg: print(f"FaceDet3D {name}: {msg}", flush=True), lambda: False), None
    except Exception as exc:  # noqa: BLE001
        return None, (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def active() -> list["Job"]:
    return list(_active)


def cancel_all() -> int:
    for job in _active:
        job.cancel()
    return len(_active)


def status_text(context, text: str | None) -> None:
    if not bpy.app.background and context.workspace is not None:
        context.workspace.status_text_set(text)
