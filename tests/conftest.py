"""Shared fixtures. Tests read face-model files through the asset cache; CI points
FACEDET3D_ASSET_MIRROR at ../shared/assets and scripts/setup.sh fetches from it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PHOTOS = SHARED / "photos"

os.environ.setdefault("FACEDET3D_ADDON_DIR", str(ROOT / "addon"))
if not os.environ.get("FACEDET3D_ASSET_MIRROR") and (SHARED / "assets").is_dir():
    os.environ["FACEDET3D_ASSET_MIRROR"] = str(SHARED / "assets")


@pytest.fixture(scope="session", autouse=True)
def _assets_installed():
    """With a mirror configured, make sure the cache holds the face-model files (a no-op
    when they are already verified there)."""
    if os.environ.get("FACEDET3D_ASSET_MIRROR"):
        from facedet3d.assets import files as assets

        assets.fetch(stages=("fit", "rig"))


@pytest.fixture(scope="session")
def bfm():
    from facedet3d.assets.bfm import load_bfm

    return load_bfm()


@pytest.fixture(scope="session")
def backend():
    from facedet3d.fit.pipeline import Backend

    return Backend()


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PHOTOS.glob("*.jpg"))}


@pytest.fixture(scope="session")
def fitted_dir(backend, photos, tmp_path_factory) -> Path:
    """A FaceAsset folder of JianzhuGuo.jpg (fitted once per test session)."""
    from facedet3d.fit.pipeline import FitRequest

    out = tmp_path_factory.mktemp("assets") / "jg"
    return backend.fit_to_disk(FitRequest(photo=str(photos["JianzhuGuo"])), out)
