"""Set Up Backend without the network: the commands it would run, choosing a Python, and a
real run that creates a venv and installs the backend wheel offline (--no-index), with its
log, progress and cancel."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, mod


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("build_addon", ROOT / "build_addon.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m.build_wheel(tmp_path_factory.mktemp("wheel"))


def test_commands_for_cpu_and_cuda(addon, tmp_path):
    sb = mod("setup_backend")
    plan = sb.Plan("/usr/bin/python3.11", tmp_path / "venv", tmp_path / "facedet3d-0.1.0-py3-none-any.whl")
    labels = [label for label, _, _ in sb.commands(plan)]
    assert labels == ["creating the environment", "installing torch (CPU)", "installing the backend and its dependencies",
                      "installing mediapipe (the expression reader)", "fetching the face-model files"]
    cmds = {label: argv for label, argv, _ in sb.commands(plan)}
    vpy = str(tmp_path / "venv" / "bin" / "python")
    assert cmds["creating the environment"] == ["/usr/bin/python3.11", "-m", "venv", str(tmp_path / "venv")]
    assert cmds["installing torch (CPU)"][:3] == [vpy, "-m", "pip"] and sb.TORCH_CPU_INDEX in cmds["installing torch (CPU)"]
    assert cmds["installing the backend and its dependencies"][-2:] == ["numpy<2", str(plan.wheel)]
    assert "--no-deps" not in cmds["installing the backend and its dependencies"]
    assert cmds["fetching the face-model files"] == [vpy, "-m", "facedet3d.cli", "assets", "fetch"]
    assert cmds["installing mediapipe (the expression reader)"][-2:] == ["--no-deps", "mediapipe==1.2.3"]
    plan.torch = "CUDA"
    torch = next(argv for label, argv, _ in sb.commands(plan) if label.startswith("installing torch"))
    assert "--index-url" not in torch and torch[-2:] == ["torch", "torchvision"]
    plan.offline_links = str(tmp_path)
    assert all("--no-index" in argv for label, argv, _ in sb.commands(plan) if "installing" in label)


def test_choosing_a_python(addon, tmp_path):
    sb = mod("setup_backend")
    assert sb.choose_python(sys.executable) == sys.executable  # 3.11 here
    old = tmp_path / "python3.13"
    old.write_text("#!/bin/sh\necho 3 13\n")
    old.chmod(0o755)
    with pytest.raises(sb.SetupError, match="3.13; the backend needs 3.10, 3.11 or 3.12"):
        sb.choose_python(str(old))
    with pytest.raises(sb.SetupError, match="cannot run"):
        sb.choose_python(str(tmp_path / "nope"))
    assert all(v in sb.SUPPORTED for _, v in sb.find_pythons((sys.executable, str(old))))


def test_offline_run_installs_the_wheel_with_log_progress_and_cancel(addon, wheel, tmp_path):
    sb, jobs = mod("setup_backend"), mod("jobs")
    venv, log = tmp_path / "venv", tmp_path / "setup.log"
    plan = sb.Plan(sys.executable, venv, wheel, offline_links=str(wheel.parent), no_deps=True, fetch_assets=False,
                   extra=[("checking", [str(sb.venv_python(venv)), "-c", "import facedet3d; print('OK', facedet3d.__file__)"])])
    seen = []
    task = jobs.Task("Set Up Backend", lambda t: iter_run(sb, plan, log, t, seen)).start()
    task.run_blocking()
    assert task.state == "done", task.error
    vpy = task.result
    assert Path(vpy).is_file() and str(venv) in vpy
    text = log.read_text()
    assert "$ " in text and "Successfully installed facedet3d-0.1.0" in text and f"OK {venv}" in text
    fracs = [f for _, f in seen]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0 and any("installing the backend" in m for m, _ in seen)
    # a failing step stops with its last line and the log's path
    bad = sb.Plan(sys.executable, venv, tmp_path / "missing.whl", offline_links=str(tmp_path), no_deps=True,
                  fetch_assets=False)
    with pytest.raises(sb.SetupError, match=r"installing the backend .* failed: .*\(log: "):
        sb.run(bad, log)
    # cancel stops the running step's process at once
    # the venv exists, so "creating" it with /bin/true is a no-op here
    slow = sb.Plan("/bin/true", venv, wheel, offline_links=str(wheel.parent), no_deps=True, fetch_assets=False,
                   extra=[("waiting", [sys.executable, "-c", "import time; time.sleep(60)"])])
    t0, flag = time.monotonic(), {"stop": False}

    def cancelled():
        return flag["stop"]

    def progress(msg, frac):
        if msg == "waiting":
            flag["stop"] = True

    with pytest.raises(sb.SetupError, match="cancelled"):
        sb.run(slow, log, progress, cancelled)
    assert time.monotonic() - t0 < 45 and "== cancelled" in log.read_text()


def iter_run(sb, plan, log, task, seen):
    """The operator's worker step, with progress recorded."""
    def report(msg, frac):
        seen.append((msg, frac))
        task.report(msg, frac)

    vpy = yield jobs_background(lambda: sb.run(plan, log, report, task.cancelled))
    return str(vpy)


def jobs_background(fn):
    return mod("jobs").Background("setting up", fn)


def test_preferences_show_the_setup(addon):
    prefs_cls = mod("preferences").FACEDET3D_AP_preferences
    for name in ("setup_python", "setup_torch", "setup_venv", "setup_wheel", "output_folder"):
        assert name in prefs_cls.__annotations__
