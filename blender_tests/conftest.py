"""Blender tests: the add-on under the bpy module, a factory scene per test, real operators.

One fitted FaceData per session (``CachedClient`` memoises fits of the same photo, so the
operators still call the real backend but only the first import pays for the fit).
Renders run in subprocesses (an Eevee/Workbench crash without EGL would abort pytest).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PHOTO = SHARED / "photos" / "JianzhuGuo.jpg"
ADDON_DIR = ROOT / "addon"
ADDON_NAME = "facedet3d_addon"

os.environ.setdefault("FACEDET3D_ADDON_DIR", str(ROOT / "addon"))
# files of unsaved scenes (face assets, bakes, renders, exports) go here, as the add-on
# preferences' "folder for unsaved files" would say; never the working directory
if not os.environ.get("FACEDET3D_OUTPUT_DIR"):
    import tempfile

    os.environ["FACEDET3D_OUTPUT_DIR"] = tempfile.mkdtemp(prefix="facedet3d_bltests_")
if not os.environ.get("FACEDET3D_ASSET_MIRROR") and (SHARED / "assets").is_dir():
    os.environ["FACEDET3D_ASSET_MIRROR"] = str(SHARED / "assets")

import bpy  # noqa: E402
import numpy as np  # noqa: E402


def load_addon():
    if ADDON_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(ADDON_NAME, ADDON_DIR / "__init__.py",
                                                      submodule_search_locations=[str(ADDON_DIR)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[ADDON_NAME] = mod
        spec.loader.exec_module(mod)
    return sys.modules[ADDON_NAME]


class CachedClient:
    """The real in-process client with fits memoised per (photo, texture size)."""

    mode = "in-process"

    def __init__(self, inner):
        self.inner, self._fits = inner, {}
        self.fit_calls = 0

    def status(self):
        return self.inner.status()

    def fit(self, call):
        self.fit_calls += 1
        key = (os.path.abspath(call.photo), call.texture_size)
        if key not in self._fits:
            self._fits[key] = self.inner.fit(call)
        return self._fits[key]

    def detail(self, req):
        return self.inner.detail(req)

    def neural_fit(self, call):
        return self.inner.neural_fit(call)

    def neural_frame(self, req):
        return self.inner.neural_frame(req)

    def track_start(self, call):
        return self.inner.track_start(call)

    def track_state(self, req):
        return self.inner.track_state(req)

    def folds_start(self, call):
        return self.inner.folds_start(call)

    def folds_state(self, req):
        return self.inner.folds_state(req)

    def close(self):
        pass


class FakeDetailClient:
    """Fit through the real backend; detail maps are a known function of the AUs (so the
    add-on's plumbing is tested independently of whether the detail network exists)."""

    mode = "fake"

    def __init__(self, inner, delay_s: float = 0.0, fail: bool = False):
        self.inner, self.delay_s, self.fail = inner, delay_s, fail
        self.calls = 0

    @staticmethod
    def expected(aus, size):
        aus = np.asarray(aus, np.float32)
        aus = aus.reshape(len(aus), -1)[:, :17] if aus.ndim == 2 else aus.reshape(-1, 17)  # (T,19) rows: AUs first
        yy = np.linspace(-1, 1, size, dtype=np.float32)[:, None]
        base = np.sin(6 * yy) * np.ones((1, size), np.float32) * 1e-4
        return np.stack([base * (a @ np.arange(1, 18, dtype=np.float32)) / 17.0 for a in aus])

    def status(self):
        return self.inner.status()

    def fit(self, call):
        return self.inner.fit(call)

    def detail(self, req):
        import time

        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("detail backend exploded")
        from facedet3d.api import types as T

        return T.DetailResult(self.expected(req.target_aus, req.size), "fake", 0.0)

    def close(self):
        pass


@pytest.fixture(scope="session")
def addon():
    return load_addon()


@pytest.fixture(scope="session")
def session_client(addon, tmp_path_factory):
    from facedet3d.api.adapter import BackendAdapter  # noqa: F401 - the backend must import

    client_mod = sys.modules[f"{ADDON_NAME}.client"]
    return CachedClient(client_mod.InProcessClient())


@pytest.fixture(scope="session")
def face_data(session_client, tmp_path_factory):
    from facedet3d.api import types as T

    return session_client.fit(T.FitCall(photo=str(PHOTO), out_dir=str(tmp_path_factory.mktemp("asset") / "jg")))


@pytest.fixture()
def scene(addon, session_client):
    """Factory scene with the add-on registered and the session client injected."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon.register()
    client_mod = sys.modules[f"{ADDON_NAME}.client"]
    client_mod.set_client(session_client)
    yield bpy.context.scene
    live = sys.modules[f"{ADDON_NAME}.live"]
    live.flush(30)
    addon.unregister()
    client_mod.set_client(None)


@pytest.fixture()
def face(scene, face_data, addon):
    """A built face (through the same builder the Import operator uses)."""
    build = mod("build")
    obj, cam = build.build_face(bpy.context, face_data, render_height=128)
    return obj


def use_client(client):
    sys.modules[f"{ADDON_NAME}.client"].set_client(client)


def mod(name):
    import importlib

    return importlib.import_module(f"{ADDON_NAME}.{name}")
