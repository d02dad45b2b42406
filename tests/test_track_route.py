"""The backend's track jobs (api/tracking.py) over the loopback server: /track, /track-state."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from facedet3d.api import types as T

SHARED = Path(__file__).resolve().parents[2] / "shared"
DRIVING = SHARED / "data" / "faces" / "LivePortrait" / "assets" / "examples" / "driving"
pytestmark = pytest.mark.skipif(not DRIVING.is_dir(), reason="../shared/data/faces is absent")


@pytest.fixture(scope="module")
def server():
    from facedet3d.api.adapter import BackendAdapter
    from facedet3d.api.http import Server

    srv = Server(BackendAdapter(), port=0, token="t0k")
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _post(srv, path, msg, token="t0k"):
    req = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", data=T.encode(msg), method="POST",
                                 headers={"X-FaceDet3D-Token": token, "Content-Type": "application/x-npz"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return T.decode(resp.read(), expect=T.TrackState)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode())["error"]


def _wait(srv, job, timeout=120.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = _post(srv, "/track-state", T.TrackPoll(job))
        if st.state != "running":
            return st
        time.sleep(0.1)
    raise AssertionError("the track job did not finish")


def test_track_job_over_the_server(server):
    st = _post(server, "/track", T.TrackCall(source=str(DRIVING / "d0.mp4"), frames=12))
    assert isinstance(st, T.TrackState) and st.state == "running" and st.job
    done = _wait(server, st.job)
    assert done.state == "done" and done.frames == 12 and done.message == ""
    track = json.loads(done.track_json)
    assert len(track["frames"]) == 12 and track["fps"] > 0
    assert all(set(f["aus"]) == {str(a) for a in T.AU_IDS} for f in track["frames"] if f["found"])
    # a finished job is answered once
    code, msg = _post(server, "/track-state", T.TrackPoll(st.job))
    assert code == 400 and "no track job" in msg


def test_cancel_stops_the_job(server):
    st = _post(server, "/track", T.TrackCall(source=str(DRIVING / "d3.mp4")))  # 12 s of video
    first = _post(server, "/track-state", T.TrackPoll(st.job, cancel=True))
    assert first.state in ("running", "cancelled")
    end = first if first.state == "cancelled" else _wait(server, st.job, 30.0)
    assert end.state == "cancelled" and end.track_json == "" and end.frames < 300


def test_bad_track_requests_answer_one_line(server, tmp_path):
    code, msg = _post(server, "/track", T.TrackCall(source=str(tmp_path / "missing.mp4")))
    assert code == 400 and "no such file" in msg and "\n" not in msg
    code, msg = _post(server, "/track", T.TrackCall(source=str(DRIVING / "d0.mp4"), neutral=[2.0, 1.0]))
    assert code == 400 and "neutral" in msg
    code, _ = _post(server, "/track", T.TrackCall(source=str(DRIVING / "d0.mp4")), token="wrong")
    assert code == 403
    # not a video: the job starts, then fails with the tracker's one line
    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"\x00" * 4096)
    st = _post(server, "/track", T.TrackCall(source=str(bad)))
    end = _wait(server, st.job)
    assert end.state == "failed" and "not_a_video.mp4" in end.message and "\n" not in end.message


def test_a_live_link_face_csv_is_read_as_a_track(server, tmp_path):
    from facedet3d.expression import track

    csv = tmp_path / "capture.csv"
    track.track_video(DRIVING / "d0.mp4", csv, track.TrackOptions(max_frames=6))
    st = _post(server, "/track", T.TrackCall(source=str(csv)))
    done = _wait(server, st.job)
    assert done.state == "done" and done.frames == 6
    frames = json.loads(done.track_json)["frames"]
    assert len(frames) == 6 and all("12" in f["aus"] for f in frames if f["found"])
