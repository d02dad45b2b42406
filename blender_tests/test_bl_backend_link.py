"""The loopback server (facedet3d serve) through the add-on's client, the extension zip,
and the headless main job (facedet3d render)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import PHOTO, ROOT, mod

PY = sys.executable


@pytest.fixture(scope="module")
def server(addon):
    client_mod = mod("client")
    c = client_mod.start_server(PY)
    yield c
    c.close()


def test_server_status_detail_and_errors(server, face_data, addon, tmp_path):
    from facedet3d.api import types as T

    client_mod = mod("client")
    st = server.status()
    assert st.mode == "server" and st.detail_source == "detp" and st.detail_error == "" and "happy" in st.presets
    # a subject it never saw is reloaded from its FaceAsset folder
    res = server.detail(T.DetailRequest("unknown", face_data.asset_dir, np.zeros((2, 17), np.float32), size=256))
    assert res.maps.shape == (2, 256, 256) and res.maps.dtype == np.float32
    with pytest.raises(client_mod.BackendError, match="unknown subject"):
        server.detail(T.DetailRequest("never-seen", "", np.zeros((1, 17), np.float32)))
    with pytest.raises(client_mod.BackendError, match="detail size"):
        server.detail(T.DetailRequest("x", face_data.asset_dir, np.zeros((1, 17), np.float32), size=300))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(client_mod.BackendError) as err:
        server.fit(T.FitCall(photo=str(bad)))
    assert "\n" not in str(err.value)
    # the neural pass: an unfitted subject and a folder that is no FaceAsset, one line each
    with pytest.raises(client_mod.BackendError, match="neural-fit"):
        server.neural_frame(T.NeuralFrameRequest(face_data.asset_dir, str(tmp_path / "a.exr"), str(tmp_path / "b.exr"),
                                                 np.eye(3).tolist()))
    with pytest.raises(client_mod.BackendError, match="not a FaceAsset"):
        server.neural_fit(T.NeuralFitCall(asset_dir=str(tmp_path)))
    # wrong token -> refused
    wrong = client_mod.HttpClient(int(server.url.rsplit(":", 1)[1]), "wrong-token")
    with pytest.raises(client_mod.BackendError, match="token"):
        wrong.status()
    # oversized body -> 413 before it is read
    req = urllib.request.Request(server.url + "/detail", data=b"x" * 16, method="POST",
                                 headers={"X-FaceDet3D-Token": server.token, "Content-Length": str(64 * 2**20)})
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(req, timeout=30)
    assert http.value.code == 413


@pytest.mark.skipif(not (ROOT.parent / "shared/data/faces/LivePortrait").is_dir(), reason="../shared/data/faces is absent")
def test_track_job_through_the_server(server, addon, tmp_path):
    """Animate from Video's tracking over the loopback server (/track, /track-state)."""
    animate = mod("animate")
    d0 = ROOT.parent / "shared/data/faces/LivePortrait/assets/examples/driving/d0.mp4"
    track = animate.track_work(str(d0), server, frames=8)(lambda m: None, lambda: False)
    assert len(track["frames"]) == 8 and any(f["found"] for f in track["frames"])
    with pytest.raises(mod("client").BackendError, match="no such file"):
        animate.track_work(str(tmp_path / "missing.mp4"), server)(lambda m: None, lambda: False)


def test_server_is_loopback_only_and_absent_server_is_clear(addon):
    from facedet3d.api.adapter import BackendAdapter
    from facedet3d.api.http import Server
    from facedet3d.errors import BadRequest

    with pytest.raises(BadRequest, match="loopback"):
        Server(BackendAdapter(), host="0.0.0.0")
    client_mod = mod("client")
    with pytest.raises(client_mod.BackendUnavailable, match="not reachable"):
        client_mod.HttpClient(9, "t").status()  # nothing listens on port 9
    with pytest.raises(client_mod.BackendUnavailable):
        client_mod.HttpClient(8000, "t", host="10.0.0.1")
    with pytest.raises(client_mod.BackendUnavailable, match="did not start|cannot start"):
        client_mod.start_server("/nonexistent/python")


def test_build_addon_zip_installs_as_extension(tmp_path):
    res = subprocess.run([PY, str(ROOT / "build_addon.py"), "-o", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    zpath = Path(res.stdout.strip().splitlines()[-1])
    import zipfile

    names = zipfile.ZipFile(zpath).namelist()
    assert "blender_manifest.toml" in names and "_api/types.py" in names and "_api/expressions.py" in names and "__init__.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") or "tests" in n for n in names)
    script = (f"import bpy, addon_utils; r = bpy.ops.extensions.package_install_files(filepath={str(zpath)!r}, "
              "repo='user_default', enable_on_install=True); "
              "import sys; print('ENABLED', 'bl_ext.user_default.facedet3d' in bpy.context.preferences.addons, "
              "hasattr(bpy.types, 'FACEDET3D_OT_import_photo'))")
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))
    res = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=180, env=env)
    assert "ENABLED True True" in res.stdout, res.stdout[-1500:] + res.stderr[-1500:]


def test_render_job_bad_photo_writes_nothing(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    res = subprocess.run([PY, "-m", "facedet3d.cli", "render", str(bad), "--frames", "2", "--engine", "workbench",
                          "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "error" in res.stderr.lower() and "Traceback" not in res.stderr
    assert not out.exists()
    res = subprocess.run([PY, "-m", "facedet3d.cli", "render", str(PHOTO), "--au", "99=1", "-o", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "AU99" in res.stderr and not out.exists()


def test_render_job_end_to_end(tmp_path):
    out = tmp_path / "job"
    res = subprocess.run([PY, "-m", "facedet3d.cli", "render", str(PHOTO), "--preset", "happy", "--frames", "3",
                          "--engine", "workbench", "--resolution", "96", "--fbx", "--neural", "--neural-steps", "2",
                          "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "[facedet3d] fitting" in res.stdout and "rendered 3 frames" in res.stdout
    frames = ["0001.png", "0002.png", "0003.png"]
    assert sorted(p.name for p in (out / "frames").iterdir()) == frames
    import cv2

    assert cv2.imread(str(out / "frames" / "0001.png")).shape == (96, 96, 3)  # --framing face: square
    # the neural pass (fitted with 2 steps here) wrote its frames beside them, with and without details
    assert "rendered 3 neural frames" in res.stdout and (out / "asset" / "neural.safetensors").is_file()
    for sub in ("neural", "neural_proxy"):
        assert sorted(p.name for p in (out / sub).iterdir()) == frames
    assert cv2.imread(str(out / "neural" / "0003.png")).shape == (256, 256, 3)
    assert (out / "scene.blend").stat().st_size > 1_000_000 and (out / "face.fbx").is_file()
    assert len(list((out / "details").glob("detail_*.exr"))) == 3
    stats = json.loads(res.stdout.strip().splitlines()[-1].split("] ", 1)[1])
    assert 0 < stats["backend_share"] < 1


def test_server_of_another_api_version_is_refused_in_one_line(addon, tmp_path):
    """A backend that announces another API version is refused before any call."""
    client_mod = mod("client")
    fake = tmp_path / "fake_python"
    fake.write_text("#!/bin/sh\necho '{\"facedet3d_server\": 999, \"port\": 9, \"token\": \"t\"}'\nsleep 30\n")
    fake.chmod(0o755)
    with pytest.raises(client_mod.BackendUnavailable, match=r"API version 999, this add-on needs \d") as err:
        client_mod.start_server(str(fake), timeout_s=20)
    assert "\n" not in str(err.value)
    with pytest.raises(client_mod.BackendUnavailable, match="API version None"):
        client_mod.check_version(None)
