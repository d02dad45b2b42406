"""`facedet3d dataset --renderer cycles`: synthesized targets rendered by Blender in tasks
of their own (bpy in a subprocess), on a tiny job (one photo, two targets at 96 px).

Each Blender target must line up with the raster's maps of the same target (depth within
a millimetre, the same mask), carry RGB only on the face, unit normals that face the camera
and agree with its own depth map; Ray must give the serial run's samples; a failing Blender
is recorded per target and a missing one stops the job before anything is written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
ROOT = Path(__file__).resolve().parents[1]
OPTS = dict(size=96, crop="face", expressions=("happy",), views=(0.0, 30.0), renderer="cycles", render_samples=4)

pytest.importorskip("bpy")


def _folder(root: Path) -> Path:
    src = root / "photos"
    src.mkdir(parents=True)
    shutil.copy(SHARED / "photos" / "JianzhuGuo.jpg", src / "a.jpg")
    return src


def _rows(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out / "manifest.parquet").to_pylist()


def _samples(out: Path) -> dict:
    from facedet3d.dataset.reader import iter_shard, shard_paths

    return {s["key"]: s for p in shard_paths(out) for s in iter_shard(p)}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    from facedet3d.dataset.runner import run_job
    from facedet3d.dataset.sample import JobOptions

    root = tmp_path_factory.mktemp("dsb")
    src = _folder(root)
    out = root / "out"
    rep = run_job(str(src), str(out), JobOptions(**OPTS), addon=str(ROOT / "addon"))
    return src, out, rep


def test_blender_targets_line_up_with_the_raster(job):
    from facedet3d.dataset.camera import Camera
    from facedet3d.dataset.maps import normals_from_depth

    _, out, rep = job
    rows = _rows(out)
    synth = [r for r in rows if r["kind"] == "synth"]
    assert rep.counts["synth_ok"] == 2 and all(r["status"] == "ok" for r in synth), [r["reason"] for r in synth]
    assert all(r["renderer"] == "cycles" and r["render_ms"] > 0 for r in synth)
    for r in synth:  # the same geometry as the raster: depth to well under a millimetre, the same mask
        assert r["depth_vs_raster_mm"] < 0.2 and r["depth_vs_raster_p95_mm"] < 1.0 and r["mask_iou_vs_raster"] > 0.97
    samples = _samples(out)
    for r in synth:
        s = samples[r["key"]]
        rgb, depth, n, mask, info = s["rgb"], s["depth"], s["normals"], s["mask"], s["info"]
        assert rgb.shape == (96, 96, 3) and depth.shape == (96, 96) and 0.1 < mask.mean() < 0.8
        assert info["renderer"] == "cycles" and info["rgb"].startswith("Blender") and "vs_raster" in info
        assert (depth[~mask] == 0).all() and 0.2 < depth[mask].min() < depth[mask].max() < 3.0
        import cv2

        far = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0  # JPEG rings 2 px at the edge
        assert rgb[far].max() < 12 and rgb[mask].mean() > 40  # lit skin on the face, black elsewhere
        assert np.abs(np.linalg.norm(n[mask], axis=1) - 1).max() < 2e-3 and (n[mask][:, 2] > 0).mean() > 0.97
        cam = Camera(info["camera"]["f_px"], info["camera"]["s_px_per_m"], info["camera"]["distance_m"], 50.0)
        nd, ok = normals_from_depth(depth, mask, cam)
        ang = np.degrees(np.arccos(np.clip((nd[ok] * n[ok]).sum(1), -1, 1)))
        assert np.median(ang) < 6.0, f"Blender's normals disagree with its depth ({np.median(ang):.1f} deg)"
        lm = np.round(np.asarray(info["landmarks68"])).astype(int)
        # brows, eyes, nose, outer lips on the face (the inner-lip points 60-67 sit on the edge of
        # the smile's parted lips, a pixel from the opening at 96 px)
        assert mask[np.clip(lm[17:60, 1], 0, 95), np.clip(lm[17:60, 0], 0, 95)].mean() > 0.95
    def between_brows(r):  # Blender's normal at landmark 27, 3 x 3 pixels
        s = samples[r["key"]]
        x, y = np.round(np.asarray(s["info"]["landmarks68"])[27]).astype(int)
        return s["normals"][y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0)

    by_yaw = {r["view_yaw_deg"]: between_brows(r) for r in synth}
    assert 0.3 < by_yaw[30.0][0] - by_yaw[0.0][0] < 0.7  # turned by 30 degrees: n_x grows by about sin(30)


def test_photo_sample_has_reader_landmarks_and_blendshapes(job):
    """The photo's 478 landmarks sit on its 68 (the same face) and the 51 blendshapes are
    scores; the manifest carries the reader's status."""
    from facedet3d.dataset.reading import PAIRS_68, PAIRS_478

    _, out, _ = job
    photo = next(r for r in _rows(out) if r["kind"] == "photo")
    assert photo["reader_status"] == "ok" and photo["aus_source"] == "mediapipe" and photo["reader_lm_residual"] < 0.15
    info = _samples(out)[photo["key"]]["info"]
    lm478, lm68 = np.asarray(info["landmarks478"]), np.asarray(info["landmarks68"])
    assert lm478.shape == (478, 3) and info["reader"]["status"] == "ok"
    iod = np.linalg.norm(lm68[45] - lm68[36])
    assert np.linalg.norm(lm478[list(PAIRS_478), :2] - lm68[list(PAIRS_68)], axis=1).max() < 0.25 * iod
    bs = info["blendshapes"]
    assert len(bs) == 51 and "_neutral" not in bs and all(0.0 <= v <= 1.0 for v in bs.values())
    assert bs["mouthSmileLeft"] > 0.2 and json.loads(photo["blendshapes"]) == bs  # he smiles


def test_ray_renders_blender_tasks_like_the_serial_run(job, tmp_path):
    from facedet3d.dataset.runner import run_job
    from facedet3d.dataset.sample import JobOptions
    from facedet3d.dataset.store import VOLATILE

    pytest.importorskip("ray")
    src, out, _ = job
    rep = run_job(str(src), str(tmp_path / "ray"), JobOptions(**OPTS), workers=2, ray="local", addon=str(ROOT / "addon"))
    assert rep.executor.startswith("ray") and rep.counts["synth_ok"] == 2
    a, b = _rows(out), _rows(tmp_path / "ray")
    keep = lambda r: {k: v for k, v in r.items() if k not in VOLATILE}  # noqa: E731
    assert [keep(r)["key"] for r in a] == [keep(r)["key"] for r in b]
    for ra, rb in zip(a, b):
        for k in ("status", "renderer", "mask_iou_vs_raster", "depth_vs_raster_mm"):
            assert ra[k] == pytest.approx(rb[k], abs=2e-3) if isinstance(ra[k], float) else ra[k] == rb[k], k
    sa, sb = _samples(out), _samples(tmp_path / "ray")
    for k in sa:
        assert np.abs(sa[k]["depth"] - sb[k]["depth"]).max() < 1e-4
        assert np.abs(sa[k]["rgb"].astype(int) - sb[k]["rgb"]).mean() < 3.0


def test_failing_blender_is_recorded_per_target(job, tmp_path):
    """A Blender that exits with an error fails that photo's targets with its last line; the
    photo's own sample is kept."""
    from facedet3d.dataset.runner import run_job
    from facedet3d.dataset.sample import JobOptions

    src, _, _ = job
    fake = tmp_path / "addon"
    fake.mkdir()
    (fake / "dataset_render.py").write_text("import sys\nprint('Cycles: out of memory', file=sys.stderr)\nsys.exit(1)\n")
    rep = run_job(str(src), str(tmp_path / "out"), JobOptions(**OPTS), addon=str(fake))
    rows = _rows(tmp_path / "out")
    assert rep.counts["photos_ok"] == 1 and rep.counts["synth_failed"] == 2
    for r in rows[1:]:
        assert r["status"] == "failed" and r["reason"] == "cycles render failed: Cycles: out of memory"
    assert set(_samples(tmp_path / "out")) == {rows[0]["key"]}


def test_missing_blender_stops_before_writing(tmp_path):
    from facedet3d.dataset.blender import BlenderUnavailable
    from facedet3d.dataset.runner import run_job
    from facedet3d.dataset.sample import JobOptions

    src = _folder(tmp_path)
    with pytest.raises(BlenderUnavailable, match="dataset_render.py"):
        run_job(str(src), str(tmp_path / "out"), JobOptions(**OPTS), addon=str(tmp_path))
    with pytest.raises(BlenderUnavailable, match="no such executable"):
        run_job(str(src), str(tmp_path / "out"), JobOptions(**OPTS), addon=str(ROOT / "addon"), blender="/no/blender")
    assert not (tmp_path / "out").exists()
