"""The real detail corpus: D(I) maps of real frames and photos with AU labels, for DetP.

    facedet3d corpus VIDEO_OR_PHOTO... -o CORPUS [--stride 3] [--per-clip 24] [--min-change 0.6]

Per video: every ``stride``-th frame is fitted with the clip's identity held fixed (the
identity is that of the clip's first fittable frame; ``frames.FrameFitter``), its AUs are
read by the labels source (``frames.AULabels``; default: the 68-landmark rig fit), and a
frame is kept when its AU vector differs by at least ``min_change`` (L1 over the 17 AUs)
from every frame kept so far (the first is always kept), up to ``per_clip`` frames. Per
photo: one entry (a clip of one frame). Kept frames store their D(I) and observed mask.

Layout of CORPUS (every file written to a temporary name, then renamed: a build that stops
leaves complete clips only, and a rerun skips them — resumable):

    CORPUS/clips/<clip>.npz    detail (F, S, S) float16 in units of 0.1 mm (DETAIL_SCALE_M),
                               mask (F, S, S) uint8 (255 = observed), frames (F,) int32,
                               aus (F, 17) float32 (facs.AU_IDS order); S = --store-size (256)
    CORPUS/clips/<clip>.json   the clip's entries (below) and its cost
    CORPUS/index.json          all entries: {"clip", "subject", "source", "frame", "row", "aus"
                               {AU: v}, "age" (years or null), "quality", "observed_fraction",
                               "occluded_fraction" (of the UV chart, taken out as glasses or hair), "yaw_deg", "face_px", "flow_px", "flow_px_aligned"} + per clip {"frames_scanned", "seconds",
                               "seconds_per_frame"}

quality in [0, 1]: min(face width / 250 px, 1) x observed fraction of the UV chart / 0.6
(capped at 1) x cos(yaw) x exp(-landmark refit residual / 3 px). Age: not read from the
data (the sources carry none); entries get the --age given per build, else null, and
training reads null as unknown (`expressions.DEFAULT_AGE_YEARS`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from facedet3d.api.expressions import resolve_age
from facedet3d.errors import BadRequest, FaceDet3DError, NoFace

VIDEO_EXT = {".mp4", ".mov", ".avi", ".mkv", ".webm"}
PHOTO_EXT = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}
EV_SIZE = 256  # texel unit of the recorded flows
# what the frames' occluder removal takes (``fit.occluders``), pinned per corpus: "removed" (stop
# 22) missed light metal rims, so its clips do not mix with later ones
OCCLUDERS = "removed, light rims too"
UNIT_M = 1e-4  # stored detail unit (DETAIL_SCALE_M): float16 keeps ~3 digits at O(1)


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def clip_id(path: Path) -> str:
    """Stable clip name: parent folder + stem, filesystem-safe."""
    raw = f"{path.parent.name}_{path.stem}"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in raw)


def quality(fit) -> float:
    from facedet3d.fit.texture import uv_layout

    chart = uv_layout(fit.mask.shape[0]).chart
    obs = float(((fit.mask > 127) & chart).sum() / max(int(chart.sum()), 1))
    return float(min(fit.face_px / 250.0, 1.0) * min(obs / 0.6, 1.0) * np.cos(np.radians(fit.yaw_deg))
                 * np.exp(-fit.landmark_rms_px / 3.0))


def _select(scores: list[tuple[int, np.ndarray]], min_change: float, per_clip: int) -> list[int]:
    """Greedy: keep a frame when its AUs are >= min_change (L1) from every kept frame."""
    kept: list[tuple[int, np.ndarray]] = []
    for i, a in scores:
        if not kept or min(float(np.abs(a - b).sum()) for _, b in kept) >= min_change:
            kept.append((i, a))
        if len(kept) >= per_clip:
            break
    return [i for i, _ in kept]


def _twins(scores: list[tuple[int, np.ndarray]], chosen: list[int], min_gap: int, max_l1: float) -> dict:
    """For each chosen frame, the scanned frame >= min_gap frames away whose AUs are nearest
    (L1 < max_l1): a second look at the same expression with its own estimator noise (H.264,
    fit, shading), so training can use a cross-reference target D_e - D_twin that shares no
    noise with the input (see ``CorpusReader.triplet``). {twin frame: frame it twins}."""
    from facedet3d.rig.facs import AU_IDS

    keep = np.array([a != 45 for a in AU_IDS])  # a blink changes the lids only: still a twin
    out, taken, by_frame = {}, set(chosen), dict(scores)
    for i in chosen:
        ai = by_frame[i]
        best = min(((float(np.abs(a - ai)[keep].sum()), j) for j, a in scores
                    if abs(j - i) >= min_gap and j not in taken), default=None)
        if best is not None and best[0] < max_l1:
            out[best[1]] = i
            taken.add(best[1])
    return out


def build_clip(fitter, path: Path, out: Path, labels=None, stride: int = 3, per_clip: int = 24,
               min_change: float = 0.6, store_size: int = 256, age: float | None = None,
               max_frames: int | None = None, align: bool = True, twins: bool = True,
               twin_gap: int = 12, twin_max_l1: float = 0.5, align_ref=None, on_frame=None) -> dict:
    """Fit, select and store one video or photo; returns its record (also written as json).

    max_frames: scan at most this many frames, spread over the whole clip (the stride grows).
    twins: also keep, per selected frame, its nearest-AU frame >= twin_gap frames away (entry
    "twin_of"), for noise-independent cross-reference targets.
    align: resample every kept frame's maps onto the first kept frame's texels by the UV flow
    between their unwraps (``evaluate.align_to``): the BFM's 10 expression coefficients do
    not register the skin under expression (median misregistration 1-7 texels at 256²), so
    without it a wrinkle does not land on the same texels in every frame. Each entry records
    the median flow before and after (``flow_px``, ``flow_px_aligned``, texels at 256²).
    align_ref: an object with ``texture`` (the fitter's size, RGB) and ``mask`` to register every
    kept frame to instead (the person's photo unwrap, ``detail.personal.enrol``).
    on_frame(done, total): called after each scanned frame; an exception it raises (a
    cancel) ends the clip before anything is written."""
    import cv2

    from facedet3d.detail.frames import landmark_aus, read_video
    from facedet3d.fit import photo as photo_mod
    from facedet3d.rig.facs import normalise_aus

    labels = labels or landmark_aus
    t0 = time.perf_counter()
    cid = clip_id(path)
    is_video = path.suffix.lower() in VIDEO_EXT
    if is_video:
        from facedet3d.detail.frames import frame_count

        n = frame_count(path)
        if max_frames and n > 0:
            stride = max(stride, -(-n // max_frames))
        want = list(range(0, n, stride))[:max_frames] if n > 0 else None
        frames = read_video(path, frames=want, stride=stride)
    else:
        frames = {0: photo_mod.load_photo(path).rgb}
    shape, box, kept_fits, scored = None, None, {}, []
    for done, i in enumerate(sorted(frames)):
        if on_frame is not None:
            on_frame(done, len(frames))
        try:
            f = fitter.fit(frames[i], shape=shape, box=box)
            if shape is None:  # identity from the first fittable frame, then refit with it held
                shape = f.shape
                f = fitter.fit(frames[i], shape=shape, box=f.box)
            aus = normalise_aus(labels(f))  # a reader that finds no face skips the frame too
        except NoFace:
            continue
        box = f.box
        scored.append((i, aus))
        kept_fits[i] = (f, aus)
    sel = _select(scored, min_change, per_clip)
    twin_of = _twins(scored, sel, twin_gap, twin_max_l1) if twins else {}
    chosen = set(sel) | set(twin_of)
    rows = [i for i, _ in scored if i in chosen]
    if not rows:
        raise NoFace(f"{path.name}: no frame with a face")
    S = int(store_size)
    flows = {rows[0]: (0.0, 0.0)}
    if align and (len(rows) > 1 or align_ref is not None):
        from facedet3d.detail import evaluate as ev

        ref = kept_fits[rows[0]][0] if align_ref is None else align_ref
        for i in (rows[1:] if align_ref is None else rows):
            f, a = kept_fits[i]
            both = (ref.mask > 127) & (f.mask > 127)
            g, flow = ev.align_to(ref, f)
            k = EV_SIZE / ref.mask.shape[0]
            before = float(np.median(np.hypot(flow[..., 0], flow[..., 1])[both])) * k if both.any() else 0.0
            res = ev.flow_uv(ref, g)
            after = float(np.median(np.hypot(res[..., 0], res[..., 1])[both])) * k if both.any() else 0.0
            kept_fits[i] = (g, a)
            flows[i] = (before, after)

    def down(m):
        return cv2.resize(np.asarray(m, np.float32), (S, S), interpolation=cv2.INTER_AREA)

    det = np.stack([down(kept_fits[i][0].detail) / UNIT_M for i in rows]).astype(np.float16)
    msk = np.stack([(down(kept_fits[i][0].mask > 127) > 0.99).astype(np.uint8) * 255 for i in rows])
    aus = np.stack([kept_fits[i][1] for i in rows]).astype(np.float32)
    from facedet3d.rig.facs import AU_IDS

    entries = []
    for r, i in enumerate(rows):
        f = kept_fits[i][0]
        entries.append({"clip": cid, "subject": cid, "source": str(path), "frame": int(i), "row": r,
                        "aus": {str(a): round(float(v), 4) for a, v in zip(AU_IDS, aus[r]) if v >= 1e-4},
                        "age": age, "quality": round(quality(f), 4),
                        "observed_fraction": round(f.observed_fraction, 4),
                        "occluded_fraction": round(f.occluded_fraction, 4), "yaw_deg": round(f.yaw_deg, 2),
                        "face_px": round(f.face_px, 1), "landmark_targets": f.landmark_targets,
                        "twin_of": twin_of.get(i), "flow_px": round(flows.get(i, (0.0,))[0], 3),
                        "flow_px_aligned": round(flows.get(i, (0.0, 0.0))[1], 3)})
    secs = time.perf_counter() - t0
    rec = {"clip": cid, "source": str(path), "video": is_video, "frames_scanned": len(frames),
           "frames_fitted": len(scored), "frames_kept": len(rows), "seconds": round(secs, 2),
           "seconds_per_frame": round(secs / max(len(frames), 1), 3), "entries": entries}
    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    def save_npz(p: Path) -> None:
        with open(p, "wb") as fh:  # a file object: savez would append ".npz" to the temp name
            np.savez_compressed(fh, detail=det, mask=msk, frames=np.asarray(rows, np.int32), aus=aus)

    _write_atomic(clips / f"{cid}.npz", save_npz)
    _write_atomic(clips / f"{cid}.json", lambda p: p.write_text(json.dumps(rec, indent=1)))
    return rec


def write_index(out: Path) -> dict:
    """Rebuild CORPUS/index.json from the per-clip records."""
    clips = sorted((out / "clips").glob("*.json"))
    recs = [json.loads(p.read_text()) for p in clips if (p.with_suffix(".npz")).is_file()]
    src = out / "labels_source.txt"
    index = {"version": 1, "unit_m": UNIT_M, "labels_source": src.read_text().strip() if src.is_file() else None, "entries": [e for r in recs for e in r["entries"]],
             "clips": {r["clip"]: {k: r[k] for k in ("source", "video", "frames_scanned", "frames_kept",
                                                     "seconds", "seconds_per_frame")} for r in recs}}
    _write_atomic(out / "index.json", lambda p: p.write_text(json.dumps(index, indent=1)))
    return index


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders -> their videos and photos (sorted, not recursive)."""
    out = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_EXT | PHOTO_EXT)
        elif p.is_file():
            if p.suffix.lower() not in VIDEO_EXT | PHOTO_EXT:
                raise BadRequest(f"{p}: not a video or photo ({', '.join(sorted(VIDEO_EXT | PHOTO_EXT))})")
            out.append(p)
        else:
            raise BadRequest(f"{p}: no such file or folder")
    if not out:
        raise BadRequest("no videos or photos in the inputs")
    return out


def _pin(path: Path, value: str, what: str) -> None:
    """Record a build setting in ``path``; a resumed build with another value is refused."""
    if path.is_file() and path.read_text().strip() != value:
        raise BadRequest(f"{path.parent} was built with {what} {path.read_text().strip()!r}, not {value!r}: "
                         "build into a new folder")
    _write_atomic(path, lambda p: p.write_text(value + "\n"))


def build(inputs: list[str], out: str | Path, labels=None, size: int = 512, progress=print,
          labels_name: str = "landmarks", detail_params=None, **kw) -> dict:
    """Build (or resume) a corpus; returns the index. ``kw``: build_clip's options;
    ``detail_params``: the D(I) estimator's parameters (``FrameFitter``).
    ``labels``: the AU labels source (``frames.AULabels``), recorded as ``labels_name``; a
    resumed build must use the same source and D(I) coarse cut (else: error, build into a new
    folder)."""
    from facedet3d.detail.frames import FrameFitter

    from facedet3d.fit.detail_input import DetailParams

    out = Path(out)
    paths = expand_inputs(inputs)
    out.mkdir(parents=True, exist_ok=True)
    # a resumed build keeps the settings every stored clip was made with
    _pin(out / "labels_source.txt", labels_name, "AU labels from")
    _pin(out / "coarse_sigma.txt", repr((detail_params or DetailParams()).coarse_sigma), "D(I)'s coarse cut")
    # frames have had occluders (glasses, hair) taken out of their unwrap since stop 22; a
    # corpus from before holds clips without, which a resumed build must not mix with new ones
    if any((out / "clips").glob("*.npz")) and not (out / "occluders.txt").is_file():
        raise BadRequest(f"{out} was built before frames had occluders removed: build into a new folder")
    _pin(out / "occluders.txt", OCCLUDERS, "occluders")
    fitter = None
    for p in paths:
        cid = clip_id(p)
        if (out / "clips" / f"{cid}.npz").is_file() and (out / "clips" / f"{cid}.json").is_file():
            progress(f"{cid}: done already, skipped")
            continue
        fitter = fitter or FrameFitter(size, detail_params=detail_params)
        try:
            rec = build_clip(fitter, p, out, labels=labels, **kw)
        except (NoFace, FaceDet3DError) as exc:
            progress(f"{cid}: skipped ({exc})")
            continue
        occ = np.mean([e["occluded_fraction"] for e in rec["entries"]]) if rec["entries"] else 0.0
        progress(f"{cid}: {rec['frames_kept']} of {rec['frames_scanned']} frames kept, "
                 f"{rec['seconds_per_frame'] * 1000:.0f} ms per frame, occluders {100 * occ:.1f} % of the chart")
    return write_index(out)


class CorpusReader:
    """Training pairs from a built corpus: two frames of ONE clip (x -> y) whose AUs differ by
    at least ``min_change`` (L1) when the clip has such a pair, else any two frames.
    Same sample format as ``data.FolderPairs`` (identity code absent). ``clips``: restrict
    to these clip names (train/held-out splits keep whole clips together)."""

    def __init__(self, root: str | Path, seed: int = 0, clips=None, min_change: float = 0.6,
                 min_quality: float = 0.0):
        root = Path(root)
        idx_path = root / "index.json"
        if not idx_path.is_file():
            raise FaceDet3DError(f"{idx_path} missing: build the corpus with `facedet3d corpus`")
        index = json.loads(idx_path.read_text())
        self.seed, self.min_change, self.unit = seed, min_change, float(index.get("unit_m", UNIT_M))
        by_clip: dict[str, list[dict]] = {}
        for e in index["entries"]:
            if (clips is None or e["clip"] in clips) and e["quality"] >= min_quality:
                by_clip.setdefault(e["clip"], []).append(e)
        self.clips = {c: es for c, es in by_clip.items() if len(es) >= 2}
        if not self.clips:
            raise FaceDet3DError(f"{root}: no clip has two or more usable frames")
        self.names = sorted(self.clips)
        self.arrays = {}
        for c in self.names:
            with np.load(root / "clips" / f"{c}.npz") as z:
                self.arrays[c] = (z["detail"].astype(np.float32) * self.unit, z["aus"], z["mask"])
        self._index_triplets()

    def pair(self, rng: np.random.Generator, with_mask: bool = False):
        """(d_x, d_y, x, y, age[, seen]) for one random pair of one random clip (metres; seen:
        float32 1 where both frames observed the texel)."""
        c = self.names[int(rng.integers(len(self.names)))]
        det, aus, msk = self.arrays[c]
        n = len(det)
        cand = [(a, b) for a in range(n) for b in range(n) if a != b
                and np.abs(aus[a] - aus[b]).sum() >= self.min_change]
        a, b = cand[int(rng.integers(len(cand)))] if cand else rng.choice(n, 2, replace=False)
        age = resolve_age(self.clips[c][a].get("age") or 0.0)  # null = unknown = the default age
        out = det[a], det[b], aus[a], aus[b], float(age)
        return out + (((msk[a] > 127) & (msk[b] > 127)).astype(np.float32),) if with_mask else out

    def triplet(self, rng: np.random.Generator):
        """(d_a, target, x, y, age, seen) with a cross-reference target (issue 11).

        Frames a, b, c of one clip: b's AUs differ from a's by >= min_change, c is another
        look at a's expression (AU L1 < 0.5 without AU45, c != a). target = D_a + (D_b - D_c): the
        expression change is observed between b and c, whose estimator noise is independent
        of the input D_a, so a regression on it cannot score by shrinking or amplifying the
        input (the shared-term artefact of ``docs/detail_real_change.md`` 2a); in
        expectation target - D_a is the change itself. seen: texels observed in all three."""
        c_name = self._triplet_clips[int(rng.integers(len(self._triplet_clips)))]
        det, aus, msk = self.arrays[c_name]
        a, cc = self._twins[c_name][int(rng.integers(len(self._twins[c_name])))]
        bs = [b for b in range(len(det)) if np.abs(aus[a] - aus[b]).sum() >= self.min_change and b != cc]
        b = bs[int(rng.integers(len(bs)))]
        age = resolve_age(self.clips[c_name][a].get("age") or 0.0)
        seen = ((msk[a] > 127) & (msk[b] > 127) & (msk[cc] > 127)).astype(np.float32)
        return det[a], det[a] + (det[b] - det[cc]), aus[a], aus[b], float(age), seen

    def _index_triplets(self, max_twin_l1: float = 0.5) -> None:
        from facedet3d.rig.facs import AU_IDS

        keep = np.array([a != 45 for a in AU_IDS])  # as ``_twins``: blinks do not break a twin
        self._twins = {}
        for c in self.names:
            aus = self.arrays[c][1]
            n = len(aus)
            tw = [(a, k) for a in range(n) for k in range(n) if a != k
                  and np.abs(aus[a] - aus[k])[keep].sum() < max_twin_l1
                  and any(np.abs(aus[a] - aus[b]).sum() >= self.min_change and b != k for b in range(n))]
            if tw:
                self._twins[c] = tw
        self._triplet_clips = sorted(self._twins)

    def batch(self, k: int, n: int):
        import cv2

        from facedet3d.detail.data import _sample, collate
        from facedet3d.detail.nets import DETAIL_SIZE, ID_DIM

        rng = np.random.default_rng([self.seed, k])
        out = []
        for _ in range(n):
            d_x, d_y, x, y, age = self.pair(rng)
            if d_x.shape[0] != DETAIL_SIZE:
                d_x, d_y = (cv2.resize(m, (DETAIL_SIZE,) * 2, interpolation=cv2.INTER_AREA) for m in (d_x, d_y))
            out.append(_sample(d_x, d_y, x, y, age, np.zeros(ID_DIM, np.float32), False, False))
        return collate(out)
