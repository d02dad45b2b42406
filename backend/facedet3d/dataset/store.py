"""OUT on disk: per-sample staging, WebDataset tar shards, the Parquet manifest, resume.

Layout::

    OUT/job.json                      options + input fingerprint (a rerun must match)
    OUT/shards/shard-000123.tar       samples of inputs 123*N .. 124*N-1 (N = --shard-size)
    OUT/manifest/part-000123.parquet  their manifest rows (failed and filtered photos too)
    OUT/manifest.parquet              all parts in input order (rewritten at the end)
    OUT/.staging/00001234.tar|.rows.json   finished samples not yet in a shard

Only the driver writes (workers return bytes), so there are no write races. Every file is
written to a temporary name and renamed. A sample is finished when its ``.rows.json`` is
in staging (written after its ``.tar``); a shard is finished when its manifest part exists
(written after its tar). A rerun deletes temporaries, orphan shards (tar without part) and
staging left over from finished shards, then computes only inputs that are neither staged
nor in a finished shard. Shard membership depends only on the input order, so the local
pool and Ray produce the same shards and manifest.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

from facedet3d.errors import BadRequest

FORMAT = "facedet3d-dataset/2"  # 2: reader columns, renderer columns
# Manifest columns in order; (name, arrow type). Label columns ``label_<name>`` follow.
COLUMNS = [
    ("key", "string"), ("index", "int64"), ("kind", "string"), ("source_key", "string"),
    ("relpath", "string"), ("path", "string"), ("status", "string"), ("reason", "string"),
    ("shard", "string"), ("width", "int32"), ("height", "int32"), ("photo_width", "int32"),
    ("photo_height", "int32"), ("quality", "float64"), ("lm_residual", "float64"),
    ("photo_residual", "float64"), ("yaw_deg", "float64"), ("pitch_deg", "float64"),
    ("roll_deg", "float64"), ("scale_px_per_m", "float64"), ("focal_px", "float64"),
    ("camera_distance_m", "float64"), ("mask_fraction", "float64"), ("aus", "json"),
    ("aus_source", "string"), ("reader_status", "string"), ("reader_lm_residual", "float64"), ("blendshapes", "json"),
    ("expression", "string"), ("view_yaw_deg", "float64"), ("target_aus", "json"),
    ("has_detail", "bool"), ("detail_max_m", "float64"), ("renderer", "string"), ("depth_vs_raster_mm", "float64"),
    ("depth_vs_raster_p95_mm", "float64"), ("mask_iou_vs_raster", "float64"), ("labels", "json"),
    ("fit_ms", "float64"), ("maps_ms", "float64"), ("synth_ms", "float64"),
    ("total_ms", "float64"), ("cpu_ms", "float64"), ("render_ms", "float64"), ("render_task_ms", "float64"),
    ("render_cpu_ms", "float64"),
    ("worker", "string"),
]
# Columns that differ between two runs of the same job (timings, which process ran it).
VOLATILE = ("fit_ms", "maps_ms", "synth_ms", "total_ms", "cpu_ms", "render_ms", "render_task_ms", "render_cpu_ms", "worker")


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            _add(tf, name, data)
    return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 0  # deterministic shards: the same job gives the same bytes
    ti.mode = 0o644
    tf.addfile(ti, io.BytesIO(data))


def label_types(tasks) -> dict[str, str]:
    """Arrow type per label name from the values seen: bool, int64, float64, else string
    (dicts and lists as JSON)."""
    seen: dict[str, set] = {}
    for t in tasks:
        for k, v in t.labels.items():
            if v is not None:
                seen.setdefault(k, set()).add(type(v))
    out = {}
    for k in dict.fromkeys(k for t in tasks for k in t.labels):
        ts = seen.get(k, {str})
        if ts == {bool}:
            out[k] = "bool"
        elif ts <= {int}:
            out[k] = "int64"
        elif ts <= {int, float}:
            out[k] = "float64"
        elif ts <= {str}:
            out[k] = "string"
        else:
            out[k] = "json"
    return out


def rows_to_table(rows: list[dict], labels: dict[str, str]):
    import pyarrow as pa

    def typ(t):
        return {"json": pa.string(), "bool": pa.bool_()}.get(t) or getattr(pa, t)()

    cols, fields = [], []
    for name, t in COLUMNS:
        vals = [r.get(name) for r in rows]
        if t == "json":
            vals = [None if v is None else json.dumps(v, sort_keys=True) for v in vals]
        cols.append(pa.array(vals, typ(t)))
        fields.append(pa.field(name, typ(t)))
    for name, t in labels.items():
        vals = [(r.get("labels") or {}).get(name) for r in rows]
        if t == "json":
            vals = [None if v is None else json.dumps(v, sort_keys=True) for v in vals]
        elif t == "float64":
            vals = [None if v is None else float(v) for v in vals]
        cols.append(pa.array(vals, typ(t)))
        fields.append(pa.field(f"label_{name}", typ(t)))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


class Store:
    def __init__(self, out: str | Path, shard_size: int, tasks, job: dict, labels: dict[str, str]):
        self.out = Path(out)
        self.shard_size = int(shard_size)
        self.tasks = tasks
        self.job = json.loads(json.dumps(job))  # as job.json will hold it (tuples -> lists)
        self.labels = labels
        self.shards = self.out / "shards"
        self.parts = self.out / "manifest"
        self.staging = self.out / ".staging"
        self.n_shards = (len(tasks) + self.shard_size - 1) // self.shard_size

    # -- start / resume ----------------------------------------------------------------------
    def open(self, overwrite: bool = False) -> None:
        """Create OUT or check that it holds this very job; clean up what a killed run left."""
        jp = self.out / "job.json"
        if overwrite and self.out.exists():
            for sub in ("shards", "manifest", ".staging"):
                shutil.rmtree(self.out / sub, ignore_errors=True)
            for f in ("job.json", "manifest.parquet", "README.md", "counts.json"):
                (self.out / f).unlink(missing_ok=True)
        if jp.exists():
            old = json.loads(jp.read_text(encoding="utf-8"))
            for k in ("options", "fingerprint", "shard_size", "format"):
                if old.get(k) != self.job.get(k):
                    raise BadRequest(f"{self.out} holds a dataset made with a different {k} "
                                     f"({old.get(k)!r} vs {self.job.get(k)!r}); use another -o folder or --overwrite")
        elif self.out.exists() and any(self.out.iterdir()):
            raise BadRequest(f"{self.out} exists and is not a facedet3d dataset folder; use an empty or new -o folder")
        for d in (self.shards, self.parts, self.staging):
            d.mkdir(parents=True, exist_ok=True)
        if not jp.exists():
            _atomic_bytes(jp, json.dumps(self.job, indent=1).encode("utf-8"))
        for d in (self.shards, self.parts, self.staging):
            for p in d.glob("*.tmp"):
                p.unlink()
        done = self.committed()
        for p in self.shards.glob("shard-*.tar"):
            if int(p.stem.split("-")[1]) not in done:
                p.unlink()  # orphan: the run died between the tar and its manifest part
        for p in self.staging.iterdir():
            if int(p.name.split(".")[0]) // self.shard_size in done:
                p.unlink()

    def committed(self) -> set[int]:
        return {int(p.stem.split("-")[1]) for p in self.parts.glob("part-*.parquet")}

    def staged(self) -> set[int]:
        return {int(p.name.split(".")[0]) for p in self.staging.glob("*.rows.json")}

    def pending(self) -> list:
        """Tasks still to compute (neither staged nor in a finished shard)."""
        done, staged = self.committed(), self.staged()
        return [t for t in self.tasks if t.index // self.shard_size not in done and t.index not in staged]

    # -- samples and shards ------------------------------------------------------------------
    def put(self, result) -> None:
        """Stage one finished sample: its tar (if it has files), then its rows (the marker)."""
        stem = self.staging / f"{result.index:08d}"
        if result.members:
            _atomic_bytes(stem.with_suffix(".tar"), _tar_bytes(result.members))
        _atomic_bytes(stem.with_suffix(".rows.json"), json.dumps(result.rows).encode("utf-8"))

    def shard_indices(self, sid: int) -> range:
        return range(sid * self.shard_size, min((sid + 1) * self.shard_size, len(self.tasks)))

    def commit_ready(self) -> list[int]:
        """Pack every shard whose inputs are all staged; returns the shard ids packed."""
        staged, done = self.staged(), self.committed()
        packed = []
        for sid in range(self.n_shards):
            if sid not in done and all(i in staged for i in self.shard_indices(sid)):
                self._pack(sid)
                packed.append(sid)
        return packed

    def commit_if_ready(self, sid: int) -> bool:
        """Pack shard ``sid`` if all its inputs are staged (checks only its own files)."""
        if all((self.staging / f"{i:08d}.rows.json").exists() for i in self.shard_indices(sid)) \
                and not (self.parts / f"part-{sid:06d}.parquet").exists():
            self._pack(sid)
            return True
        return False

    def _pack(self, sid: int) -> None:
        import pyarrow.parquet as pq

        name = f"shard-{sid:06d}.tar"
        tar_path = self.shards / name
        tmp = tar_path.with_name(name + ".tmp")
        rows, n_members = [], 0
        with tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as out:
            for i in self.shard_indices(sid):
                stem = self.staging / f"{i:08d}"
                st = stem.with_suffix(".tar")
                if st.exists():
                    with tarfile.open(st, mode="r") as src:
                        for m in src.getmembers():
                            _add(out, m.name, src.extractfile(m).read())
                            n_members += 1
                for r in json.loads(stem.with_suffix(".rows.json").read_text(encoding="utf-8")):
                    r["shard"] = f"shards/{name}" if r.get("status") == "ok" else None
                    rows.append(r)
        if n_members:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, tar_path)
        else:
            tmp.unlink()
        part = self.parts / f"part-{sid:06d}.parquet"
        ptmp = part.with_name(part.name + ".tmp")
        pq.write_table(rows_to_table(rows, self.labels), ptmp)
        os.replace(ptmp, part)
        for i in self.shard_indices(sid):
            for suffix in (".tar", ".rows.json"):
                (self.staging / f"{i:08d}").with_suffix(suffix).unlink(missing_ok=True)

    def consolidate(self):
        """OUT/manifest.parquet from all parts, in input order (photo row, then its targets)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = sorted(self.parts.glob("part-*.parquet"))
        table = pa.concat_tables([pq.read_table(p) for p in parts]) if parts else rows_to_table([], self.labels)
        order = sorted(range(table.num_rows), key=lambda r: (table["index"][r].as_py(), table["kind"][r].as_py() != "photo",
                                                              table["key"][r].as_py()))
        table = table.take(pa.array(order, pa.int64()))
        path = self.out / "manifest.parquet"
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        return table
