"""A stock Blender: a Python with only bpy (no torch, no backend) installs the built zip with
Blender's own extension installer and runs an artist's session and the headless batch
against the backend in the project environment (server mode).

The 5.0 stand-in is this interpreter run with ``-S`` (no site-packages) and only bpy and its
own dependencies on the path; 4.2 LTS and 4.5 LTS are the bpy-only venvs that
``scripts/setup.sh`` makes (``.venv-bpy42``, ``.venv-bpy45``) when present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PHOTO, ROOT

SITE = next(Path(p) for p in sys.path if (Path(p) / "bpy" / "__init__.so").exists())  # site-packages
BPY_DEPS = ("bpy", "numpy", "numpy.libs", "requests", "urllib3", "idna", "certifi", "charset_normalizer", "zstandard")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "-o", str(out)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return Path(next(p for p in res.stdout.split() if p.endswith(".zip")))


@pytest.fixture(scope="module")
def backend_python(tmp_path_factory):
    """A Python with the backend (this checkout's), as a user names it in the preferences."""
    p = tmp_path_factory.mktemp("backend") / "python"
    p.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT / 'backend'} exec {sys.executable} \"$@\"\n")
    p.chmod(0o755)
    return str(p)


def stock_python(version: str, tmp: Path) -> list[str]:
    """The command that starts a bpy-only Python for Blender ``version``."""
    if version == "5.0":
        farm = tmp / "site"
        farm.mkdir(exist_ok=True)
        for name in BPY_DEPS:
            if (SITE / name).exists() and not (farm / name).exists():
                (farm / name).symlink_to(SITE / name)
        return ["env", f"PYTHONPATH={farm}", sys.executable, "-S"]
    venv = ROOT / f".venv-bpy{version.replace('.', '')}"
    if not (venv / "bin" / "python").exists():
        pytest.skip(f"{venv.name} is missing (scripts/setup.sh makes it)")
    return ["env", "-u", "PYTHONPATH", str(venv / "bin" / "python")]


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "FACEDET3D_OUTPUT_DIR", "FACEDET3D_BACKEND_PYTHON")}
    env.update(BLENDER_USER_RESOURCES=str(tmp / "blender_user"), XDG_CACHE_HOME=os.environ.get(
        "XDG_CACHE_HOME", "/tmp/facedet3d_xdg_cache"))
    return env


@pytest.mark.parametrize("version", ["5.0", "4.2", "4.5"])
def test_stock_blender_session(version, built, backend_python, tmp_path):
    cmd = stock_python(version, tmp_path) + [str(ROOT / "blender_tests" / "stock_session.py"), str(built),
                                             backend_python, str(PHOTO), str(tmp_path)]
    env = _env(tmp_path)
    if version == "4.5":  # also the headless batch run from the installed extension (preferences' backend)
        env["STOCK_BATCH"] = "1"
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("STOCK ")), None)
    assert res.returncode == 0 and line, (res.stdout[-3000:], res.stderr[-3000:])
    out = json.loads(line[6:])
    print(json.dumps(out, indent=1))
    assert out["blender"].startswith(version) and not out["torch_importable"] and out["mode"] == "server"
    assert out["cube_hidden"] is True and out["frame_range"] == [1, 48]
    assert min(out["detail_changed"]) > 1e-6  # both AU changes, before and after the save, landed
    assert out["baked"] == [f"detail_{i:04d}.exr" for i in range(1, 5)]
    assert out["render"]["centre"] > 0.2 and out["render"]["std"] > 0.05  # the face, not black
    assert out["fbx_bytes"] > 100_000
    bg = out["offload"]  # the UI's path: the same frame and an FBX from a background Blender
    assert bg["render_same"] and bg["fbx_bytes"] > 100_000
    assert max(v["block_s"] for v in bg.values() if isinstance(v, dict)) < 2.0
    if version == "4.5":
        assert out["batch_rc"] == 0 and out["batch_frames"] == ["0001.png", "0002.png"]


@pytest.mark.parametrize("version", ["5.0", "4.2"])  # 4.5 shares 4.4+'s animation API with 5.0
def test_stock_headless_batch_from_the_repository(version, backend_python, tmp_path):
    out = tmp_path / "job"
    cmd = stock_python(version, tmp_path) + [str(ROOT / "addon" / "batch.py"), "--", str(PHOTO), "--frames", "2",
                                           "--engine", "cycles", "--resolution", "64", "--samples", "4", "--fbx",
                                           "--backend-python", backend_python, "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=_env(tmp_path))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["0001.png", "0002.png"]
    assert (out / "face.fbx").is_file() and (out / "scene.blend").is_file()
    if version != "5.0":
        return
    # without a backend it says how to name one, in one line
    res = subprocess.run(stock_python("5.0", tmp_path) + [str(ROOT / "addon" / "batch.py"), "--", str(PHOTO),
                                                          "-o", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=200, env=_env(tmp_path))
    assert res.returncode == 1 and "--backend-python" in res.stderr and "Traceback" not in res.stderr


def test_render_with_a_blender_binary_passes_its_own_python():
    """``facedet3d render --blender PATH``: that Blender's Python has no backend, so the batch
    job is told to start the server with this interpreter (what the stock batch test runs)."""
    from facedet3d.cli import render as cli_render

    cmd = cli_render.command(Path("/x/batch.py"), ["photo.jpg", "-o", "out"], "/opt/blender/blender")
    assert cmd[:2] == ["/opt/blender/blender", "--background"] and cmd[-2:] == ["--backend-python", sys.executable]
    assert cmd[cmd.index("--") + 1:-2] == ["photo.jpg", "-o", "out"]
    assert "--backend-python" not in cli_render.command(Path("/x/batch.py"), ["p"], None)  # in-process
