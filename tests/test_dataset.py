"""`facedet3d dataset`: a small folder of real photos with broken and odd files mixed in.

One serial run (with details and two synthesized targets) is shared by the alignment and
manifest tests; a killed CLI run is resumed; the local pool and Ray (a local instance,
2 CPUs) must give the serial run's manifest and shards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

# ../shared beside the checkout (not `from conftest import`: blender_tests has a conftest too)
SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTOS = SHARED / "photos"


INTERFACES = SHARED / "data" / "faces" / "interfaces" / "1000 x 1000"
ROOT = Path(__file__).resolve().parents[1]
OPTS = dict(size=320, with_detail=True, expressions=("happy",), views=(0.0, 30.0), renderer="raster")


def _folder(root: Path) -> Path:
    """Two real photos (one in a subfolder), three broken image files, one text file."""
    src = root / "photos"
    (src / "sub").mkdir(parents=True)
    shutil.copy(PHOTOS / "JianzhuGuo.jpg", src / "a_jianzhu.jpg")
    shutil.copy(INTERFACES / "001.jpg", src / "sub" / "b_interfaces001.jpg")
    (src / "c_text.jpg").write_text("this is not a JPEG")
    (src / "d_empty.png").write_bytes(b"")
    data = (INTERFACES / "004.jpg").read_bytes()
    (src / "e_truncated.jpg").write_bytes(data[: len(data) // 40])
    (src / "notes.txt").write_text("labels live elsewhere")
    return src


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    from facedet3d.dataset.runner import run_job
    from facedet3d.dataset.sample import JobOptions

    root = tmp_path_factory.mktemp("ds")
    src = _folder(root)
    out = root / "out"
    rep = run_job(str(src), str(out), JobOptions(**OPTS), shard_size=2)
    return src, out, rep


def _manifest(out: Path):
    import pyarrow.parquet as pq

    return pq.read_table(out / "manifest.parquet").to_pylist()


def _samples(out: Path) -> dict:
    from facedet3d.dataset.reader import iter_shard, shard_paths

    found = {}
    for p in shard_paths(out):
        for s in iter_shard(p):
            assert s["key"] not in found, f"sample {s['key']} twice in the shards"
            found[s["key"]] = s
    return found


def test_manifest_lists_every_input_once(job):
    src, out, rep = job
    rows = _manifest(out)
    photos = [r for r in rows if r["kind"] == "photo"]
    assert [r["relpath"] for r in photos] == ["a_jianzhu.jpg", "c_text.jpg", "d_empty.png", "e_truncated.jpg",
                                              "sub/b_interfaces001.jpg"]
    assert len({r["key"] for r in rows}) == len(rows)
    status = {r["relpath"]: (r["status"], r["reason"]) for r in photos}
    for name in ("c_text.jpg", "d_empty.png", "e_truncated.jpg"):
        st, reason = status[name]
        assert st == "failed" and name in reason and "\n" not in reason
    for name in ("a_jianzhu.jpg", "sub/b_interfaces001.jpg"):
        assert status[name] == ("ok", None)
    synth = [r for r in rows if r["kind"] == "synth"]
    assert len(synth) == 4 and all(r["status"] == "ok" for r in synth)
    assert {r["view_yaw_deg"] for r in synth} == {0.0, 30.0}
    assert all(json.loads(r["target_aus"])["12"] == 1.0 for r in synth)  # happy: AU12 at 1
    assert rep.counts["skipped_files"] == 1 and "notes.txt" in (out / "README.md").read_text()
    card = (out / "README.md").read_text()
    assert "academic" in card and "50 mm" in card and "| photos failed" in card
    samples = _samples(out)
    assert set(samples) == {r["key"] for r in rows if r["status"] == "ok"}
    assert not list((out / ".staging").iterdir())


def test_maps_line_up_with_the_photo(job):
    """Mask and landmarks agree with the face MTCNN found in the photo; normals are unit,
    face the camera and agree with the depth map's own gradient; the nose is nearer than
    the eyes; the detail changed depth by sub-millimetre amounts."""
    from facedet3d.dataset.camera import Camera
    from facedet3d.dataset.maps import normals_from_depth

    _, out, _ = job
    rows = {r["key"]: r for r in _manifest(out)}
    for key, s in _samples(out).items():
        depth, n, mask, info = s["depth"], s["normals"], s["mask"], s["info"]
        H, W = depth.shape
        assert max(H, W) == 320 and s["rgb"].shape == (H, W, 3) and depth.dtype == np.float32
        assert (depth[~mask] == 0).all() and 0.2 < depth[mask].min() < depth[mask].max() < 3.0
        norm = np.linalg.norm(n[mask], axis=1)
        assert np.abs(norm - 1).max() < 2e-3 and (n[~mask] == 0).all()
        assert (n[mask][:, 2] > 0).mean() > 0.99
        cam = Camera(info["camera"]["f_px"], info["camera"]["s_px_per_m"], info["camera"]["distance_m"], 50.0)
        nd, ok = normals_from_depth(depth, mask, cam)
        ang = np.degrees(np.arccos(np.clip((nd[ok] * n[ok]).sum(1), -1, 1)))
        assert np.median(ang) < 4.0, f"{key}: normals disagree with the depth gradient ({np.median(ang):.1f} deg)"
        lm = np.asarray(info["landmarks68"])
        r, c = np.clip(np.round(lm[:, 1]).astype(int), 0, H - 1), np.clip(np.round(lm[:, 0]).astype(int), 0, W - 1)
        assert mask[r[17:], c[17:]].mean() > 0.95  # inner landmarks on the mask
        eyes = depth[r[[36, 45]], c[[36, 45]]]
        # nose tip nearer than both outer eye corners by > 5 mm (a flat or flipped depth fails; at the
        # 30 deg view the near corner is only ~10 mm behind a 42 mm nose)
        assert depth[r[30], c[30]] < eyes.min() - 0.005
        if info["kind"] == "photo":
            # the detector's face box (photo pixels) -> output pixels: its centre third is face
            k = W / rows[key]["photo_width"]
            x1, y1, x2, y2 = (np.asarray(info["box_photo_px"]) + 0.5) * k - 0.5
            cx, cy, w3, h3 = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 6, (y2 - y1) / 6
            assert mask[int(cy - h3):int(cy + h3), int(cx - w3):int(cx + w3)].mean() > 0.9
            assert rows[key]["quality"] is not None and 0 < rows[key]["quality"] <= 1
            assert 1e-5 < rows[key]["detail_max_m"] < 3e-3
        else:
            assert info["target_aus"]["12"] == 1.0 and rows[key]["detail_max_m"] > 1e-6


def test_synthesized_view_turns_the_head(job):
    _, out, _ = job
    s = _samples(out)
    rows = [r for r in _manifest(out) if r["kind"] == "synth" and r["relpath"] == "a_jianzhu.jpg"]
    k0 = next(r["key"] for r in rows if r["view_yaw_deg"] == 0)
    k30 = next(r["key"] for r in rows if r["view_yaw_deg"] == 30)
    lm0, lm30 = np.asarray(s[k0]["info"]["landmarks68"]), np.asarray(s[k30]["info"]["landmarks68"])
    assert lm30[30, 0] > lm0[30, 0] + 5  # the nose tip moves toward image right

    def normal_at(k, p):  # the normal at landmark 27 (between the brows), on the surface
        x, y = np.round(p[27]).astype(int)
        return s[k]["normals"][y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0)

    tilt = normal_at(k30, lm30)[0] - normal_at(k0, lm0)[0]
    assert 0.3 < tilt < 0.7  # turned by 30 degrees: n_x grows by about sin(30) = 0.5


def test_killed_run_resumes_without_duplicates(tmp_path):
    """A CSV with labels; the CLI is killed once the first shard is written, a
    half-written sample is planted, and the rerun finishes with every input once."""
    import pyarrow.parquet as pq

    lst = tmp_path / "list.csv"
    shutil.copy(PHOTOS / "emma.jpg", tmp_path / "emma.jpg")
    lst.write_text("path,expression,valence\n"
                   f"{PHOTOS / 'JianzhuGuo.jpg'},happy,0.5\n"
                   "emma.jpg,neutral,0\n"
                   "missing.jpg,sad,-0.5\n"
                   f"{INTERFACES / '001.jpg'},happy,0.75\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "facedet3d.cli", "dataset", str(lst), "-o", str(out), "--size", "256", "--crop", "face",
           "--shard-size", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "backend") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        t0 = time.monotonic()
        while not (out / "manifest" / "part-000000.parquet").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - t0 < 240
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "manifest.parquet").exists()
    (out / ".staging" / "00000001.tar.tmp").write_bytes(b"half a sample")  # killed mid-write
    (out / "shards" / "shard-000003.tar").write_bytes(b"orphan shard, no manifest part")
    done_before = {p.name for p in (out / "manifest").glob("*.parquet")}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "from an earlier run" in r.stderr
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert [x["relpath"] for x in rows] == [str(PHOTOS / "JianzhuGuo.jpg"), "emma.jpg", "missing.jpg", str(INTERFACES / "001.jpg")]
    assert [x["label_expression"] for x in rows] == ["happy", "neutral", "sad", "happy"]
    assert [x["label_valence"] for x in rows] == [0.5, 0.0, -0.5, 0.75]
    assert rows[2]["status"] == "failed" and "does not exist" in rows[2]["reason"]
    assert done_before <= {p.name for p in (out / "manifest").glob("*.parquet")}
    names = [m.name for p in sorted((out / "shards").glob("*.tar")) for m in tarfile.open(p)]
    assert len(names) == len(set(names)) == 9  # 3 ok photos x (jpg, npz, json)
    assert not list((out / ".staging").iterdir())
    for key, smp in _samples(out).items():  # face crops: 256 x 256, the landmarks on the mask
        assert smp["depth"].shape == (256, 256) and smp["rgb"].shape == (256, 256, 3)
        lm = np.round(np.asarray(smp["info"]["landmarks68"])).astype(int)
        assert smp["mask"][np.clip(lm[17:, 1], 0, 255), np.clip(lm[17:, 0], 0, 255)].mean() > 0.95
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "computed 0 (4 from an earlier run)" in again.stdout
    other = subprocess.run(cmd + ["--with-detail"], env=env, capture_output=True, text=True, timeout=300)
    assert other.returncode != 0 and "different options" in other.stderr


def _comparable(rows):
    from facedet3d.dataset.store import VOLATILE

    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


def _same_rows(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(_comparable(a), _comparable(b)):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], float):
                assert rb[k] == pytest.approx(ra[k], rel=1e-3, abs=1e-6), k
            else:
                assert ra[k] == rb[k], k


@pytest.mark.parametrize("executor", ["pool", "ray"])
def test_pool_and_ray_give_the_same_manifest(job, tmp_path, executor):
    from facedet3d.dataset.runner import run_job
    from facedet3d.dataset.sample import JobOptions

    if executor == "ray":
        pytest.importorskip("ray")
    src, out, _ = job
    other = tmp_path / executor
    rep = run_job(str(src), str(other), JobOptions(**OPTS), shard_size=2, workers=2,
                  ray="local" if executor == "ray" else None)
    assert rep.executor.startswith("ray" if executor == "ray" else "process pool")
    _same_rows(_manifest(out), _manifest(other))
    a, b = _samples(out), _samples(other)
    assert set(a) == set(b)
    for k in a:
        assert np.abs(a[k]["depth"] - b[k]["depth"]).max() < 1e-3
        assert (a[k]["mask"] != b[k]["mask"]).mean() < 1e-3


def test_render_maps_of_a_tilted_plane():
    """Depth and normals of a known surface: a plane tilted 30 deg about the vertical axis."""
    from facedet3d.dataset.camera import Camera, Frame
    from facedet3d.dataset.maps import render_maps

    s = 1000.0  # px per metre
    cam = Camera(f_px=2000.0, s_px_per_m=s, distance_m=2.0, focal_mm=50.0)
    frame = Frame(-0.5, -0.5, 1.0, 64, 64)
    xs = np.array([-0.02, 0.02, 0.02, -0.02])  # metres, a 4 cm square
    ys = np.array([-0.02, -0.02, 0.02, 0.02])
    t = np.radians(30)
    z = -np.tan(t) * xs  # right side farther away: the normal leans to +x
    verts = np.column_stack([xs * s + 32, -ys * s + 32, z])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    m = render_maps(verts, faces, frame, cam)
    assert 1400 < m.mask.sum() < 1700
    np.testing.assert_allclose(m.normals[m.mask], np.tile([np.sin(t), 0, np.cos(t)], (m.mask.sum(), 1)), atol=1e-5)
    r, c = 32, 42  # 10 px = 1 cm right of the centre
    assert m.depth[r, c] == pytest.approx(2.0 + np.tan(t) * (c - 32) / s, abs=1e-6)


def test_inputs_and_quality_units(tmp_path):
    from facedet3d.dataset import quality
    from facedet3d.dataset.inputs import list_inputs
    from facedet3d.errors import BadRequest

    (tmp_path / "dup.csv").write_text("image,label\na.jpg,1\na.jpg,2\n")
    with pytest.raises(BadRequest, match="twice"):
        list_inputs(tmp_path / "dup.csv")
    (tmp_path / "l.jsonl").write_text('{"file": "x.png", "aus": {"12": 0.8}}\n\n{"file": "y.png"}\n')
    il = list_inputs(tmp_path / "l.jsonl")
    assert [t.relpath for t in il.tasks] == ["x.png", "y.png"] and il.tasks[0].labels == {"aus": {"12": 0.8}}
    with pytest.raises(BadRequest, match="no photos"):
        list_inputs(tmp_path / "empty_dir" if (tmp_path / "empty_dir").mkdir() is None else None)
    assert quality.score(0.0, 0.0) == 1.0
    assert quality.score(0.05, 0.1) > quality.score(0.3, 0.1) > quality.score(0.3, 0.5)
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48], lm[30], lm[48], lm[54] = (0, 0), (10, 0), (5, 5), (2, 10), (8, 10)
    assert quality.landmark_residual(lm, quality.five_points(lm)) == 0.0
    assert quality.landmark_residual(lm, quality.five_points(lm) + [1.0, 0.0]) == pytest.approx(0.1)


def test_cli_arguments(tmp_path, capsys):
    from facedet3d import cli
    from facedet3d.cli import app

    a = app.build_parser().parse_args(["dataset", "in", "-o", "o", "--expressions", "happy,surprise", "--views", "-30,0,30"])
    assert a.expressions == ("happy", "surprise") and a.views == (-30.0, 0.0, 30.0)
    assert a.renderer == "cycles"  # Blender by default; the raster only when asked for
    b = app.build_parser().parse_args(["dataset", "in", "-o", "o", "--expressions", "happy", "--renderer", "raster"])
    assert b.renderer == "raster"
    with pytest.raises(SystemExit):
        app.build_parser().parse_args(["dataset", "in", "-o", "o", "--expressions", "happy", "--renderer", "neural"])
    capsys.readouterr()
    assert cli.main(["dataset", str(tmp_path), "-o", str(tmp_path / "o"), "--expressions", "happy",
                     "--render-samples", "0"]) == 2
    assert "--render-samples" in capsys.readouterr().err
    assert cli.main(["dataset", str(tmp_path), "-o", str(tmp_path / "o"), "--views", "30"]) == 2
    assert "--expressions" in capsys.readouterr().err
    assert cli.main(["dataset", str(tmp_path / "none"), "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "keep.txt").write_text("not a dataset")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.jpg").write_text("x")
    assert cli.main(["dataset", str(tmp_path / "in"), "-o", str(tmp_path)]) == 2  # never writes into a foreign folder
    assert "not a facedet3d dataset folder" in capsys.readouterr().err


def test_reader_fields_record_failures():
    """No face: explicit nulls with the reason; a reading off the fit's face: flagged."""
    from facedet3d.dataset.camera import Frame
    from facedet3d.dataset.reading import AGREE_MAX, PAIRS_68, PAIRS_478, sample_fields
    from facedet3d.expression.reader import Reading

    frame = Frame(-0.5, -0.5, 0.5, 50, 50)  # half size
    info, row = sample_fields(None, np.zeros((68, 2)), frame)
    assert info["landmarks478"] is None and info["blendshapes"] is None and row["reader_status"] == "no face"
    assert "no face" in info["reader"]["reason"]
    lm68 = np.zeros((68, 2))
    lm68[list(PAIRS_68)] = [(30, 40), (70, 40), (50, 60), (38, 75), (62, 75)]
    lm478 = np.zeros((478, 3), np.float32)
    lm478[list(PAIRS_478), :2] = lm68[list(PAIRS_68)] + (1.0, 0.0)  # 1 px off, IOD 40 px
    lm478[:, 2] = 4.0
    info, row = sample_fields(Reading(lm478, {"jawOpen": 0.25}), lm68, frame)
    assert row["reader_status"] == "ok" and row["reader_lm_residual"] == pytest.approx(1 / 40)
    pts = np.asarray(info["landmarks478"])
    assert pts[33].tolist() == pytest.approx([15.5 - 0.5 + 0.25, 19.75, 2.0])  # photo (31, 40) -> half-size output
    assert info["blendshapes"] == {"jawOpen": 0.25} and row["blendshapes"] == {"jawOpen": 0.25}
    lm478[list(PAIRS_478), :2] += (40 * AGREE_MAX * 1.5, 0.0)
    info, row = sample_fields(Reading(lm478, {}), lm68, frame)
    assert row["reader_status"] == "disagrees" and "inter-ocular" in info["reader"]["reason"]
