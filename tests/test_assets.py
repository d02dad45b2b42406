"""The fetcher against a local mirror; checksums; the restricted unpickler."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest

from facedet3d.assets import files as assets
from facedet3d.errors import AssetCorrupt, AssetsMissing

MIRROR = os.environ.get("FACEDET3D_ASSET_MIRROR")
SMALL = ["3DDFA_V2/configs/param_mean_std_62d_120x120.pkl", "3DDFA_V2/configs/mb05_120x120.yml"]


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def small_manifest(monkeypatch):
    """Only two small files, so tests copy kilobytes rather than 170 MB."""
    entries = [e for e in assets.manifest() if e.path in SMALL]
    monkeypatch.setattr(assets, "manifest", lambda: entries)
    return entries


def _mirror_copy(tmp_path):
    m = tmp_path / "mirror"
    for rel in SMALL:
        (m / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(os.path.join(MIRROR, rel), m / rel)
    return m


def test_manifest_pins_every_mirrored_file():
    paths = {e.path for e in assets.manifest()}
    assert "3DDFA_V2/weights/mb05_120x120.pth" in paths
    assert sum(p.startswith("ICT-FaceKit/FaceXModel/") and p.endswith(".obj") for p in paths) >= 54
    for e in assets.manifest():
        assert len(e.sha256) == 64 and e.url.startswith("https://") and e.size > 0
        # pinned commits; MediaPipe's bundle is pinned by its versioned path (float16/1) + sha256
        assert "/1b6c676/" in e.url or "/da5f95a/" in e.url or "/float16/1/" in e.url


def test_missing_asset_names_the_fetch_command(tmp_cache, small_manifest):
    with pytest.raises(AssetsMissing, match="facedet3d assets fetch"):
        assets.asset_path(SMALL[0])


def test_fetch_from_mirror_then_cached(tmp_path, tmp_cache, small_manifest):
    mirror = _mirror_copy(tmp_path)
    got = assets.fetch(stages=("fit",), mirror=mirror)
    assert [p.name for p in got] == [os.path.basename(s) for s in SMALL]
    assert assets.status() == {s: "ok" for s in SMALL}
    # a second fetch does not copy again: the mirror may even be gone
    shutil.rmtree(mirror)
    assert assets.fetch(stages=("fit",), mirror=tmp_path) == got


def test_corrupt_mirror_file_is_refused_and_nothing_installed(tmp_path, tmp_cache, small_manifest):
    mirror = _mirror_copy(tmp_path)
    p = mirror / SMALL[0]
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(AssetCorrupt, match="sha256"):
        assets.fetch(stages=("fit",), mirror=mirror)
    target = tmp_cache / "assets" / SMALL[0]
    assert not target.exists()
    assert not [f for f in target.parent.glob(".part-*")] if target.parent.exists() else True


def test_corrupted_cached_file_is_detected_and_replaced(tmp_path, tmp_cache, small_manifest):
    mirror = _mirror_copy(tmp_path)
    assets.fetch(stages=("fit",), mirror=mirror)
    cached = tmp_cache / "assets" / SMALL[1]
    cached.write_bytes(cached.read_bytes() + b"# tampered\n")
    with pytest.raises(AssetCorrupt):
        assets.asset_path(SMALL[1])
    assert assets.status()[SMALL[1]] == "corrupt"
    assets.fetch(stages=("fit",), mirror=mirror)
    assert assets.asset_path(SMALL[1]).read_bytes() == (mirror / SMALL[1]).read_bytes()


def test_missing_mirror_folder_is_a_clear_error(tmp_path, tmp_cache, small_manifest):
    with pytest.raises(AssetsMissing, match="not a folder"):
        assets.fetch(mirror=tmp_path / "nope")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_refuses_code(tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"u": _Evil()}))
    with pytest.raises(AssetCorrupt, match="not allowed"):
        assets.load_pickle(p)


def test_restricted_unpickler_reads_numpy(tmp_path):
    p = tmp_path / "ok.pkl"
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    p.write_bytes(pickle.dumps({"a": arr, "k": np.int64(3)}))
    d = assets.load_pickle(p)
    np.testing.assert_array_equal(d["a"], arr)


def test_bfm_loads_with_expected_layout(bfm):
    assert bfm.mean.shape == (38365, 3) and bfm.faces.shape == (76073, 3)
    assert bfm.shape_basis.shape == (38365 * 3, 40) and bfm.exp_basis.shape == (38365 * 3, 10)
    assert bfm.uv.shape == (38365, 2) and 0 <= bfm.uv.min() and bfm.uv.max() <= 1
    lm = bfm.mean[bfm.landmarks]
    # +X is image-right: landmark 36 (right eye outer corner, image left) has x < 0; +Y up
    assert lm[36, 0] < 0 < lm[45, 0] and lm[19, 1] > lm[30, 1] > lm[8, 1]
    eye = np.linalg.norm(lm[36] - lm[45]) * 1e-6
    assert 0.07 < eye < 0.11  # metres: outer eye corners of an adult
    v = bfm.mean
    n = np.cross(v[bfm.faces[:, 1]] - v[bfm.faces[:, 0]], v[bfm.faces[:, 2]] - v[bfm.faces[:, 0]])
    assert (n[:, 2] > 0).mean() > 0.85  # faces wound to point toward +Z (the camera)
    # the UV layout is left-right symmetric: mirrored landmarks have mirrored u
    from facedet3d.fit.camera import MIRROR_68

    uv = bfm.uv[bfm.landmarks]
    np.testing.assert_allclose(uv[:, 0], 1 - uv[MIRROR_68, 0], atol=0.02)
