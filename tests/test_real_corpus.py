"""Real detail corpus: build from a few frames of a real clip, resume, and read as pairs."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not (SHARED / "data").is_dir():  # checkout elsewhere: fall back to the absolute shared folder
    SHARED = Path("/work/shared")

CLIP = SHARED / "data" / "faces" / "LivePortrait" / "assets" / "examples" / "driving" / "d0.mp4"

pytestmark = pytest.mark.skipif(not CLIP.is_file(), reason="real clips not in ../shared")


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """4 frames of d0 (neutral -> smile), cut at test time."""
    import cv2
    from facedet3d.detail.frames import read_video

    frames = read_video(CLIP, frames=[0, 24, 36, 48])
    path = tmp_path_factory.mktemp("clip") / "d0_cut.mp4"
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    for i in sorted(frames):
        vw.write(np.ascontiguousarray(frames[i][..., ::-1]))
    vw.release()
    return path


def test_build_resume_and_pairs(short_clip, tmp_path):
    from facedet3d.detail import data, real_corpus
    from facedet3d.detail.nets import DETAIL_SIZE

    out = tmp_path / "corpus"
    msgs = []
    index = real_corpus.build([str(short_clip)], out, size=256, stride=1, min_change=0.3, progress=msgs.append)
    entries = index["entries"]
    assert 2 <= len(entries) <= 4, entries
    assert len({e["clip"] for e in entries}) == 1
    # the smile frames read a smile: AU12 above the neutral frame's
    au12 = {e["frame"]: float(e["aus"].get("12", 0.0)) for e in entries}
    assert max(au12.values()) > au12.get(0, 0.0) + 0.2, au12
    for e in entries:
        assert 0.0 < e["quality"] <= 1.0 and e["observed_fraction"] > 0.3
        assert 0.0 <= e["occluded_fraction"] < 0.1  # d0 wears no glasses: a little hair at the edges at most
    assert any("occluders" in m and "% of the chart" in m for m in msgs)  # the build says how much went
    clip = entries[0]["clip"]
    with np.load(out / "clips" / f"{clip}.npz") as z:
        d = z["detail"].astype(np.float32) * index["unit_m"]
        assert d.shape == (len(entries), 256, 256) and z["mask"].shape == d.shape
    # D(I) of real skin: signed, tenths of a millimetre, not empty
    assert 1e-6 < np.abs(d).mean() < 1e-3 and (d < 0).any() and (d > 0).any()
    assert index["clips"][clip]["seconds_per_frame"] > 0
    # resumable: a second build skips the finished clip
    msgs.clear()
    real_corpus.build([str(short_clip)], out, size=256, progress=msgs.append)
    assert any("skipped" in m for m in msgs)
    assert index["labels_source"] == "landmarks"
    # another AU labels source cannot be mixed into the same corpus
    from facedet3d.errors import BadRequest

    with pytest.raises(BadRequest):
        real_corpus.build([str(short_clip)], out, labels_name="pkg.mod:reader", progress=msgs.append)
    # training reads it through FolderPairs as pairs of the same clip
    src = data.FolderPairs(out, seed=0)
    assert isinstance(src, real_corpus.CorpusReader)
    b = src.batch(0, 3)
    assert b["d_x"].shape == (3, 1, DETAIL_SIZE, DETAIL_SIZE) and b["x"].shape == (3, 17)
    assert not np.allclose(b["d_x"].numpy(), b["d_y"].numpy())


def test_cli_registered_and_bad_input(tmp_path):
    from facedet3d.cli.app import build_parser

    args = build_parser().parse_args(["corpus", "x.mp4", "-o", str(tmp_path / "c")])
    assert args.func.__module__ == "facedet3d.cli.corpus"
    bad = tmp_path / "notes.txt"
    bad.write_text("x")
    r = subprocess.run([sys.executable, "-c", "import sys; from facedet3d.cli.app import main; sys.exit(main())",
                        "corpus", str(bad), "-o", str(tmp_path / "c")], check=False, capture_output=True, text=True)
    assert r.returncode == 2 and "not a video or photo" in r.stderr + r.stdout
    assert not (tmp_path / "c" / "index.json").exists()


def test_labels_folder_still_reads_as_folder_pairs(tmp_path):
    import json

    from facedet3d.detail import data

    rng = np.random.default_rng(0)
    for n in ("a.npy", "b.npy"):
        np.save(tmp_path / n, (rng.normal(size=(64, 64)) * 1e-4).astype(np.float32))
    (tmp_path / "labels.json").write_text(json.dumps({"a.npy": {"subject": "s", "aus": {}},
                                                      "b.npy": {"subject": "s", "aus": {"12": 1.0}}}))
    src = data.FolderPairs(tmp_path)
    assert type(src) is data.FolderPairs and src.batch(0, 2)["d_x"].shape[0] == 2


def test_labels_source_hook():
    from facedet3d.detail import frames
    from facedet3d.errors import FaceDet3DError

    assert frames.resolve_labels(None) is frames.landmark_aus
    assert frames.resolve_labels("facedet3d.detail.frames:landmark_aus") is frames.landmark_aus
    for bad in ("facedet3d.no_such_reader:read", "facedet3d.detail.frames:nope", "justaname"):
        with pytest.raises(FaceDet3DError):
            frames.resolve_labels(bad)


def _fake_corpus(root: Path, aus_rows: list[dict]) -> None:
    """A corpus folder by hand: one clip whose frames carry known maps (frame k: constant k)."""
    import json

    from facedet3d.detail.real_corpus import UNIT_M, write_index
    from facedet3d.rig.facs import AU_IDS

    (root / "clips").mkdir(parents=True)
    n = len(aus_rows)
    det = np.stack([np.full((256, 256), float(k), np.float16) for k in range(n)])
    msk = np.full((n, 256, 256), 255, np.uint8)
    msk[2, :10] = 0  # frame 2 did not see the top rows
    aus = np.array([[r.get(a, 0.0) for a in AU_IDS] for r in aus_rows], np.float32)
    np.savez_compressed(root / "clips" / "c_x.npz", detail=det, mask=msk, frames=np.arange(n), aus=aus)
    ents = [{"clip": "c_x", "subject": "c_x", "source": "x", "frame": k, "row": k,
             "aus": {str(a): v for a, v in r.items()}, "age": None, "quality": 0.9} for k, r in enumerate(aus_rows)]
    (root / "clips" / "c_x.json").write_text(json.dumps(
        {"clip": "c_x", "source": "x", "video": True, "frames_scanned": n, "frames_kept": n,
         "seconds": 1.0, "seconds_per_frame": 0.1, "entries": ents}))
    write_index(root)
    assert UNIT_M > 0


def test_triplet_cross_reference_target(tmp_path):
    """target = D_a + D_b - D_c with c a second look at a's expression, never the input again."""
    from facedet3d.detail.real_corpus import CorpusReader

    # frames 0 and 2: neutral (twins, a blink apart); frame 1: smile; frame 3: a different smile
    _fake_corpus(tmp_path, [{}, {6: 0.8, 12: 1.0}, {45: 1.0}, {12: 0.6}])
    r = CorpusReader(tmp_path, min_change=0.6)
    rng = np.random.default_rng(0)
    seen_pairs = set()
    for _ in range(40):
        d_a, tgt, x, y, age, seen = r.triplet(rng)
        a, b, c = int(round(float(d_a[100, 100]) / r.unit)), None, None
        change = (tgt - d_a)[100, 100] / r.unit  # = b - c
        assert a in (0, 2) and np.abs(x - y).sum() >= 0.6
        assert round(float(change)) in {1 - (2 - a), 3 - (2 - a)}  # b in {1, 3}, c = the other neutral
        assert seen[:10].sum() == 0 and seen[20:].all()  # frame 2 is in every triplet
        seen_pairs.add((a, round(float(change))))
    assert len(seen_pairs) >= 3


def test_train_real_smoke(tmp_path):
    """Two fine-tuning steps on a hand-made corpus write loadable weights and the run's record."""
    import json

    from facedet3d.detail.infer import DetailPredictor
    from facedet3d.detail.train_real import main

    _fake_corpus(tmp_path / "c", [{}, {6: 0.8, 12: 1.0}, {45: 1.0}, {12: 0.6}])
    assert main(["--corpus", str(tmp_path / "c"), "--out", str(tmp_path / "w"), "--steps", "2",
                 "--batch", "1", "--mix", "0.5", "--threads", "1"]) == 0
    rec = json.loads((tmp_path / "w" / "train_real.json").read_text())
    assert rec["steps"] == 2 and rec["clips"] == ["c_x"] and len(rec["log"]) == 2
    p = DetailPredictor(tmp_path / "w", backend="torch")
    out = p(np.zeros((256, 256), np.float32), {}, {12: 1.0})
    assert np.isfinite(out).all()


def test_mediapipe_labels_read_the_smile(short_clip):
    """The corpus's MediaPipe labels: the smile frames read AU6 and AU12 above the neutral."""
    from facedet3d.detail.frames import FrameFitter, read_video, resolve_labels

    lab = resolve_labels("mediapipe")
    fitter = FrameFitter(256)
    frames = read_video(short_clip)
    aus = {i: lab(fitter.fit(f)) for i, f in frames.items()}
    first, last = min(aus), max(aus)
    smile = max(aus, key=lambda i: aus[i][12])
    assert aus[smile][12] > aus[first][12] + 0.3 and aus[smile][6] > aus[first][6] + 0.1, aus
    assert sum(aus[first].values()) < sum(aus[smile].values()) and last >= smile


def test_sr_real_patches_and_held_out_figures(tmp_path):
    """Real SR patches are observed skin with the 4x4 area mean as input; the held-out figure
    compares the network with bicubic on the observed texels only."""
    from facedet3d.detail import sr_real
    from facedet3d.detail.infer import SR_FILE, WEIGHTS_DIR, _load
    from facedet3d.detail.sr import RCAN

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        d = (rng.normal(size=(1024, 1024)) * 0.3).astype(np.float16)  # 0.1 mm units
        m = np.zeros((1024, 1024), bool)
        m[200:800, 300:700] = True
        d[~m] = 0  # unobserved texels hold no relief
        np.savez_compressed(tmp_path / f"{name}.npz", detail=d, mask=m)
    src = sr_real.RealPatches(tmp_path, ["a", "b"], seed=1)
    lr, hr = src.batch(3)
    assert lr.shape == (3, 1, 32, 32) and hr.shape == (3, 1, 128, 128)
    np.testing.assert_allclose(lr[0, 0].numpy(), hr[0, 0].numpy().reshape(32, 4, 32, 4).mean((1, 3)), atol=1e-9)
    assert all(float(h.abs().mean()) > 1.5e-5 for h in hr)  # inside the observed block, not the zero fill
    sr, _ = _load(RCAN, WEIGHTS_DIR / SR_FILE)
    fig = sr_real.evaluate(sr.eval(), tmp_path, ["a"])
    assert fig["maps"] == 1 and 0 < fig["l1_sr"] and 0 < fig["l1_bicubic"] < 1.0


def test_resumed_build_keeps_its_settings(tmp_path):
    """A resumed corpus build refuses another D(I) coarse cut (or label source, or clips made
    before occluders were removed) than the stored clips were made with: the maps would mix."""
    import cv2

    from facedet3d.detail import real_corpus
    from facedet3d.errors import BadRequest
    from facedet3d.fit.detail_input import DetailParams

    out = tmp_path / "corpus"
    _fake_corpus(out, [{}, {12: 1.0}, {}])  # clip "c_x", already built
    (out / "occluders.txt").write_text(real_corpus.OCCLUDERS + "\n")  # ... by this build's occluder removal
    (tmp_path / "c").mkdir()
    cv2.imwrite(str(tmp_path / "c" / "x.png"), np.zeros((8, 8, 3), np.uint8))  # its input: skipped as done
    inputs = [str(tmp_path / "c" / "x.png")]
    real_corpus.build(inputs, out, progress=lambda m: None)
    assert (out / "coarse_sigma.txt").read_text().strip() == repr(DetailParams().coarse_sigma)
    with pytest.raises(BadRequest, match="coarse cut"):
        real_corpus.build(inputs, out, progress=lambda m: None, detail_params=DetailParams(coarse_sigma=0.03))
    with pytest.raises(BadRequest, match="AU labels"):
        real_corpus.build(inputs, out, progress=lambda m: None, labels_name="mediapipe")
    (out / "occluders.txt").write_text("removed\n")  # stop 22's removal, which missed light rims
    with pytest.raises(BadRequest, match="occluders 'removed'"):
        real_corpus.build(inputs, out, progress=lambda m: None)
    (out / "occluders.txt").unlink()  # clips from before frames had occluders removed
    with pytest.raises(BadRequest, match="before frames had occluders removed"):
        real_corpus.build(inputs, out, progress=lambda m: None)


def test_frame_fit_takes_glasses_out_as_the_photo_fit_does(backend):
    """``FrameFitter.fit`` removes occluders from each frame's unwrap (``fit.occluders``), as
    the photo fit does: dark spectacle rims painted around a real frame's eyes leave the
    observation mask, and D(I) there is no longer measured (a rim the cheek pushes up with a
    smile would otherwise be learnt as a fold)."""
    import cv2
    from facedet3d.detail.frames import FrameFitter, read_video

    rgb = read_video(CLIP, frames=[0])[0]
    ff = FrameFitter(512, backend=backend)
    clean = ff.fit(rgb)
    lm = clean.verts_img[backend.bfm.landmarks, :2]
    worn = rgb.copy()
    for a, b in ((36, 39), (42, 45)):  # eye corners -> a rim around and below each eye
        c = (lm[a] + lm[b]) / 2
        half = np.linalg.norm(lm[b] - lm[a])
        cv2.ellipse(worn, (int(c[0]), int(c[1] + 0.1 * half)), (int(0.85 * half), int(0.6 * half)), 0, 0, 360,
                    (30, 28, 28), max(2, int(0.08 * half)))
    cv2.line(worn, tuple(int(v) for v in lm[39]), tuple(int(v) for v in lm[42]), (30, 28, 28), max(2, int(0.05 * half)))
    glasses = ff.fit(worn, shape=clean.shape, box=clean.box)
    assert glasses.occluded_fraction > clean.occluded_fraction + 0.004, (clean.occluded_fraction, glasses.occluded_fraction)
    lost = (clean.mask > 127) & (glasses.mask <= 127)  # texels the rims took out of the observation
    assert lost.sum() > 0.5 * glasses.occluded_fraction * ff.layout.chart.sum()  # a share of the chart
    # D(I) fades out where the frame is no longer observed: the painted rims are not bumps
    assert np.abs(glasses.detail[lost]).mean() < 0.5 * np.abs(clean.detail[lost]).mean()


def test_frame_fit_takes_light_metal_rims_out(backend, monkeypatch):
    """LivePortrait d9 wears thin silver rims, neither dark nor coloured: only the light-line
    rims (``occluders.LIGHT_LINE_L``) find them. With them, a frame loses its rims under both
    eyes; without, the frame fit took little more than his hair at the temples."""
    from facedet3d.detail.frames import FrameFitter, read_video
    from facedet3d.fit import occluders

    rgb = read_video(CLIP.with_name("d9.mp4"), frames=[10])[10]
    ff = FrameFitter(512, backend=backend)
    with_light = ff.fit(rgb)
    monkeypatch.setattr(occluders, "LIGHT_LINE_L", float("inf"))
    dark_only = ff.fit(rgb, shape=with_light.shape, box=with_light.box)
    assert with_light.occluded_fraction > dark_only.occluded_fraction + 0.02, \
        (dark_only.occluded_fraction, with_light.occluded_fraction)
