"""Track jobs for the add-on: ``facedet3d track`` run on a background thread of the backend,
polled for progress, cancellable (``api.types`` TrackCall / TrackPoll / TrackState).

A job writes its track JSON to a temporary folder through ``expression.track`` (streamed,
nothing half written), and its state carries the JSON text once done; the folder is removed
when the job ends. Cancelling is checked after every tracked frame. A finished job is
answered once and forgotten (``api.jobs``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from facedet3d.api import types as T
from facedet3d.api.jobs import Cancelled, JobTable, new_id
from facedet3d.errors import BadRequest, FaceDet3DError


class _Job:
    def __init__(self, job_id: str):
        self.id, self.state, self.frames, self.message, self.track_json = job_id, "running", 0, "", ""
        self.cancel = False

    def answer(self) -> T.TrackState:
        return T.TrackState(self.id, self.state, self.frames, self.message, self.track_json)


def _options(call: T.TrackCall):
    """TrackCall -> (source Path, expression.track.TrackOptions); BadRequest for bad values."""
    from facedet3d.expression import track

    src = Path(call.source)
    if not src.is_file():
        raise BadRequest(f"{call.source}: no such file")
    if int(call.frames) < 0:
        raise BadRequest("frames must be 0 (all) or a positive number")
    neutral = tuple(float(v) for v in call.neutral) if call.neutral else None
    if neutral is not None and (len(neutral) != 2 or not 0 <= neutral[0] < neutral[1]):
        raise BadRequest("neutral takes [start_s, end_s] with 0 <= start < end")
    box = None
    if call.box:
        if len(call.box) != 4 or float(call.box[2]) <= 0 or float(call.box[3]) <= 0:
            raise BadRequest("box takes [left, top, width, height] with a positive width and height")
        x, y, w, h = (float(v) for v in call.box)
        box = (x, y, x + w, y + h)
    return src, track.TrackOptions(box=box, neutral=neutral, max_frames=int(call.frames) or None)


class TrackJobs:
    """The backend's track jobs (thread-safe)."""

    def __init__(self):
        self._table = JobTable("track")

    def start(self, call: T.TrackCall) -> T.TrackState:
        src, opts = _options(call)
        job = _Job(new_id())
        self._table.start(job, self._run, src, opts)
        return job.answer()

    def poll(self, req: T.TrackPoll) -> T.TrackState:
        return self._table.poll(req.job, req.cancel)

    def _run(self, job: _Job, src: Path, opts) -> None:
        from facedet3d.expression import track

        def progress(n: int) -> None:
            job.frames = n
            if job.cancel:
                raise Cancelled

        tmp = Path(tempfile.mkdtemp(prefix="facedet3d-track-"))
        out = tmp / "track.json"
        try:
            if src.suffix.lower() == ".csv":
                res = track.convert_csv(src, out)
                job.frames = int(res["frames"])
            else:
                track.track_video(src, out, opts, progress=progress)
            text = out.read_text(encoding="utf-8")
            job.track_json, job.state = text, "done"
        except Cancelled:
            job.state = "cancelled"
        except FaceDet3DError as exc:
            job.message, job.state = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - one line back to the add-on
            job.message, job.state = f"unexpected {type(exc).__name__}: {exc}", "failed"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
