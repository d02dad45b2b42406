"""Set Up Backend: a dedicated Python environment for the backend, from the preferences.

Steps (each a subprocess whose output goes to a log file and the preferences' log view):
create a venv from a Python 3.10-3.12 found on this computer (or named by the user); install
torch + torchvision (CPU wheels from PyTorch's CPU index, or the package index's default
CUDA build); install the backend wheel shipped inside the add-on (``backend_wheel/``) with
its dependencies from the package index; fetch the face-model files. The add-on then starts
``facedet3d serve`` with that venv's Python by itself.

Why not Blender's own Python: installing torch (GBs) into Blender's install folder needs
write access there, is lost with every Blender update, and can replace Blender's bundled
numpy (bpy 5.0 needs numpy < 2) and break Blender itself; a separate venv leaves Blender
untouched, and its server can be stopped without touching the scene.

The planning and running parts have no bpy (tests run them offline: ``offline_links``
installs from a folder with ``--no-index``, ``no_deps`` skips dependencies).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SUPPORTED = ((3, 10), (3, 11), (3, 12))
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
MEDIAPIPE = "mediapipe==1.2.3"
CANDIDATES = ("python3.12", "python3.11", "python3.10", "python3", "python")


class SetupError(Exception):
    """A one-line reason the set-up stopped."""


def python_version(python: str, timeout_s: float = 20.0) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return (int(parts[0]), int(parts[1])) if out.returncode == 0 and len(parts) == 2 else None


def find_pythons(extra: tuple[str, ...] = ()) -> list[tuple[str, tuple[int, int]]]:
    """(path, version) of each supported Python on PATH (and ``extra``), newest first."""
    seen, found = set(), []
    for name in (*extra, *CANDIDATES):
        path = shutil.which(name) if os.sep not in name else (name if os.path.isfile(name) else None)
        if not path or os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        ver = python_version(path)
        if ver in SUPPORTED:
            found.append((path, ver))
    return sorted(found, key=lambda pv: pv[1], reverse=True)


def choose_python(named: str = "") -> str:
    """The user's Python if given (checked), else the newest supported one found."""
    if named:
        ver = python_version(named)
        if ver is None:
            raise SetupError(f"cannot run {named!r} as Python")
        if ver not in SUPPORTED:
            raise SetupError(f"{named} is Python {ver[0]}.{ver[1]}; the backend needs 3.10, 3.11 or 3.12 (torch wheels)")
        return named
    found = find_pythons()
    if not found:
        raise SetupError("no Python 3.10-3.12 found on this computer: install one (python.org) and name it here")
    return found[0][0]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def bundled_wheel() -> Path | None:
    """The backend wheel build_addon.py put inside the add-on."""
    found = sorted((Path(__file__).parent / "backend_wheel").glob("facedet3d-*.whl"))
    return found[-1] if found else None


@dataclass
class Plan:
    python: str
    venv: Path
    wheel: Path
    torch: str = "CPU"  # or "CUDA"
    offline_links: str = ""  # a folder of wheels: install from it with --no-index (tests, air-gapped machines)
    no_deps: bool = False
    fetch_assets: bool = True
    extra: list = field(default_factory=list)  # more (label, argv) steps (tests)


def commands(plan: Plan) -> list[tuple[str, list[str], float]]:
    """(label, argv, share of the progress bar) for each step."""
    vpy = str(venv_python(plan.venv))
    pip = [vpy, "-m", "pip", "install", "--disable-pip-version-check"]
    src = ["--no-index", "--find-links", plan.offline_links] if plan.offline_links else []
    steps = [("creating the environment", [plan.python, "-m", "venv", str(plan.venv)], 0.05)]
    if not plan.no_deps:
        torch_src = src or (["--index-url", TORCH_CPU_INDEX] if plan.torch == "CPU" else [])
        steps.append((f"installing torch ({plan.torch})", pip + [*torch_src, "torch", "torchvision"], 0.5))
    deps = ["--no-deps", str(plan.wheel)] if plan.no_deps else ["numpy<2", str(plan.wheel)]
    steps.append(("installing the backend and its dependencies", pip + [*src, *deps], 0.3))
    if not plan.no_deps:  # its metadata wants opencv-contrib-python, which clashes with opencv-python-headless
        steps.append(("installing mediapipe (the expression reader)", pip + [*src, "--no-deps", MEDIAPIPE], 0.05))
    if plan.fetch_assets:
        steps.append(("fetching the face-model files", [vpy, "-m", "facedet3d.cli", "assets", "fetch"], 0.15))
    steps += [(label, argv, 0.0) for label, argv in plan.extra]
    return steps


def run(plan: Plan, log_path: Path, progress=None, cancelled=lambda: False) -> Path:
    """Run every step; output lines go to ``log_path`` and ``progress(line, fraction)``.
    Returns the venv's Python. Raises SetupError (one line) on failure or cancel."""
    steps = commands(plan)
    total = sum(w for _, _, w in steps) or 1.0
    done = 0.0
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"== Set Up Backend {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        for label, argv, weight in steps:
            frac = done / total
            if progress:
                progress(label, frac)
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            tail = _run_one(argv, log, env, lambda ln: progress and progress(f"{label}: {ln}", frac), cancelled)
            if tail is None:
                raise SetupError("Set Up Backend cancelled")
            if tail:
                raise SetupError(f"{label} failed: {tail} (log: {log_path})")
            done += weight
        log.write("== done\n")
    if progress:
        progress("ready", 1.0)
    return venv_python(plan.venv)


def _run_one(argv, log, env, on_line, cancelled):
    """'' on success, the last output line on failure, None when cancelled."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
    except OSError as exc:
        return f"cannot start {argv[0]}: {exc.strerror or exc}"
    last = [""]

    def pump():
        for line in proc.stdout:
            log.write(line)
            if line.strip():
                last[0] = line.strip()
                on_line(last[0][:120])

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    while proc.poll() is None:
        if cancelled():
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            reader.join(5)
            log.write("== cancelled\n")
            return None
        time.sleep(0.05)
    reader.join(10)
    log.flush()
    return "" if proc.returncode == 0 else (last[0] or f"exit status {proc.returncode}")


def default_venv() -> Path:
    """Where the environment goes: the extension's user folder (kept across updates)."""
    try:
        import bpy

        return Path(bpy.utils.extension_path_user(__package__, path="backend-venv", create=False))
    except Exception:  # noqa: BLE001 - not an extension (loaded from the repository) or Blender < 4.2
        return Path(os.path.expanduser("~")) / ".facedet3d" / "backend-venv"


# -- in Blender ---------------------------------------------------------------------------
import collections  # noqa: E402

import bpy  # noqa: E402

from . import jobs, preferences  # noqa: E402

LOG_TAIL: collections.deque = collections.deque(maxlen=8)  # the preferences show these lines


def log_path(venv: Path) -> Path:
    return venv.parent / "facedet3d-setup.log"


class FACEDET3D_OT_setup_backend(jobs.TaskOperator, bpy.types.Operator):
    """Create a Python environment for the backend, install it with torch and fetch the face-model files (minutes; needs the network)"""

    bl_idname = "facedet3d.setup_backend"
    bl_label = "Set Up Backend"

    def execute(self, context):
        p = preferences.get(context)
        named = bpy.path.abspath(p.setup_python) if p is not None and p.setup_python else ""
        torch = p.setup_torch if p is not None else "CPU"
        wheel = Path(bpy.path.abspath(p.setup_wheel)) if p is not None and p.setup_wheel else bundled_wheel()
        if wheel is None or not wheel.is_file():
            self.report({"ERROR"}, "No backend wheel: this add-on has none inside (backend_wheel/); "
                                   "name a facedet3d-*.whl in the preferences")
            return {"CANCELLED"}
        venv = Path(bpy.path.abspath(p.setup_venv)) if p is not None and p.setup_venv else default_venv()
        LOG_TAIL.clear()

        def steps(task):
            def report(msg, frac):
                LOG_TAIL.append(msg)
                task.report(msg, frac)

            python = yield Background("looking for Python 3.10-3.12", lambda: choose_python(named), 0.0)
            LOG_TAIL.append(f"using {python}")
            plan = Plan(python, venv, wheel, torch)
            vpy = yield Background("setting up", lambda: run(plan, log_path(venv), report, task.cancelled), 0.01)
            prefs = preferences.get()
            if prefs is not None:
                prefs.python_path = str(vpy)  # Automatic/Start server use it from now on
                if prefs.backend_mode == "ADDRESS":
                    prefs.backend_mode = "AUTO"
            from . import client

            client.shutdown()  # the next backend call starts the new server
            return f"Backend ready: {vpy} (log: {log_path(venv)})"

        return self.run_task(context, "Set Up Backend", steps)


def draw(prefs, layout) -> None:
    """The Set Up Backend box of the preferences."""
    box = layout.box()
    box.label(text="One-click backend (a Python environment with torch, a few GB)", icon="CONSOLE")
    row = box.row()
    row.prop(prefs, "setup_python")
    row.prop(prefs, "setup_torch", text="")
    box.prop(prefs, "setup_venv")
    task = next((t for t in jobs.active() if t.name == "Set Up Backend"), None)
    row = box.row()
    if task is None:
        row.operator("facedet3d.setup_backend", icon="IMPORT")
    else:
        row.label(text=f"{task.message} ({100 * task.fraction:.0f} %)", icon="TIME")
        row.operator("facedet3d.cancel", text="Cancel", icon="X")
    col = box.column(align=True)
    for line in LOG_TAIL:
        col.label(text=line)
    col.label(text=f"Log: {log_path(Path(bpy.path.abspath(prefs.setup_venv)) if prefs.setup_venv else default_venv())}")


Background = jobs.Background
classes = (FACEDET3D_OT_setup_backend,)
