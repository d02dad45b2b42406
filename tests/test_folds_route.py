"""The backend's folds jobs (api/folds.py) over the loopback server: /folds, /folds-state.

The person's photo is the first frame of a MEAD smile clip; folds are learnt from 16 frames
of the same clip (stride 4), as the add-on's Learn Folds from Video does."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from facedet3d.api import types as T

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not (SHARED / "data").is_dir():  # checkout elsewhere: the absolute shared folder
    SHARED = Path("/work/shared")
SMILE = SHARED / "data/faces/spectre/samples/MEAD/W036_level_3_happy_007.mp4"
pytestmark = pytest.mark.skipif(not SMILE.is_file(), reason="../shared/data/faces is absent")
FOLDS = "personal_folds.npz"
SMILE_AUS = np.zeros((1, 17), np.float32)
SMILE_AUS[0, T.AU_IDS.index(12)], SMILE_AUS[0, T.AU_IDS.index(6)] = 1.0, 0.6


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


def _post(srv, path, msg, expect=T.FoldsState, token="t0k"):
    req = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", data=T.encode(msg), method="POST",
                                 headers={"X-FaceDet3D-Token": token, "Content-Type": "application/x-npz"})
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return T.decode(resp.read(), expect=expect)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode())["error"]


@pytest.fixture(scope="module")
def face(server, tmp_path_factory):
    """FaceData of the clip's first frame, fitted by the server (its subject stays cached there)."""
    import cv2

    tmp = tmp_path_factory.mktemp("folds_route")
    cap = cv2.VideoCapture(str(SMILE))
    ok, frame = cap.read()
    cap.release()
    assert ok
    photo = tmp / "w036.png"
    cv2.imwrite(str(photo), frame)
    return _post(server, "/fit", T.FitCall(photo=str(photo), out_dir=str(tmp / "w036"), texture_size=256), T.FaceData)


def _smile_map(srv, face):
    res = _post(srv, "/detail", T.DetailRequest(face.subject_id, face.asset_dir, SMILE_AUS, 0.0, 256), T.DetailResult)
    assert isinstance(res, T.DetailResult), res
    return res.maps[0]


def _wait(srv, job, timeout=120.0):
    t0, seen = time.monotonic(), []
    while time.monotonic() - t0 < timeout:
        st = _post(srv, "/folds-state", T.FoldsPoll(job))
        seen.append((st.frames_done, st.frames_total))
        if st.state != "running":
            return st, seen
        time.sleep(0.1)
    raise AssertionError("the folds job did not finish")


def test_folds_job_over_the_server_reaches_the_cached_subject(server, face):
    """A job learns the folds into the asset; the server's cached subject is re-read, so the
    next detail request of the same subject adds them; remove undoes it."""
    folder = Path(face.asset_dir)
    before = _smile_map(server, face)
    st = _post(server, "/folds", T.FoldsCall(face.asset_dir, str(SMILE), max_frames=16, stride=4))
    assert isinstance(st, T.FoldsState) and st.state == "running" and st.job
    done, seen = _wait(server, st.job)
    assert done.state == "done" and done.message == "", done.message
    assert done.frames_total >= 8 and done.frames_done == done.frames_total
    assert any(0 < d < t for d, t in seen)  # progress was reported while it ran
    assert done.frames >= 8 and 12 in done.active_aus and done.source == SMILE.name
    assert done.split_check_r is None or -1 <= done.split_check_r <= 1
    assert (folder / FOLDS).is_file()
    code, msg = _post(server, "/folds-state", T.FoldsPoll(st.job))  # a finished job is answered once
    assert code == 400 and "no folds job" in msg
    after = _smile_map(server, face)
    assert np.abs(after - before).max() > 1e-6  # metres: the learnt smile folds are in the map
    gone = _post(server, "/folds", T.FoldsCall(face.asset_dir, remove=True))
    assert gone.state == "done" and gone.job == "" and not (folder / FOLDS).exists()
    assert np.allclose(_smile_map(server, face), before, atol=1e-9)
    again = _post(server, "/folds", T.FoldsCall(face.asset_dir, remove=True))
    assert again.state == "done" and "no learnt folds" in again.message


def test_cancel_stops_the_job_and_writes_nothing(server, face):
    folder = Path(face.asset_dir)
    assert not (folder / FOLDS).exists()
    st = _post(server, "/folds", T.FoldsCall(face.asset_dir, str(SMILE), max_frames=60, stride=1))
    # one job per face: a second one and a remove are refused while it runs
    code, msg = _post(server, "/folds", T.FoldsCall(face.asset_dir, str(SMILE)))
    assert code == 400 and "already being learnt" in msg
    code, msg = _post(server, "/folds", T.FoldsCall(face.asset_dir, remove=True))
    assert code == 400 and "cancel that job first" in msg
    first = _post(server, "/folds-state", T.FoldsPoll(st.job, cancel=True))
    assert first.state in ("running", "cancelled")
    end = first if first.state == "cancelled" else _wait(server, st.job, 60.0)[0]
    assert end.state == "cancelled" and end.frames == 0 and end.active_aus == []
    assert end.frames_done < 60
    assert not (folder / FOLDS).exists() and not list(folder.glob(".personal_folds*"))


def test_bad_folds_requests_answer_one_line(server, face, tmp_path):
    not_asset = tmp_path / "nope"
    not_asset.mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    for call, words in ((T.FoldsCall(str(not_asset), str(SMILE)), "not a FaceAsset folder"),
                        (T.FoldsCall("", str(SMILE)), "not a FaceAsset folder"),
                        (T.FoldsCall(face.asset_dir, str(tmp_path / "missing.mp4")), "no such video file"),
                        (T.FoldsCall(face.asset_dir, str(notes)), "not a video file"),
                        (T.FoldsCall(face.asset_dir, str(SMILE), max_frames=4), "max_frames >= 8"),
                        (T.FoldsCall(face.asset_dir, str(SMILE), stride=0), "stride must be >= 1")):
        code, msg = _post(server, "/folds", call)
        assert code == 400 and words in msg and "\n" not in msg, (call, msg)
    assert list(not_asset.iterdir()) == []
    code, _ = _post(server, "/folds", T.FoldsCall(face.asset_dir, str(SMILE)), token="wrong")
    assert code == 403
    code, _ = _post(server, "/folds-state", T.FoldsPoll("x"), token="")
    assert code == 403
    code, msg = _post(server, "/folds-state", T.FoldsPoll("nosuchjob"))
    assert code == 400 and "no folds job" in msg
    # not a video inside: the job starts, then fails with one line and writes nothing
    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"\x00" * 4096)
    st = _post(server, "/folds", T.FoldsCall(face.asset_dir, str(bad), max_frames=16))
    end, _ = _wait(server, st.job)
    assert end.state == "failed" and end.message and "\n" not in end.message, end
    assert not (Path(face.asset_dir) / FOLDS).exists()
