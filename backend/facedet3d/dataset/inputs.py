"""What a dataset job processes: a folder of photos (recursive) or a CSV/JSONL list.

Each input becomes one ``Task`` with a stable ``key`` (16 hex digits of the SHA-1 of its
path relative to the input root), so a rerun finds its earlier results whatever the
executor. Labels from a list (every column/field other than the path) ride along
unchanged into the manifest and the sample's JSON.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from facedet3d.errors import BadRequest

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}
PATH_FIELDS = ("path", "image", "file", "filename", "photo")


@dataclass(frozen=True)
class Task:
    """One input photo.

    index: position in the input order (0-based); shards group consecutive indices.
    key: stable id (hex), the WebDataset sample key of the photo's outputs.
    path: absolute path of the photo.
    relpath: path relative to the input root (a folder, or the list file's folder).
    labels: the list's other fields for this row ({} for a folder).
    """

    index: int
    key: str
    path: str
    relpath: str
    labels: dict = field(default_factory=dict)


@dataclass(frozen=True)
class InputList:
    tasks: list[Task]
    source: str  # "folder", "csv" or "jsonl"
    skipped: list[str]  # files in a folder that are not images by extension (listed, not processed)
    label_names: list[str]


def sample_key(relpath: str) -> str:
    return hashlib.sha1(relpath.replace("\\", "/").encode("utf-8")).hexdigest()[:16]


def _coerce(text: str):
    """CSV cells are text: numbers become numbers, empty becomes None."""
    t = text.strip()
    if t == "":
        return None
    for cast in (int, float):
        try:
            return cast(t)
        except ValueError:
            pass
    return t


def _rows_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise BadRequest(f"{path.name} has no header row; the first row must name the columns (one of {', '.join(PATH_FIELDS)})")
        return [{k: _coerce(v or "") for k, v in row.items() if k is not None} for row in reader]


def _rows_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"{path.name} line {n} is not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise BadRequest(f"{path.name} line {n} is not a JSON object")
        rows.append(row)
    return rows


def list_inputs(source: str | Path, limit: int | None = None) -> InputList:
    """Folder (recursive; hidden files ignored; images by extension, other files reported as
    skipped) or a .csv / .jsonl list whose path column is one of ``PATH_FIELDS``
    (relative paths are relative to the list's folder)."""
    src = Path(source)
    if not src.exists():
        raise BadRequest(f"{source} does not exist; give a folder of photos or a .csv/.jsonl list")
    tasks: list[Task] = []
    skipped: list[str] = []
    if src.is_dir():
        root = src.resolve()
        files = sorted(p for p in root.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
        for p in files:
            rel = p.relative_to(root).as_posix()
            if p.suffix.lower() in IMAGE_EXTS:
                tasks.append(Task(len(tasks), sample_key(rel), str(p), rel))
            else:
                skipped.append(rel)
        kind, label_names = "folder", []
    else:
        suffix = src.suffix.lower()
        if suffix == ".csv":
            rows, kind = _rows_csv(src), "csv"
        elif suffix in (".jsonl", ".ndjson"):
            rows, kind = _rows_jsonl(src), "jsonl"
        else:
            raise BadRequest(f"{src.name}: give a folder, a .csv or a .jsonl list of photo paths")
        root = src.resolve().parent
        label_names = []
        for n, row in enumerate(rows):
            pf = next((f for f in PATH_FIELDS if row.get(f) not in (None, "")), None)
            if pf is None:
                raise BadRequest(f"{src.name} row {n + 1} has no photo path (a column named one of {', '.join(PATH_FIELDS)})")
            p = Path(str(row[pf]))
            full = p if p.is_absolute() else root / p
            rel = str(row[pf]).replace("\\", "/")
            labels = {k: v for k, v in row.items() if k != pf}
            for k in labels:
                if k not in label_names:
                    label_names.append(k)
            tasks.append(Task(len(tasks), sample_key(rel), str(full), rel, labels))
        seen: dict[str, int] = {}
        for t in tasks:
            if t.key in seen:
                raise BadRequest(f"{src.name} lists {t.relpath} twice (rows {seen[t.key] + 1} and {t.index + 1})")
            seen[t.key] = t.index
    if limit is not None:
        tasks = tasks[:limit]
    if not tasks:
        raise BadRequest(f"{source} holds no photos ({', '.join(sorted(IMAGE_EXTS))})")
    return InputList(tasks, kind, skipped, label_names)


def fingerprint(tasks: list[Task]) -> str:
    """SHA-1 of the ordered relative paths: a rerun into the same OUT must list the same inputs."""
    h = hashlib.sha1()
    for t in tasks:
        h.update(t.relpath.encode("utf-8") + b"\n")
    return h.hexdigest()
