"""Personal folds: a person's own expression detail, enrolled from their video (issue 11).

Measured on real clips (``docs/detail_real_change.md`` §5): the wrinkle-scale change of D(I)
under an expression repeats within one person (a clip's first half against its second) but
barely across people, so a population network cannot place a person's folds. This module
fits, from one person's registered frames, a per-texel linear model of the band-passed
detail on the 17 AUs:

    D_f(t) = c(t) + sum_k AU_f,k * B_k(t)      (metres; t a texel of the 256² UV chart)

by ridge-regularised weighted least squares (weights: the frame saw the texel). B_k is the
person's fold map of AU k: where that AU deepens (negative = into the skin) or raises the
skin. Only AUs that vary in the enrolment frames (std >= ``MIN_AU_STD``) get a map; the
others stay 0, since nothing in the video says what they do. ``change(a, b)`` is the
predicted detail change from AUs a to AUs b: it never reads a frame's D, so it cannot score
by echoing the estimator noise of its input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The folds see more than D(I)'s default band: its coarse cut at 3 % of the map side (~9 mm
# instead of ~3 mm) and a band-pass of 0.7-12 texels at 256² (~1-15 mm) keep the nasolabial
# fold's and the cheek's broad change, 2-3x the amplitude of the fine band alone; on 16 real
# clips r rose from +0.29 to +0.35 (docs/detail_real_change.md §7)
COARSE_SIGMA = 0.03
BAND = (0.7, 12.0)
RIDGE = 0.1  # ridge weight per enrolment frame, in AU² units (AUs 0..1); least-squares gain ~0.8 on real clips
MIN_AU_STD = 0.05  # an AU must vary this much over the enrolment frames to get a map
MIN_SEEN = 6  # frames that must see a texel for its maps to count
# Octaves of the fold band (DoG edges, texels at 256² ~ mm) and the depth per octave relative
# to D(I)'s (METRES_PER_LOG_UNIT). Shading contrast follows slope, so a fold as dark as a crease
# and N times as wide could be ~N times as deep; measured through Cycles renders
# (scripts/fold_contrast.py, docs/detail_real_change.md §7), the folds at gain 1 already change
# the rendered luminance by 0.80-1.01 of what the person's video showed (RMS, fold regions of
# 3 held-out people), so the gains stay 1: deeper would exaggerate.
OCTAVES = (0.7, 1.4, 2.8, 5.6, 12.0)
DEPTH_GAIN = (1.0, 1.0, 1.0, 1.0)


@dataclass
class PersonalFolds:
    au_ids: tuple[int, ...]  # the 17 AU numbers, in the rows of ``basis``
    basis: np.ndarray  # (17, S, S) float32 metres per unit AU; zero for inactive AUs
    seen: np.ndarray  # (S, S) bool: texels seen in >= MIN_SEEN enrolment frames
    active: tuple[int, ...]  # row indices of the AUs that got a map
    frames: int  # enrolment frames used

    def change(self, aus_from, aus_to) -> np.ndarray:
        """(S, S) float32 metres: predicted detail change from AUs ``aus_from`` to ``aus_to``
        (17-vectors, 0..1, in ``au_ids`` order); zero where the texel was not seen."""
        d = np.asarray(aus_to, np.float32) - np.asarray(aus_from, np.float32)
        return (np.tensordot(d, self.basis, axes=1) * self.seen).astype(np.float32)


def octaves(m: np.ndarray) -> list[np.ndarray]:
    """The components of an (S, S) map in the octaves between ``OCTAVES`` (a difference of
    Gaussians each; their sum is the map's part inside the fold band)."""
    import cv2

    m = np.asarray(m, np.float32)
    k = m.shape[0] / 256.0  # the edges are texels at 256²
    g = [cv2.GaussianBlur(m, (0, 0), s * k) for s in OCTAVES]
    return [g[i] - g[i + 1] for i in range(len(OCTAVES) - 1)]


def depth_gain() -> tuple[float, ...]:
    """DEPTH_GAIN, or FACEDET3D_FOLD_DEPTH_GAIN ("g1,g2,g3,g4") while calibrating it: the
    calibration renders run the add-on's batch in a subprocess (scripts/fold_contrast.py)."""
    import os

    env = os.environ.get("FACEDET3D_FOLD_DEPTH_GAIN")
    if not env:
        return DEPTH_GAIN
    try:
        gain = tuple(float(v) for v in env.split(","))
    except ValueError:
        gain = ()
    if len(gain) != len(OCTAVES) - 1 or not all(np.isfinite(gain)):
        raise ValueError(f"FACEDET3D_FOLD_DEPTH_GAIN={env!r}: give {len(OCTAVES) - 1} comma-separated numbers")
    return gain


def to_depth(change: np.ndarray, gain=None) -> np.ndarray:
    """(S, S) metres of relief for a fold change measured in D(I)'s units (``change``): each
    octave scaled by its ``DEPTH_GAIN``; what lies outside the band passes unchanged."""
    if gain is None:
        gain = depth_gain()
    if all(g == 1.0 for g in gain):  # the shipped gains: no blur on the live AU-change path
        return np.asarray(change, np.float32)
    parts = octaves(change)
    out = np.asarray(change, np.float32).copy()
    for g, part in zip(gain, parts):
        out += (np.float32(g) - 1.0) * part
    return out


def fit_folds(detail: np.ndarray, seen: np.ndarray, aus: np.ndarray, ridge: float = RIDGE) -> PersonalFolds:
    """Enrol: ``detail`` (F, S, S) band-passed D(I) of one person's registered frames
    (metres), ``seen`` (F, S, S) bool, ``aus`` (F, 17) 0..1. Raises ValueError when the frames
    cannot carry a model (fewer than MIN_SEEN, or no AU varies)."""
    from facedet3d.rig.facs import AU_IDS

    detail = np.asarray(detail, np.float64)
    F, S = detail.shape[0], detail.shape[1]
    aus = np.asarray(aus, np.float64)
    if F < MIN_SEEN or aus.shape != (F, len(AU_IDS)) or seen.shape != detail.shape:
        raise ValueError(f"enrolment needs >= {MIN_SEEN} frames with maps and 17 AUs each (got {F})")
    active = tuple(int(k) for k in np.where(aus.std(0) >= MIN_AU_STD)[0])
    if not active:
        raise ValueError("no AU varies in the enrolment frames: the video shows no expression change")
    x = aus[:, active] - aus[:, active].mean(0)  # centred: the intercept takes the static detail
    X = np.concatenate([np.ones((F, 1)), x], 1)  # (F, K+1)
    W = np.asarray(seen, np.float64).reshape(F, -1)  # (F, T)
    Y = detail.reshape(F, -1)
    A = np.einsum("ft,fi,fj->tij", W, X, X, optimize=True)  # (T, K+1, K+1)
    b = np.einsum("ft,fi,ft->ti", W, X, Y, optimize=True)
    reg = np.eye(X.shape[1]) * ridge * F
    reg[0, 0] = 1e-9  # the intercept is not shrunk
    beta = np.linalg.solve(A + reg, b[..., None])[..., 0]  # (T, K+1)
    basis = np.zeros((len(AU_IDS), S * S), np.float32)
    basis[list(active)] = beta[:, 1:].T
    ok = (W.sum(0) >= MIN_SEEN).reshape(S, S)
    return PersonalFolds(tuple(AU_IDS), basis.reshape(-1, S, S) * ok, ok, active, F)


# -- enrolment from a video, stored in the FaceAsset ------------------------------------------
FILE = "personal_folds.npz"  # in the FaceAsset folder
SELF_CHECK_MIN_R = 0.05  # below this the video's folds did not repeat: said, not hidden


def split_check(detail: np.ndarray, seen: np.ndarray, aus: np.ndarray, frames: np.ndarray,
                gap: int = 12, min_change: float = 0.6) -> dict:
    """How well folds enrolled on the first half of the frames (in time) predict the second
    half's changes: mean r over test pairs (AU L1 >= min_change) on the skin texels both
    frames saw, and the number of pairs. detail: band-passed (F, S, S) metres."""
    split = np.median(frames)
    a = np.where(frames < split - gap / 2)[0]
    b = np.where(frames > split + gap / 2)[0]
    if len(a) < MIN_SEEN or len(b) < 2:
        return {"r": None, "pairs": 0}
    try:
        folds = fit_folds(detail[a], seen[a], aus[a])
    except ValueError:
        return {"r": None, "pairs": 0}
    rs = []
    for i in b:
        for j in b:
            if i < j and np.abs(aus[i] - aus[j]).sum() >= min_change:
                sel = seen[i] & seen[j] & folds.seen
                p, o = folds.change(aus[i], aus[j])[sel], (detail[j] - detail[i])[sel]
                if p.size > 100 and p.std() > 0 and o.std() > 0:
                    rs.append(float(np.corrcoef(p, o)[0, 1]))
    return {"r": round(float(np.mean(rs)), 4) if rs else None, "pairs": len(rs)}


def to_arrays(folds: PersonalFolds, meta: dict) -> dict[str, np.ndarray]:
    """The FaceAsset's ``personal_folds.npz`` arrays (no pickles; meta as a JSON string)."""
    import json

    return {"au_ids": np.asarray(folds.au_ids, np.int64), "basis": folds.basis.astype(np.float32),
            "seen": folds.seen.astype(np.uint8), "active": np.asarray(folds.active, np.int64),
            "frames": np.asarray(folds.frames, np.int64), "meta": np.asarray(json.dumps(meta))}


def from_arrays(z: dict) -> PersonalFolds:
    from facedet3d.rig.facs import AU_IDS

    au_ids = tuple(int(a) for a in z["au_ids"])
    basis = np.asarray(z["basis"], np.float32)
    if au_ids != tuple(AU_IDS) or basis.ndim != 3 or basis.shape[0] != len(AU_IDS) or not np.isfinite(basis).all():
        raise ValueError(f"{FILE}: AU list or basis shape does not match this version's 17 AUs")
    return PersonalFolds(au_ids, basis, np.asarray(z["seen"]) > 0, tuple(int(k) for k in z["active"]), int(z["frames"]))


def enrol(video, asset_dir, size: int = 512, stride: int = 2, max_frames: int = 120, per_clip: int = 60,
          min_change: float = 0.25, progress=print, on_frame=None) -> dict:
    """Learn the person's folds from ``video`` and store them in the FaceAsset ``asset_dir``.

    Every kept frame is fitted (identity held for the clip), read by the expression reader
    (MediaPipe AUs; frames it cannot read are skipped), its D(I) estimated and registered to
    the photo's own unwrap by UV flow, so the maps land on the asset's texels. The folds are
    fitted on all frames; ``split_check`` reports how well the first half predicts the second
    (recorded in the file's meta and returned). Non-skin parts (``fit.skin_regions``) are
    zeroed: moving eyes, lips and brows leave registration edges there, not folds. The file
    is written atomically; on any error the asset is unchanged. ``on_frame(done, total)`` is
    called per scanned frame and once more (done = total) just before the write (progress;
    raise from it to cancel)."""
    import os
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace

    import cv2

    from facedet3d.detail import evaluate as ev
    from facedet3d.detail import real_corpus
    from facedet3d.detail.frames import FrameFitter, resolve_labels
    from facedet3d.errors import BadRequest
    from facedet3d.fit import faceasset, skin_regions
    from facedet3d.fit.detail_input import DetailParams

    asset_dir, video = Path(asset_dir), Path(video)
    if not (asset_dir / "meta.json").is_file():
        raise BadRequest(f"{asset_dir} is not a FaceAsset folder (run `facedet3d fit PHOTO -o {asset_dir}` first)")
    if video.suffix.lower() not in real_corpus.VIDEO_EXT or not video.is_file():
        raise BadRequest(f"{video}: not a video file ({', '.join(sorted(real_corpus.VIDEO_EXT))})")
    asset = faceasset.read(asset_dir)
    ref = SimpleNamespace(texture=cv2.resize(asset.texture, (size, size), interpolation=cv2.INTER_AREA),
                          mask=cv2.resize(asset.texture_mask, (size, size), interpolation=cv2.INTER_NEAREST))
    with tempfile.TemporaryDirectory(prefix="facedet3d-folds-") as tmp:
        fitter = FrameFitter(size, detail_params=DetailParams(coarse_sigma=COARSE_SIGMA))
        rec = real_corpus.build_clip(fitter, video, Path(tmp), labels=resolve_labels("mediapipe"),
                                     stride=stride, per_clip=per_clip, min_change=min_change, max_frames=max_frames,
                                     twins=False, align_ref=ref, on_frame=on_frame)
        with np.load(Path(tmp) / "clips" / f"{real_corpus.clip_id(video)}.npz", allow_pickle=False) as z:
            det = z["detail"].astype(np.float32) * real_corpus.UNIT_M
            seen = z["mask"] > 127
            aus, frames = z["aus"].astype(np.float32), z["frames"]
    S = det.shape[1]
    bp = np.stack([ev.bandpass(d, m.astype(np.float32), BAND) for d, m in zip(det, seen)])
    try:
        folds = fit_folds(bp, seen, aus)
    except ValueError as exc:
        raise BadRequest(f"{video.name}: {exc}") from None
    folds.basis *= skin_regions.skin_weight(S)[None]
    check = split_check(bp, seen, aus, frames)
    meta = {"source": video.name, "frames": int(len(frames)), "frames_scanned": rec["frames_scanned"],
            "active_aus": [int(folds.au_ids[k]) for k in folds.active], "split_check_r": check["r"],
            "split_check_pairs": check["pairs"], "flow_px_aligned": float(np.median([e["flow_px_aligned"] for e in rec["entries"]])),
            "unit": "metres per unit AU; D(I) with coarse_sigma COARSE_SIGMA, band-passed BAND texels at 256²",
            "coarse_sigma": COARSE_SIGMA, "band": list(BAND)}
    if on_frame is not None:  # the last chance to cancel: after the scan's fits, before the write
        on_frame(rec["frames_scanned"], rec["frames_scanned"])
    path = asset_dir / FILE
    tmp_path = path.with_name(f".{FILE}.{os.getpid()}.tmp")
    try:
        with open(tmp_path, "wb") as fh:
            np.savez_compressed(fh, **to_arrays(folds, meta))
        os.replace(tmp_path, path)
    except BaseException:  # a full disk or an interrupt: no half-written file left behind
        tmp_path.unlink(missing_ok=True)
        raise
    if check["r"] is None or check["r"] < SELF_CHECK_MIN_R:
        progress(f"warning: the video's folds did not repeat between its halves (r = {check['r']}); "
                 "they are stored but may be noise: film neutral -> smile -> brow raise, twice, in good light")
    meta["path"] = str(path)
    return meta
