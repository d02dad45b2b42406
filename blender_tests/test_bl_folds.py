"""Learn Folds from Video: the real operator on a short real clip of the photo's person (the
first frame of a MEAD smile clip is the photo), through the session's backend client; the
face's live detail map at smile AUs changes by the learnt folds, Remove undoes it, and a
cancelled job leaves the asset as it was."""

from __future__ import annotations

import json
from pathlib import Path

import bpy
import numpy as np
import pytest

from conftest import SHARED, mod, use_client

SMILE = SHARED / "data/faces/spectre/samples/MEAD/W036_level_3_happy_007.mp4"
pytestmark = pytest.mark.skipif(not SMILE.is_file(), reason="../shared/data/faces is absent")
FOLDS = "personal_folds.npz"


def _import_person(tmp_path):
    """Import Photo (the real operator) on the clip's first frame; the face at a smile."""
    import cv2

    cap = cv2.VideoCapture(str(SMILE))
    ok, frame = cap.read()
    cap.release()
    assert ok
    photo = tmp_path / "w036.png"
    cv2.imwrite(str(photo), frame)
    assert bpy.ops.facedet3d.import_photo(filepath=str(photo)) == {"FINISHED"}
    face = bpy.context.active_object
    assert face.facedet3d.is_face and face.facedet3d.live_update
    face.facedet3d.au12, face.facedet3d.au06 = 1.0, 0.6  # each change asks for a live map
    mod("live").flush(120)
    return face, Path(bpy.path.abspath(face.facedet3d.asset_dir))


def _live_map(face):
    d = mod("adapters.displacement")
    return d.get_pixels(d.image(face))


def _panel():
    """(operators, label texts) the sidebar panel draws now (a recording layout: no window here)."""
    log = []

    class Layout:
        def __getattr__(self, name):
            def call(*args, **kw):
                log.append((name, args, kw))
                return self if name in ("row", "column", "box", "split") else type("Props", (), {})()

            return call

    mod("panel").FACEDET3D_PT_face.draw(type("P", (), {"layout": Layout()})(), bpy.context)
    return ([args[0] for n, args, _ in log if n == "operator"], [kw.get("text", "") for n, _, kw in log if n == "label"])


def test_learn_folds_from_a_real_clip_then_remove(scene, tmp_path):
    face, folder = _import_person(tmp_path)
    before = _live_map(face)
    assert not (folder / FOLDS).exists() and "facedet3d_folds" not in face
    res = bpy.ops.facedet3d.learn_folds(filepath=str(SMILE), max_frames=16, stride=4)
    assert res == {"FINISHED"}
    info = json.loads(face["facedet3d_folds"])
    assert info["source"] == SMILE.name and info["frames"] >= 8 and 12 in info["active_aus"]
    assert info["split_check_r"] is None or -1 <= info["split_check_r"] <= 1
    assert (info["max_frames"], info["stride"]) == (16, 4)
    assert (folder / FOLDS).is_file()
    after = _live_map(face)  # no flush here: the operator applied the refreshed map itself
    assert np.abs(after - before).max() > 1e-6  # metres: the person's smile folds
    ops, labels = _panel()
    assert "facedet3d.learn_folds" in ops and "facedet3d.remove_folds" in ops  # the sidebar's button and its X
    assert any(t.startswith(f"Folds: {SMILE.name}, {info['frames']} frames") for t in labels)
    assert bpy.ops.facedet3d.remove_folds() == {"FINISHED"}
    assert "facedet3d_folds" not in face and not (folder / FOLDS).exists()
    assert np.allclose(_live_map(face), before, atol=1e-9)
    ops, labels = _panel()
    assert "facedet3d.learn_folds" in ops and "facedet3d.remove_folds" not in ops
    assert not any(t.startswith("Folds:") for t in labels)


class _CancelAfter:
    """The session client; Esc (``jobs.cancel_all``, what the modal operator's Esc does to
    its task) once the backend has scanned ``frames`` frames."""

    def __init__(self, inner, frames: int):
        self.inner, self.frames, self.seen = inner, frames, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def folds_state(self, req):
        st = self.inner.folds_state(req)
        self.seen = max(self.seen, st.frames_done)
        if st.state == "running" and st.frames_done >= self.frames:
            mod("jobs").cancel_all()
        return st


def test_cancel_leaves_no_folds(scene, session_client, tmp_path):
    face, folder = _import_person(tmp_path)
    before = _live_map(face)
    client = _CancelAfter(session_client, frames=2)
    use_client(client)
    res = bpy.ops.facedet3d.learn_folds(filepath=str(SMILE), max_frames=16, stride=4)
    assert res == {"CANCELLED"} and 2 <= client.seen < 16
    assert not (folder / FOLDS).exists() and not list(folder.glob(".personal_folds*"))
    assert "facedet3d_folds" not in face
    assert np.array_equal(_live_map(face), before)


def test_learn_folds_refuses_bad_input(scene, face, tmp_path):
    bpy.context.view_layer.objects.active = face
    with pytest.raises(RuntimeError, match="No such video"):
        bpy.ops.facedet3d.learn_folds(filepath=str(tmp_path / "missing.mp4"))
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(RuntimeError, match="not a video file"):
        bpy.ops.facedet3d.learn_folds(filepath=str(notes))
    assert "facedet3d_folds" not in face


def test_folds_over_the_loopback_server(addon, face_data):
    """The add-on's server client on /folds and /folds-state: remove, one-line errors, and a
    job cancelled at once through the operator's own polling (``folds.learn``)."""
    import threading

    from facedet3d.api import types as T
    from facedet3d.api.adapter import BackendAdapter
    from facedet3d.api.http import Server

    srv = Server(BackendAdapter(), port=0)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    client_mod = mod("client")
    try:
        c = client_mod.HttpClient(srv.port, srv.token)
        st = c.folds_start(T.FoldsCall(face_data.asset_dir, remove=True))
        assert st.state == "done" and "no learnt folds" in st.message
        with pytest.raises(client_mod.BackendError, match="no such video file"):
            c.folds_start(T.FoldsCall(face_data.asset_dir, str(Path(face_data.asset_dir) / "missing.mp4")))
        with pytest.raises(client_mod.BackendError, match="no folds job"):
            c.folds_state(T.FoldsPoll("nosuchjob"))
        said = []
        call = T.FoldsCall(face_data.asset_dir, str(SMILE), max_frames=16, stride=4)
        assert mod("folds").learn(c, call, lambda m, f: said.append(m), lambda: True, poll_s=0.05) is None
        assert not (Path(face_data.asset_dir) / FOLDS).exists()
    finally:
        srv.shutdown()
        srv.server_close()
