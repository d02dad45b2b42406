"""Face-model files: locate, fetch, verify, and load them without executing code.

The files are never bundled. ``fetch`` downloads the exact upstream files listed in
``asset_manifest.json`` (pinned commits, sha256) into a user cache; when the environment
variable ``FACEDET3D_ASSET_MIRROR`` names a folder laid out like the upstream repositories
(``3DDFA_V2/...``, ``ICT-FaceKit/...``) it copies from there instead of the network.

Cache layout: ``$FACEDET3D_CACHE`` (default ``~/.cache/facedet3d``) /assets/<manifest path>;
converted arrays live under /converted.  A file enters the cache only through a temporary
file that is verified and then renamed, so a corrupt or truncated copy is never half-used.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from facedet3d.errors import AssetCorrupt, AssetsMissing

MIRROR_ENV = "FACEDET3D_ASSET_MIRROR"
CACHE_ENV = "FACEDET3D_CACHE"
FETCH_HINT = "run `facedet3d assets fetch`"
_MANIFEST_FILE = Path(__file__).with_name("manifest.json")


@dataclass(frozen=True)
class AssetEntry:
    """One upstream file: ``path`` relative to the cache/mirror root, its URL, checksum."""

    path: str
    url: str
    sha256: str
    size: int
    licence: str
    required_for: str  # "fit" or "rig": which stage needs it
    verify: str = "sha256"  # or "sha256-or-structure" (see the manifest's note)


def manifest() -> list[AssetEntry]:
    data = json.loads(_MANIFEST_FILE.read_text(encoding="utf-8"))
    fields = AssetEntry.__dataclass_fields__
    return [AssetEntry(**{k: v for k, v in f.items() if k in fields}) for f in data["files"]]


def cache_root() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "facedet3d")
    return Path(root)


def assets_dir() -> Path:
    return cache_root() / "assets"


def converted_dir() -> Path:
    d = cache_root() / "converted"
    d.mkdir(parents=True, exist_ok=True)
    return d


def cached_arrays(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays converted from the assets, kept as one ``.npz`` at ``path``: loaded when
    present and readable, else built with ``build()`` and written through a uniquely named
    temporary file + rename (so concurrent processes never read a half-written cache). A
    damaged cache file is rebuilt, never half-used."""
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError, EOFError):
            pass
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return arrays


def _entry(rel: str) -> AssetEntry:
    for e in manifest():
        if e.path == rel:
            return e
    raise KeyError(f"{rel} is not in the asset manifest")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp_text(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _check(entry: AssetEntry, path: Path) -> None:
    """Raise AssetCorrupt unless ``path`` is a good copy of ``entry``."""
    digest = sha256_file(path)
    if digest == entry.sha256:
        return
    if entry.verify == "sha256-or-structure":
        _check_bfm_structure(path)  # raises AssetCorrupt
        return
    raise AssetCorrupt(
        f"{entry.path}: sha256 {digest[:12]}... does not match the pinned {entry.sha256[:12]}...; "
        f"the file is corrupt or not the pinned upstream version — delete it and {FETCH_HINT}"
    )


def _check_bfm_structure(path: Path) -> None:
    try:
        d = load_pickle(path)
        n3 = d["u"].reshape(-1).shape[0]
        ok = (
            n3 % 3 == 0
            and d["w_shp"].shape == (n3, 40)
            and d["w_exp"].shape == (n3, 10)
            and d["keypoints"].reshape(-1).shape[0] == 204
            and all(np.isfinite(d[k]).all() for k in ("u", "w_shp", "w_exp"))
        )
    except AssetCorrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure means a bad file
        raise AssetCorrupt(f"{path.name}: not a BFM no-neck model ({exc}); {FETCH_HINT}") from None
    if not ok:
        raise AssetCorrupt(f"{path.name}: unexpected array shapes for a BFM no-neck model; {FETCH_HINT}")


def asset_path(rel: str) -> Path:
    """Path of a verified cached asset; raises AssetsMissing / AssetCorrupt.

    Verification (sha256) runs once per file version: a stamp beside the file records the
    size and mtime that were verified, so later loads cost one ``stat``.
    """
    entry = _entry(rel)
    path = assets_dir() / rel
    if not path.is_file():
        raise AssetsMissing(f"face-model file {rel} is not installed; {FETCH_HINT}")
    stamp = _stamp(path)
    if stamp.is_file() and stamp.read_text() == _stamp_text(path):
        return path
    _check(entry, path)
    stamp.write_text(_stamp_text(path))
    return path


def _copy_from_mirror(mirror: Path, rel: str, dst: Path) -> None:
    src = mirror / rel
    if not src.is_file():
        raise AssetsMissing(f"the mirror {mirror} has no {rel}; check {MIRROR_ENV}")
    shutil.copyfile(src, dst)


def _download(url: str, dst: Path, timeout_s: float = 60.0) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "facedet3d-assets"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r, open(dst, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except OSError as exc:
        raise AssetsMissing(
            f"could not download {url} ({exc}); check the network, or set {MIRROR_ENV} to a local copy"
        ) from None


def fetch(
    stages: Iterable[str] = ("fit", "rig"),
    mirror: str | os.PathLike | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Install the manifest's files for ``stages`` into the cache; returns their paths.

    Source: ``mirror`` (or ``$FACEDET3D_ASSET_MIRROR``) when given, else the pinned URLs.
    Each file goes to a temporary name, is verified, then renamed into place: a failed
    or corrupt transfer leaves the cache as it was.
    """
    mirror = mirror or os.environ.get(MIRROR_ENV)
    mirror_path = Path(mirror) if mirror else None
    if mirror_path is not None and not mirror_path.is_dir():
        raise AssetsMissing(f"{MIRROR_ENV}={mirror} is not a folder")
    out = []
    for entry in manifest():
        if entry.required_for not in stages:
            continue
        dst = assets_dir() / entry.path
        if dst.is_file() and not force:
            try:
                out.append(asset_path(entry.path))
                continue
            except AssetCorrupt:
                pass  # replace the bad copy below
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=dst.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if progress:
                progress(f"fetching {entry.path} ({entry.size / 1e6:.1f} MB)")
            if mirror_path is not None:
                _copy_from_mirror(mirror_path, entry.path, tmp)
            else:
                _download(entry.url, tmp)
            _check(entry, tmp)
            os.replace(tmp, dst)
            _stamp(dst).write_text(_stamp_text(dst))
        finally:
            if tmp.exists():
                tmp.unlink()
        out.append(dst)
    return out


def status() -> dict[str, str]:
    """Each manifest path -> 'ok', 'missing' or 'corrupt' (for `facedet3d assets status`)."""
    result = {}
    for entry in manifest():
        try:
            asset_path(entry.path)
            result[entry.path] = "ok"
        except AssetsMissing:
            result[entry.path] = "missing"
        except AssetCorrupt:
            result[entry.path] = "corrupt"
    return result


# --- loading without executing code -------------------------------------------------------

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): np.core.multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): np.core.multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy array reconstruction and plain containers; anything else —
    in particular callables such as ``os.system`` — is refused, so loading cannot run code."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def load_pickle(path: Path | str):
    """Load a pickle of numpy arrays / dicts with the restricted unpickler."""
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(io.BufferedReader(f), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise AssetCorrupt(f"{Path(path).name}: refused or unreadable pickle ({exc}); {FETCH_HINT}") from None
