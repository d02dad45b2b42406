"""Track a face through a video: per frame the 51 blendshapes, the 17 AUs and the head pose.

Frames are decoded one at a time (OpenCV) and read by MediaPipe's VIDEO mode; the result is
streamed to the output (JSON or Live Link Face CSV) through a temporary file renamed at the
end, so memory stays bounded for any length and a failure leaves nothing behind.

Per found frame, in order: the raw reading -> short gaps filled -> One-Euro smoothing
(``smooth``) -> optional neutral calibration -> AUs (``au.aus_from_blendshapes``).
- Gaps: up to ``max_gap_s`` (default 0.25 s) of frames without a face between two found
  frames are filled by linear interpolation and marked ``"interpolated": true`` (their
  ``found`` stays false); longer gaps stay unfound (``{"time", "found": false}``) and the
  smoother starts afresh after them.
- Calibration (``neutral=(start_s, end_s)``): the median raw blendshapes over that stretch
  are the person's resting level; the JSON's blendshapes are then re-expressed above it and
  the AUs use it instead of ``au.POPULATION_NEUTRAL``.
- Which face: the largest, most central one on the first frame, then the one nearest the
  previous face; with ``box`` ([x1, y1, x2, y2] pixels) only a region around it is read.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from facedet3d.errors import BadRequest, NoFace
from facedet3d.expression import au as au_mod
from facedet3d.expression import llf, smooth
from facedet3d.expression.reader import BadVideo, FaceReader, crop_square, pick, uncrop

HEAD_KEYS = ("yaw", "pitch", "roll")
MAX_GAP_S = 0.25
_NB = len(au_mod.MP_NAMES)
_GLABELLA = _NB + 6  # index of the glabella ratio in a frame's channel vector
_LIP = _NB + 7  # index of the lip ratio (``au.lip_ratio``, the AU10 cap)


@dataclass(frozen=True)
class TrackOptions:
    box: tuple[float, float, float, float] | None = None  # [x1, y1, x2, y2] pixels
    smoothing: str = "one-euro"  # or "none"
    neutral: tuple[float, float] | None = None  # seconds: the resting stretch
    max_gap_s: float = MAX_GAP_S
    max_frames: int | None = None  # stop after this many frames (previews, the benchmark)


def open_video(path: str | os.PathLike):
    """(cv2.VideoCapture, fps, frame count, (w, h)); BadVideo for what cannot be a video."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own messages: quiet
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    import cv2

    p = Path(path)
    if not p.is_file():
        raise BadVideo(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise BadVideo(f"{p.name}: empty file")
    level = cv2.getLogLevel()
    cv2.setLogLevel(0)  # silent: a failed open is reported below, in one line
    try:
        cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    finally:
        cv2.setLogLevel(level)
    if not cap.isOpened():
        raise BadVideo(f"{p.name}: not a video, a truncated one, or a codec this build cannot decode")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    if not (0.5 < fps < 1000.0) or count == 1:
        cap.release()
        raise BadVideo(f"{p.name}: not a video (no frame rate or a single frame; a still image?)")
    return cap, fps, count, size


def frames(path, max_frames: int | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(time s, RGB frame) one at a time; raises BadVideo for nothing decodable or a file
    that ends well before its stated length (truncated)."""
    import cv2

    cap, fps, count, _ = open_video(path)
    n = 0
    try:
        while max_frames is None or n < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            yield n / fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            n += 1
    finally:
        cap.release()
    name = Path(path).name
    if n == 0:
        raise BadVideo(f"{name}: no frame could be decoded (truncated file or unsupported codec)")
    if n == 1 and max_frames != 1:
        raise BadVideo(f"{name}: not a video (a single frame; a still image?)")
    if max_frames is None and count > 0 and n < 0.95 * count - 2:
        raise BadVideo(f"{name}: truncated: decoded {n} of its {count} frames")


def _read_frames(path, opts: TrackOptions, reader: FaceReader) -> Iterator[tuple[float, np.ndarray | None]]:
    """(time, raw channel vector or None): 51 blendshapes, yaw/pitch/roll deg, x/y/z cm, the
    glabella ratio (``au.glabella_ratio``, the AU9 cue) and the lip ratio (``au.lip_ratio``,
    the AU10 cap)."""
    prev_box = None
    for t, rgb in frames(path, opts.max_frames):
        h, w = rgb.shape[:2]
        if opts.box is not None:
            crop, tf = crop_square(rgb, opts.box)
            got = [uncrop(r, tf) for r in reader.read(crop, t)]
        else:
            got = reader.read(rgb, t)
        r = pick(got, (w, h), box=opts.box, previous=prev_box)
        if r is None:
            yield t, None
            continue
        prev_box = r.box
        vec = [r.blendshapes.get(n, 0.0) for n in au_mod.MP_NAMES] + [r.head[k] for k in HEAD_KEYS]
        cues = [au_mod.glabella_ratio(r.landmarks), au_mod.lip_ratio(r.landmarks)]
        yield t, np.array(vec + list(r.translation) + cues, np.float64)


def _fill_gaps(stream, fps: float, max_gap_s: float):
    """(time, vector, state) with state "found" | "interpolated" | "unfound"; holds at most
    one short gap's frames."""
    max_gap = int(round(max_gap_s * fps))
    pending: list[float] = []
    last = None
    for t, v in stream:
        if v is None:
            pending.append(t)
            if last is None or len(pending) > max_gap:
                for tp in pending:
                    yield tp, None, "unfound"
                pending, last = [], None
            continue
        if pending:  # a short gap between two found frames
            t0, v0 = last
            for tp in pending:
                f = (tp - t0) / (t - t0)
                yield tp, v0 + f * (v - v0), "interpolated"
            pending = []
        last = (t, v)
        yield t, v, "found"
    for tp in pending:
        yield tp, None, "unfound"


def neutral_level(path, span: tuple[float, float], box=None) -> dict[str, float]:
    """Median raw blendshapes over ``span`` seconds of the video (the resting face), and the
    median glabella and lip ratios under ``"_glabella"`` and ``"_lip"`` (the AU9 cue's and the
    AU10 cap's personal rests)."""
    start, end = span
    if not (0 <= start < end):
        raise BadRequest("--neutral takes START:END seconds with START < END")
    rows = []
    with FaceReader("video") as reader:
        for t, v in _read_frames(path, TrackOptions(box=box), reader):
            if t > end:
                break
            if t >= start and v is not None:
                rows.append(np.concatenate([v[:_NB], v[_GLABELLA:]]))
    if not rows:
        raise NoFace(f"{Path(path).name}: no face in the neutral stretch {start:g}-{end:g} s")
    med = np.median(np.stack(rows), 0)
    return {**{n: float(x) for n, x in zip(au_mod.MP_NAMES, med)}, "_glabella": float(med[_NB]),
            "_lip": float(med[_NB + 1])}


def track_frames(path, opts: TrackOptions = TrackOptions(), neutral: dict | None = None,
                 fps: float | None = None) -> Iterator[dict]:
    """Frames as the track JSON has them, streamed."""
    params = [smooth.SCORE_PARAMS] * _NB + [smooth.HEAD_PARAMS] * 6 + [smooth.SCORE_PARAMS] * 2
    filt = smooth.OneEuro(params) if opts.smoothing == "one-euro" else None
    rest = np.array([neutral.get(n, 0.0) for n in au_mod.MP_NAMES]) if neutral else None
    with FaceReader("video") as reader:
        for t, v, state in _fill_gaps(_read_frames(path, opts, reader), fps, opts.max_gap_s):
            if v is None:
                if filt is not None:
                    filt.reset()
                yield {"time": round(t, 4), "found": False}
                continue
            if filt is not None:
                v = filt.filter(t, v)
            b = np.clip(v[:_NB], 0.0, 1.0)
            if rest is not None:
                b = np.clip((b - rest) / (1.0 - np.minimum(rest, 0.95)), 0.0, 1.0)
            shapes = dict(zip(au_mod.MP_NAMES, b.tolist()))
            wrinkle = au_mod.nose_wrinkle(v[_GLABELLA], neutral.get("_glabella") if neutral else None)
            lip = au_mod.lip_rise(v[_LIP], neutral.get("_lip") if neutral else None)
            aus = au_mod.aus_from_blendshapes(shapes, calibrated=rest is not None, wrinkle=wrinkle, lip=lip)
            fr = {"time": round(t, 4), "found": state == "found"}
            if state == "interpolated":
                fr["interpolated"] = True
            fr["aus"] = {str(k): round(x, 4) for k, x in aus.items()}
            fr["blendshapes"] = {n: round(x, 4) for n, x in shapes.items()}
            fr["head"] = {k: round(float(x), 3) for k, x in zip(HEAD_KEYS, v[_NB:_NB + 3])}
            fr["translation"] = [round(float(x), 3) for x in v[_NB + 3:_GLABELLA]]
            yield fr


def _check_out(out) -> Path:
    out = Path(out)
    if out.suffix.lower() not in (".json", ".csv"):
        raise BadRequest(f"{out.name}: the output must end in .json or .csv")
    return out


def write_track(frames_iter, out: str | os.PathLike, header: dict,
                progress: Callable[[int], None] | None = None) -> dict:
    """Stream frames to ``out`` (.json or .csv) through a temporary file; returns counts.
    Raises NoFace (and writes nothing) when no frame has a face."""
    out = _check_out(out)
    kind = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    counts = {"frames": 0, "found": 0, "interpolated": 0}
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            if kind == ".json":
                head = json.dumps(header)[:-1]
                f.write(head + (", " if header else "") + '"frames": [\n')
            else:
                import csv

                writer = csv.writer(f)
                writer.writerow(llf.HEADER)
            for fr in frames_iter:
                if kind == ".json":
                    f.write(("" if counts["frames"] == 0 else ",\n") + json.dumps(fr))
                else:
                    for row in llf.csv_rows([fr], header["fps"]):
                        writer.writerow(row)
                counts["frames"] += 1
                counts["found"] += bool(fr.get("found"))
                counts["interpolated"] += bool(fr.get("interpolated"))
                if progress is not None:
                    progress(counts["frames"])
            if kind == ".json":
                f.write("\n]}\n")
        if counts["found"] == 0:
            raise NoFace(f"{header.get('source', 'the video')}: no face in any frame")
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return counts


def track_video(path, out, opts: TrackOptions = TrackOptions(),
                progress: Callable[[int], None] | None = None) -> dict:
    """Track ``path`` into ``out`` (.json / .csv). Returns the counts and fps."""
    if opts.smoothing not in ("one-euro", "none"):
        raise BadRequest(f"unknown smoothing {opts.smoothing!r}: one-euro or none")
    _check_out(out)
    cap, fps, count, size = open_video(path)
    cap.release()
    neutral = neutral_level(path, opts.neutral, opts.box) if opts.neutral else None
    header = {"fps": fps, "source": Path(path).name, "width": size[0], "height": size[1],
              "smoothing": opts.smoothing if opts.smoothing == "none" else {
                  "method": "one-euro", "scores": vars(smooth.SCORE_PARAMS), "head": vars(smooth.HEAD_PARAMS)},
              "max_gap_s": opts.max_gap_s,
              "calibration": {"neutral_s": list(opts.neutral), "rest": neutral} if neutral else "population"}
    counts = write_track(track_frames(path, opts, neutral, fps), out, header, progress)
    return {**counts, "fps": fps}


def convert_csv(csv_path, out, fps: float | None = None) -> dict:
    """A Live Link Face capture -> the track JSON (or a normalised CSV)."""
    _check_out(out)
    rate, frs = llf.read_csv(csv_path, fps)
    header = {"fps": rate, "source": Path(csv_path).name, "smoothing": "none", "calibration": "population"}
    return {**write_track(iter(frs), out, header), "fps": rate}


def load_track(path) -> dict:
    """A track JSON (as written here) or a Live Link Face CSV -> {"fps", "frames", ...}."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        rate, frs = llf.read_csv(p)
        return {"fps": rate, "source": p.name, "frames": frs}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"{p.name}: not a track JSON ({exc})") from None
    if not isinstance(data, dict) or "frames" not in data or "fps" not in data:
        raise BadRequest(f"{p.name}: not a track JSON (no fps/frames)")
    return data


def bench_track(video: str | None = None, photo: str | None = None, frames_n: int = 150) -> dict:
    """``track_fps``: frames per second of the whole track pipeline (decode, read, smooth,
    AUs, JSON write) after a warm-up, on a 512² clip: ``video``, else
    ``$FACEDET3D_BENCH_VIDEO``, else LivePortrait's d0.mp4 in ../shared, else a clip made by
    panning over ``photo``."""
    import time

    import cv2

    shared = Path(__file__).resolve().parents[3].parent / "shared"
    default = shared / "data/faces/LivePortrait/assets/examples/driving/d0.mp4"
    video = video or os.environ.get("FACEDET3D_BENCH_VIDEO") or (str(default) if default.is_file() else None)
    with tempfile.TemporaryDirectory() as td:
        if video is None:
            if photo is None:
                raise BadRequest("bench_track needs a video or a photo")
            from facedet3d.fit.photo import load_photo

            rgb = load_photo(photo).rgb
            s = 512 / min(rgb.shape[:2])
            big = cv2.resize(rgb, (max(512, round(rgb.shape[1] * s)), max(512, round(rgb.shape[0] * s))))
            video = os.path.join(td, "pan.mp4")
            w = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (512, 512))
            for i in range(frames_n):
                x = int((big.shape[1] - 512) * i / max(frames_n - 1, 1))
                w.write(np.ascontiguousarray(big[:512, x:x + 512, ::-1]))
            w.release()
        track_video(video, os.path.join(td, "warm.json"), TrackOptions(max_frames=5))  # imports, model
        t0 = time.perf_counter()
        res = track_video(video, os.path.join(td, "t.json"), TrackOptions(max_frames=frames_n))
        dt = time.perf_counter() - t0
        _, _, _, size = open_video(video)[:4]
    return {"track_fps": round(res["frames"] / dt, 1), "track_target_fps": 30,
            "track_video": f"{Path(video).name} {size[0]}x{size[1]}, {res['frames']} frames"}
