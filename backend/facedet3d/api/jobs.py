"""Background jobs of the backend (``api.tracking``, ``api.folds``): a bounded, thread-safe
table of jobs, each run on its own daemon thread, polled for its state and cancelled by a flag
that the job's own progress callback checks (raising ``Cancelled``). A finished job is
answered once and forgotten; at most ``MAX_JOBS`` are kept (the oldest finished ones go).

A job is any object with ``id``, ``state`` (``running`` or one of ``DONE``), ``cancel`` and
``answer()`` (its typed state message).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict

from facedet3d.errors import BadRequest

MAX_JOBS = 8
DONE = ("done", "failed", "cancelled")


class Cancelled(Exception):
    """Raised from a job's progress callback once its cancel flag is set."""


def new_id() -> str:
    return uuid.uuid4().hex[:12]


class JobTable:
    def __init__(self, kind: str):
        self.kind = kind  # "track", "folds": named in the one-line refusals
        self.lock = threading.Lock()
        self._jobs: OrderedDict = OrderedDict()

    def running(self):
        """The running jobs (call with ``lock`` held)."""
        return [j for j in self._jobs.values() if j.state == "running"]

    def start(self, job, target, *args, refuse=None) -> None:
        """Admit ``job`` and run ``target(job, *args)`` on a thread. ``refuse()``, called under
        the lock, may return a reason (one line) to turn the job away instead."""
        with self.lock:
            why = refuse() if refuse is not None else None
            if why:
                raise BadRequest(why)
            finished = [k for k, j in self._jobs.items() if j.state in DONE]
            while len(self._jobs) >= MAX_JOBS and finished:
                self._jobs.pop(finished.pop(0))
            if len(self._jobs) >= MAX_JOBS:
                raise BadRequest(f"{MAX_JOBS} {self.kind} jobs are already running; wait for one to finish")
            self._jobs[job.id] = job
        threading.Thread(target=target, args=(job, *args), daemon=True, name=f"facedet3d-{self.kind}-{job.id}").start()

    def poll(self, job_id: str, cancel: bool = False):
        """The job's answer (setting its cancel flag first when asked); a finished job is
        forgotten once answered."""
        with self.lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise BadRequest(f"no {self.kind} job {job_id!r} (finished jobs are answered once)")
            if cancel:
                job.cancel = True
            answer = job.answer()
            if job.state in DONE:
                self._jobs.pop(job.id)
        return answer
