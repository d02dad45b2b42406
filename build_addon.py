"""Build the installable Blender extension zip from ``addon/`` with the extension builder
that ships inside the bpy module (no Blender binary needed).

    .venv/bin/python build_addon.py [-o dist]     -> dist/facedet3d-<version>.zip
                                                     dist/facedet3d-<version>-py3-none-any.whl

The staged copy holds the add-on's Python files and its manifest (no tests, caches or
bytecode), plus the backend's ``facedet3d/api/{types,expressions}.py`` in ``_api/``: the typed
interface and the AU vocabulary are defined once, in the backend, and shipped with the add-on
for a Blender whose Python has no backend; and the backend wheel (``backend_wheel/``, what the
preferences' Set Up Backend installs). The wheel is also written beside the zip
(``pip install facedet3d-<version>-py3-none-any.whl`` gives the ``facedet3d`` command).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "addon"
API_SRC = ROOT / "backend" / "facedet3d" / "api"
API_FILES = ("types.py", "expressions.py")
SKIP = ("__pycache__", ".pytest_cache", "tests", ".git")


def builder() -> Path:
    """``blender_ext.py`` inside the installed bpy module."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("build_addon: the bpy module is not installed in this Python (pip install bpy==5.0.1)")
    base = Path(list(spec.submodule_search_locations)[0])
    found = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit(f"build_addon: Blender's extension builder (blender_ext.py) is not under {base}")
    return found[-1]


WHEEL_DIR = "backend_wheel"  # inside the add-on: setup_backend.bundled_wheel() looks here


def build_wheel(out_dir: Path) -> Path:
    """The backend wheel (no dependencies bundled; offline: this Python's setuptools)."""
    with tempfile.TemporaryDirectory() as td:
        res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                              "-w", td, str(ROOT)], capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"build_addon: the backend wheel did not build: {(res.stderr or res.stdout).strip()[-2000:]}")
        wheel = next(Path(td).glob("facedet3d-*.whl"))
        out_dir.mkdir(parents=True, exist_ok=True)
        dest = out_dir / wheel.name
        shutil.copy2(wheel, dest)
    return dest


def stage(dest: Path, wheel: Path | None = None) -> Path:
    src = dest / "facedet3d"
    shutil.copytree(ADDON, src, ignore=shutil.ignore_patterns(*SKIP, "*.pyc", "*.pyo", ".*"))
    for name in API_FILES:  # the one definition, shipped inside the zip (see addon/_api/__init__.py)
        shutil.copy2(API_SRC / name, src / "_api" / name)
    if wheel is not None:
        (src / WHEEL_DIR).mkdir()
        shutil.copy2(wheel, src / WHEEL_DIR / wheel.name)
    return src


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    tool = builder()
    wheel = build_wheel(out_dir)
    with tempfile.TemporaryDirectory() as td:
        src = stage(Path(td), wheel)
        for cmd in (["validate", str(src)], ["build", "--source-dir", str(src), "--output-dir", str(out_dir)]):
            res = subprocess.run([sys.executable, str(tool), *cmd], capture_output=True, text=True)
            if res.returncode != 0:
                raise SystemExit(f"build_addon: {cmd[0]} failed: {(res.stderr or res.stdout).strip()}")
    zips = sorted(out_dir.glob("facedet3d-*.zip"), key=lambda p: p.stat().st_mtime)
    if not zips:
        raise SystemExit("build_addon: the builder wrote no zip")
    return zips[-1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default=str(ROOT / "dist"))
    args = ap.parse_args(argv)
    z = build(Path(args.out))
    print(next(Path(args.out).glob("facedet3d-*.whl")))
    print(z)
    return 0


if __name__ == "__main__":
    sys.exit(main())
