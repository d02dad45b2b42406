"""Folds jobs for the add-on: ``facedet3d folds`` (``detail.personal.enrol``) run on a
background thread of the backend, polled for progress, cancellable (``api.types`` FoldsCall /
FoldsPoll / FoldsState), and the synchronous remove.

Enrolment writes ``personal_folds.npz`` into the FaceAsset atomically at its end; a cancel is
checked after every scanned frame and once more just before the write, so a cancelled job
leaves the asset as it was. One job per FaceAsset at a time (the write would race). When a
job ends "done" (or folds are removed) ``on_change(asset_dir)`` lets the adapter re-read its
cached subject, so the next detail request includes the folds. A finished job is answered
once and forgotten (``api.jobs``).
"""

from __future__ import annotations

from pathlib import Path

from facedet3d.api import types as T
from facedet3d.api.jobs import Cancelled, JobTable, new_id
from facedet3d.errors import BadRequest, FaceDet3DError

MIN_FRAMES = 8  # the CLI's --max-frames floor: fewer cannot carry a fold model


class _Job:
    def __init__(self, job_id: str, asset_dir: Path):
        self.id, self.asset_dir, self.state = job_id, asset_dir, "running"
        self.done, self.total, self.message = 0, 0, ""
        self.meta: dict = {}
        self.cancel = False

    def answer(self) -> T.FoldsState:
        m = self.meta
        return T.FoldsState(self.id, self.state, self.done, self.total, self.message, int(m.get("frames", 0)),
                            m.get("split_check_r"), list(m.get("active_aus", [])), str(m.get("source", "")))


def _check(call: T.FoldsCall) -> tuple[Path, Path]:
    """FoldsCall -> (resolved asset folder, video); BadRequest (one line) for bad values."""
    from facedet3d.detail.real_corpus import VIDEO_EXT

    asset = Path(call.asset_dir).expanduser().resolve() if call.asset_dir else None
    if asset is None or not (asset / "meta.json").is_file():
        raise BadRequest(f"{call.asset_dir or '(none)'} is not a FaceAsset folder; import the photo again")
    if call.remove:
        return asset, Path()
    video = Path(call.video)
    if not call.video or not video.is_file():
        raise BadRequest(f"{call.video or '(none)'}: no such video file")
    if video.suffix.lower() not in VIDEO_EXT:
        raise BadRequest(f"{video.name}: not a video file ({', '.join(sorted(VIDEO_EXT))})")
    if int(call.stride) < 1 or int(call.max_frames) < MIN_FRAMES:
        raise BadRequest(f"stride must be >= 1 and max_frames >= {MIN_FRAMES}")
    return asset, video


class FoldsJobs:
    """The backend's folds jobs (thread-safe). ``on_change(asset_dir: Path)``: called (from the
    job's thread, or the remove) after the asset's folds file changed."""

    def __init__(self, on_change=None):
        self._table = JobTable("folds")
        self._on_change = on_change

    def _running_on(self, asset: Path) -> _Job | None:
        return next((j for j in self._table.running() if j.asset_dir == asset), None)

    def start(self, call: T.FoldsCall) -> T.FoldsState:
        asset, video = _check(call)
        if call.remove:
            return self._remove(asset)
        job = _Job(new_id(), asset)
        busy = f"folds are already being learnt for {asset.name}; wait or cancel that job"
        self._table.start(job, self._run, video, int(call.max_frames), int(call.stride),
                          refuse=lambda: busy if self._running_on(asset) is not None else None)
        return job.answer()

    def _remove(self, asset: Path) -> T.FoldsState:
        from facedet3d.detail.personal import FILE

        with self._table.lock:
            if self._running_on(asset) is not None:
                raise BadRequest(f"folds are being learnt for {asset.name}; cancel that job first")
            f = asset / FILE
            had = f.is_file()
            if had:
                f.unlink()
        if had and self._on_change is not None:
            self._on_change(asset)
        return T.FoldsState("", "done", message="" if had else f"{asset.name} had no learnt folds")

    def poll(self, req: T.FoldsPoll) -> T.FoldsState:
        return self._table.poll(req.job, req.cancel)

    def _run(self, job: _Job, video: Path, max_frames: int, stride: int) -> None:
        from facedet3d.detail import personal

        def on_frame(done: int, total: int) -> None:
            job.done, job.total = done, total
            if job.cancel:
                raise Cancelled

        try:
            meta = personal.enrol(video, job.asset_dir, stride=stride, max_frames=max_frames,
                                  progress=lambda m: None, on_frame=on_frame)  # its warning: split_check_r says it
        except Cancelled:
            job.state = "cancelled"
            return
        except FaceDet3DError as exc:
            job.message, job.state = _line(exc), "failed"
            return
        except Exception as exc:  # noqa: BLE001 - one line back to the add-on
            job.message, job.state = f"unexpected {type(exc).__name__}: {_line(exc)}", "failed"
            return
        try:  # before "done": the add-on's next detail request must see the folds
            if self._on_change is not None:
                self._on_change(job.asset_dir)
            job.meta, job.state = meta, "done"
        except Exception as exc:  # noqa: BLE001 - the file is written: say so
            job.message = f"folds stored in {job.asset_dir.name}, but the backend could not reload the face: {_line(exc)}"
            job.state = "failed"


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
