"""Long work without freezing the UI: a ``Task`` runs a generator of steps.

A step generator does its bpy work on the main thread between ``yield``s and hands slow,
bpy-free work (backend calls, server start-up, smoothing) to a worker thread by yielding
``Background(message, fn)``; the task sends ``fn()``'s result back into the generator. It
may also yield a progress message (``str``) or ``(message, fraction 0..1)``; its ``return``
value (a one-line summary) is the task's result.

The UI drives a task from a modal operator's timer: each ``tick()`` runs main-thread steps
for at most ``budget_s`` and never waits on a worker. Background runs (``--background``,
the bpy module, tests) call ``run_blocking()``, which is the same ``tick()`` in a loop, so
the code the timer runs is the code the tests run. ``cancel()`` stops at the next step
boundary (a backend call in flight finishes first; its result is dropped) and closes the
generator, so its ``finally`` blocks tidy up on the main thread.
"""

from __future__ import annotations

import threading
import time

import bpy

_active: list["Task"] = []


class Background:
    """Yielded by a step generator: run ``fn()`` in a worker thread (no bpy inside ``fn``)."""

    def __init__(self, message: str, fn, fraction: float | None = None):
        self.message, self.fn, self.fraction = message, fn, fraction


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Task:
    """States: running -> done | failed | cancelled."""

    def __init__(self, name: str, steps, on_progress=None):
        """``steps``: a step generator, or a callable ``steps(task)`` that returns one (so the
        steps can pass ``task.cancelled`` to their workers)."""
        self.name, self._on_progress = name, on_progress
        self.state = "running"
        self.message, self.fraction = name, 0.0
        self.result = None
        self.error: str | None = None
        self.messages: list[str] = []  # every progress message, in order (tests, the log)
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._bg_out = None  # (ok, value) of the finished worker
        self._send = None  # what the generator gets next
        self._started = False
        self._gen = steps if hasattr(steps, "send") else steps(self)

    # -- control ------------------------------------------------------------------------
    def start(self) -> "Task":
        _active.append(self)
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        """Thread-safe: step closures pass this to long backend loops."""
        return self._cancel.is_set()

    @property
    def finished(self) -> bool:
        return self.state != "running"

    @property
    def waiting(self) -> bool:
        """A worker is computing (the UI stays responsive meanwhile)."""
        return self._thread is not None

    def report(self, message: str, fraction: float | None = None) -> None:
        """Progress from a worker's callback (plain attribute writes; the timer reads them)."""
        self._progress(message, fraction)

    def _progress(self, message: str, fraction: float | None = None) -> None:
        self.message = f"{self.name}: {message}"
        if fraction is not None:
            self.fraction = min(max(float(fraction), 0.0), 1.0)
        self.messages.append(message)
        if self._on_progress:
            self._on_progress(message)

    def _end(self, state: str, result=None, error: str | None = None) -> None:
        self.state, self.result, self.error = state, result, error
        self.fraction = 1.0 if state == "done" else self.fraction
        self._gen.close()
        if self in _active:
            _active.remove(self)

    def _run_bg(self, fn) -> None:
        try:
            self._bg_out = (True, fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised into the generator
            self._bg_out = (False, exc)

    # -- the step loop --------------------------------------------------------------------
    def tick(self, budget_s: float = 0.05) -> bool:
        """Advance on the main thread for at most ``budget_s``; True once finished."""
        t_end = time.perf_counter() + budget_s
        while self.state == "running":
            if self._thread is not None:
                if self._thread.is_alive():
                    return False
                self._thread = None
                ok, value = self._bg_out
                self._bg_out = None
                if not ok:
                    self._send = ("throw", value)
                else:
                    self._send = ("send", value)
            if self._cancel.is_set():
                self._end("cancelled")
                return True
            try:
                how, value = self._send or ("send", None)
                self._send = None
                if not self._started:
                    self._started, item = True, next(self._gen)
                elif how == "throw":
                    item = self._gen.throw(value)
                else:
                    item = self._gen.send(value)
            except StopIteration as stop:
                self._end("done", result=stop.value)
                return True
            except Exception as exc:  # noqa: BLE001 - shown by the operator, one line
                self._end("failed", error=one_line(exc))
                return True
            if isinstance(item, Background):
                self._progress(item.message, item.fraction)
                self._thread = threading.Thread(target=self._run_bg, args=(item.fn,), daemon=True,
                                                name=f"facedet3d-{self.name}")
                self._thread.start()
            elif isinstance(item, tuple):
                self._progress(str(item[0]), item[1])
            elif item is not None:
                self._progress(str(item))
            if time.perf_counter() > t_end:
                return False
        return True

    def run_blocking(self, poll_s: float = 0.002) -> "Task":
        """Drive the task to the end (background mode): the timer's ``tick`` in a loop."""
        if self not in _active:
            self.start()
        while not self.tick(budget_s=3600.0):
            time.sleep(poll_s)
        return self


class TaskOperator:
    """Mixin for operators that run a ``jobs.Task``: ``run_task`` starts it (modal with a
    timer in the UI, inline under --background); the steps' return value is reported."""

    _task = None
    _timer = None

    def run_task(self, context, name: str, steps):
        task = Task(name, steps).start()
        if bpy.app.background or context.window is None:
            task.run_blocking()
            return self._finish(task)
        self._task = task
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        return {"RUNNING_MODAL"}

    def run_job(self, context, name: str, work):
        """The older job API, as a task: ``work(progress, cancelled)`` runs in a worker and
        ``self._apply(context, result)`` on the main thread (a None result means cancelled)."""
        self._legacy = True
        return self.run_task(context, name, lambda task: _legacy_steps(name, work, task))

    def _finish(self, task):
        if task.state == "done" and getattr(self, "_legacy", False):
            if task.result is None:
                self.report({"WARNING"}, f"{task.name} cancelled")
                return {"CANCELLED"}
            return self._apply(bpy.context, task.result)
        if task.state == "cancelled":
            self.report({"WARNING"}, f"{task.name} cancelled")
            return {"CANCELLED"}
        if task.state == "failed":
            self.report({"ERROR"}, task.error)
            return {"CANCELLED"}
        if task.result:
            self.report({"INFO"}, str(task.result))
        return {"FINISHED"}

    def modal(self, context, event):
        task = self._task
        if event.type == "ESC" and event.value == "PRESS":
            task.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        done = task.tick()
        wm = context.window_manager
        wm.progress_update(int(100 * task.fraction))
        status_text(context, task.message + ("  (cancelling)" if task.cancelled() else "  (Esc to cancel)"))
        for area in context.screen.areas if context.screen else ():
            if area.type == "VIEW_3D":
                area.tag_redraw()
        if not done:
            return {"RUNNING_MODAL"}
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        status_text(context, None)
        return self._finish(task)

    def needs_save(self, context, exc) -> set:
        """No .blend and no folder for unsaved files: say so and open Save As (UI)."""
        self.report({"ERROR"}, str(exc))
        if not bpy.app.background and context.window is not None:
            bpy.ops.wm.save_as_mainfile("INVOKE_DEFAULT")
        return {"CANCELLED"}


def _legacy_steps(name, work, task):
    return (yield Background(name, lambda: work(lambda msg: task.report(msg), task.cancelled)))


def active() -> list[Task]:
    return list(_active)


def cancel_all() -> int:
    for task in _active:
        task.cancel()
    return len(_active)


def status_text(context, text: str | None) -> None:
    if not bpy.app.background and context.workspace is not None:
        context.workspace.status_text_set(text)


def run_steps(name: str, steps, progress=None):
    """Run a step generator to the end here (batch jobs); returns its result or raises."""
    task = Task(name, steps, on_progress=progress).run_blocking()
    if task.state == "failed":
        raise RuntimeError(task.error)
    if task.state == "cancelled":
        raise RuntimeError(f"{name} cancelled")
    return task.result
