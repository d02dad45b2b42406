"""The backend installs alone: the wheel build_addon.py writes declares every dependency the
code imports, they are satisfiable together (facenet-pytorch's stale pins avoided), and the
installed files give the ``facedet3d`` command with its package data."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# import name -> distribution name, where they differ
DIST = {"PIL": "pillow", "cv2": "opencv-python-headless", "facenet_pytorch": "facenet-pytorch", "absl": "absl-py"}
# imported but deliberately not declared, each with the reason and who installs it
UNDECLARED = {"mediapipe": "its metadata requires opencv-contrib-python, which clashes with opencv-python-headless: "
                           "scripts/setup.sh and Set Up Backend install mediapipe==1.2.3 with --no-deps"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("build_addon", ROOT / "build_addon.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_wheel(tmp_path_factory.mktemp("wheel"))


def _requires(wheel: Path, extras: bool = False) -> list[Requirement]:
    z = zipfile.ZipFile(wheel)
    meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    reqs = [Requirement(ln.split(":", 1)[1].strip()) for ln in meta.splitlines() if ln.startswith("Requires-Dist:")]
    return [r for r in reqs if extras or r.marker is None]


def test_every_imported_package_is_declared(wheel):
    imported = set()
    for p in (ROOT / "backend" / "facedet3d").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third = {m for m in imported if m not in sys.stdlib_module_names and m != "facedet3d"}
    declared = {r.name.lower() for r in _requires(wheel, extras=True)}  # extras count (ray: [cluster])
    missing = sorted(m for m in third if DIST.get(m, m).lower() not in declared and m not in UNDECLARED)
    assert not missing, f"imported but not in pyproject.toml's dependencies: {missing}"
    assert "facenet-pytorch" in declared


def test_declared_requirements_hold_together_here(wheel):
    """The project environment satisfies every requirement at once (so pip can too): no
    torch<2.3 pin from facenet-pytorch 2.6.0."""
    for req in _requires(wheel):
        got = metadata.version(req.name)
        assert req.specifier.contains(got, prereleases=True), f"{req} but {got} is installed"
        for sub in metadata.requires(req.name) or []:
            sreq = Requirement(sub)
            if sreq.marker is not None or sreq.name.lower() not in ("torch", "torchvision", "pillow", "numpy"):
                continue
            assert sreq.specifier.contains(metadata.version(sreq.name), prereleases=True), (req.name, str(sreq))


def test_installed_wheel_gives_the_command_and_its_data(wheel, tmp_path):
    target = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                          str(target), str(wheel)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    pkg = target / "facedet3d"
    assert (pkg / "assets" / "manifest.json").is_file() and (pkg / "weights" / "detp.safetensors").is_file()
    env = dict(os.environ, PYTHONPATH=str(target))  # this wheel's code, not the checkout's
    res = subprocess.run([sys.executable, "-c", "import facedet3d, sys; print(facedet3d.__file__); "
                          "from facedet3d.cli.app import main; sys.argv = ['facedet3d', '--help']; main()"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-1500:]
    assert res.stdout.splitlines()[0].startswith(str(target)) and "render" in res.stdout and "serve" in res.stdout
    entry = zipfile.ZipFile(wheel).read("facedet3d-0.1.0.dist-info/entry_points.txt").decode()
    assert "facedet3d = facedet3d.cli.app:main" in entry
