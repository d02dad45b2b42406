"""One photo -> one ``Result`` (manifest rows + the sample's encoded files), in a worker.

``Worker`` holds the models (the fit ``Backend``; DetP only when synthesizing), loaded once
per worker process (the process pool's initializer, or a Ray actor). ``Worker.process`` never
raises for a bad photo: the failure becomes a row with status ``failed`` and its one-line
reason. Files of a sample (WebDataset style, key = the photo's key):
``KEY.jpg`` (the photo in the output frame), ``KEY.npz`` (``depth`` float32 m,
``normals`` float16, ``mask`` uint8), ``KEY.json`` (68 and 478 landmarks, blendshapes,
AUs, pose, camera, quality, labels); synthesized targets the same under ``KEY-EXPR-yawDEG``.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from facedet3d.dataset.inputs import Task
from facedet3d.errors import FaceDet3DError

UNITS = {"depth": "metres from the assumed pinhole camera (0 = background)",
         "normals": "unit, camera frame x right / y up / z toward the camera (float16)",
         "landmarks": "output pixels, 0-based pixel centres",
         "landmarks478": "x, y output pixels (0-based pixel centres); z output pixels, MediaPipe's relative depth "
                         "(smaller = nearer the camera; not metric)",
         "blendshapes": "ARKit blendshape scores 0..1 from MediaPipe's Face Landmarker"}


@dataclass(frozen=True)
class JobOptions:
    """Everything that changes a job's outputs (saved in OUT/job.json; a rerun must match)."""

    size: int | None = None
    crop: str = "none"
    min_quality: float | None = None
    with_detail: bool = False
    expressions: tuple = ()
    views: tuple = (0.0,)
    focal_mm: float = 50.0
    detail_size: int = 256
    texture_size: int = 256
    jpeg_quality: int = 95
    renderer: str = "cycles"  # synthesized RGB: "cycles" or "eevee" (Blender), or "raster" (software)
    render_samples: int = 16  # Blender's samples per pixel (Cycles: adaptive, denoised)

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def synth_targets(self) -> list[tuple[str, float]]:
        return [(e, float(v)) for e in self.expressions for v in self.views]


@dataclass
class Result:
    index: int
    key: str
    rows: list = field(default_factory=list)  # manifest rows (dicts), the photo's first
    members: list = field(default_factory=list)  # (tar member name, bytes), in order
    pending: object = None  # dataset.blender.Pending: targets still to render in Blender


def finish_result(res: Result, rendered: list) -> Result:
    """Add a Blender task's (row, members) per target to its photo's result."""
    for row, members in rendered:
        res.rows.append(row)
        res.members.extend(members)
    res.pending = None
    return res


def target_key(key: str, expr: str, yaw: float) -> str:
    return f"{key}-{expr}-yaw{int(round(yaw)):+d}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, FaceDet3DError):
        return text or type(exc).__name__
    return f"unexpected {type(exc).__name__}: {text}"[:300]


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _jpg(rgb: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return enc.tobytes()


def _r(v, nd=6):
    return None if v is None else round(float(v), nd)


class _KeepDetections:
    """Wraps the Backend's detector to keep the last call's detections: the fit uses one of
    them, and its MTCNN five points are the independent check of the landmark residual."""

    def __init__(self, inner):
        self.inner = inner
        self.last = []

    def __call__(self, rgb):
        self.last = self.inner(rgb)
        return self.last


class Worker:
    """Models loaded once; ``process(task)`` many times."""

    def __init__(self, opts: JobOptions, threads: int | None = None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        from facedet3d.fit.pipeline import Backend

        self.opts = opts
        self.backend = Backend()
        self.backend.detector = _KeepDetections(self.backend.detector)
        self.predictor = None
        if opts.expressions:
            from facedet3d.detail.infer import DetailPredictor

            self.predictor = DetailPredictor(backend="onnx", threads=threads)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"

    def _mtcnn5(self, box) -> np.ndarray | None:
        """The five points of the detection the fit used (the one whose box it recorded)."""
        for d in self.backend.detector.last:
            if d.landmarks5 is not None and np.allclose(np.asarray(d.box, np.float64), box, atol=1e-3):
                return np.asarray(d.landmarks5, np.float64)
        return None

    def process(self, task: Task) -> Result:
        t0, c0 = time.perf_counter(), time.process_time()
        res = Result(task.index, task.key)
        base = {"key": task.key, "index": task.index, "kind": "photo", "source_key": None, "path": task.path,
                "relpath": task.relpath, "labels": task.labels, "worker": self.worker_id}
        try:
            row, members, ctx = self._photo(task, base)
        except Exception as exc:  # noqa: BLE001 - a bad photo is a row, never a stopped run
            res.rows.append({**base, "status": "failed", "reason": _one_line(exc),
                             "total_ms": round((time.perf_counter() - t0) * 1000.0, 1)})
            return res
        row["total_ms"] = round((time.perf_counter() - t0) * 1000.0, 1)
        # CPU time of this process (all its threads): the cost in core-milliseconds,
        # unlike wall time unaffected by other load on a shared machine.
        row["cpu_ms"] = round((time.process_time() - c0) * 1000.0, 1)
        res.rows.append(row)
        res.members.extend(members)
        if row["status"] == "ok":
            jobs = []
            for expr, yaw in self.opts.synth_targets:
                srow, smembers, job = self._target(task, base, ctx, expr, yaw)
                if job is None:
                    res.rows.append(srow)
                    res.members.extend(smembers)
                else:
                    jobs.append(job)
            if jobs:  # rendered by Blender in a task of its own (dataset.blender.render_pending)
                from facedet3d.dataset.blender import Pending

                bfm, asset, fr, cam = self.backend.bfm, ctx["asset"], ctx["frame"], ctx["cam"]
                res.pending = Pending({"faces": bfm.faces, "uv": bfm.uv, "texture": asset.texture,
                                       "size": (fr.width, fr.height), "s_px_per_m": cam.s_px_per_m,
                                       "distance_m": cam.distance_m}, jobs)
        return res

    # -- the photo ---------------------------------------------------------------------------
    def _photo(self, task: Task, base: dict):
        from facedet3d.dataset import camera, maps, quality, reading
        from facedet3d.fit.photo import load_photo
        from facedet3d.fit.pipeline import FitRequest

        o = self.opts
        tm = {}
        t = time.perf_counter()
        need_tex = o.with_detail or bool(o.expressions)
        asset = self.backend.fit(FitRequest(photo=task.path, texture_size=o.texture_size if need_tex else 256))
        tm["fit_ms"] = (time.perf_counter() - t) * 1000.0
        t = time.perf_counter()
        meta = asset.meta
        found = self.backend.last_reading  # the reader's face (478 landmarks, blendshapes) or None
        mt5 = self._mtcnn5(np.asarray(meta.box, np.float64))
        rgb = load_photo(task.path).rgb
        W, H = meta.image_size
        frame = camera.make_frame(W, H, o.size, o.crop, meta.box)
        cam = camera.make_camera(W, H, meta.pose.scale_px_per_m, frame, o.focal_mm)
        bfm = self.backend.bfm
        P, R = np.asarray(meta.pose.projection), np.asarray(meta.pose.rotation)
        X = bfm.vertices(np.asarray(meta.shape_coeffs, np.float32), np.asarray(meta.exp_coeffs, np.float32))
        vi = maps.image_vertices(X, P, R, frame)
        m = maps.render_maps(vi, bfm.faces, frame, cam, uv=bfm.uv if o.with_detail else None)
        out_rgb = camera.frame_rgb(rgb, frame)
        lm68 = np.asarray(meta.landmarks_2d, np.float64)
        lm_res = quality.landmark_residual(lm68, mt5)
        ph_res, sh_c = quality.photometric_fit(out_rgb, m.normals, m.mask)
        q = quality.score(lm_res, ph_res)
        detail_max = None
        if o.with_detail:
            detail_max = float(np.abs(maps.add_detail(m, asset.detail_input, cam)).max())
        tm["maps_ms"] = (time.perf_counter() - t) * 1000.0
        lm_out = frame.to_out(lm68)
        rd_info, rd_row = reading.sample_fields(found, lm68, frame)
        cx, cy = frame.to_out(np.array([(W - 1) / 2.0, (H - 1) / 2.0]))
        row = {**base, "status": "ok", "reason": None, "width": frame.width, "height": frame.height,
               "photo_width": int(W), "photo_height": int(H), "quality": _r(q), "lm_residual": _r(lm_res),
               "photo_residual": _r(ph_res), "yaw_deg": _r(meta.pose.yaw_deg, 3), "pitch_deg": _r(meta.pose.pitch_deg, 3),
               "roll_deg": _r(meta.pose.roll_deg, 3), "scale_px_per_m": _r(cam.s_px_per_m, 3), "focal_px": _r(cam.f_px, 3),
               "camera_distance_m": _r(cam.distance_m), "mask_fraction": _r(m.mask.mean()),
               "aus": {int(k): float(v) for k, v in meta.aus.items()}, "aus_source": meta.aus_source, **rd_row,
               "has_detail": bool(o.with_detail),
               "detail_max_m": _r(detail_max, 9), "fit_ms": round(tm["fit_ms"], 1), "maps_ms": round(tm["maps_ms"], 1)}
        if o.min_quality is not None and (q is None or q < o.min_quality):
            row["status"] = "filtered"
            row["reason"] = (f"quality {q:.3f} < --min-quality {o.min_quality:g}" if q is not None
                             else "quality unknown (no detector landmarks and too small a mask)")
            return row, [], None
        info = {"key": task.key, "kind": "photo", "relpath": task.relpath, "labels": task.labels,
                "width": frame.width, "height": frame.height, "landmarks68": np.round(lm_out, 3).tolist(),
                **rd_info, "aus": row["aus"], "aus_source": meta.aus_source, "box_photo_px": [float(v) for v in meta.box],
                "mtcnn5_photo_px": None if mt5 is None else np.round(mt5, 3).tolist(),
                "pose": {"yaw_deg": meta.pose.yaw_deg, "pitch_deg": meta.pose.pitch_deg, "roll_deg": meta.pose.roll_deg,
                         "rotation": meta.pose.rotation},
                "camera": {"model": "pinhole depth over the fit's scaled-orthographic x/y", "f_px": cam.f_px,
                           "cx": float(cx), "cy": float(cy), "s_px_per_m": cam.s_px_per_m,
                           "distance_m": cam.distance_m, "focal_mm_35mm_equiv": cam.focal_mm},
                "quality": {"score": q, "lm_residual": lm_res, "photo_residual": ph_res},
                "has_detail": bool(o.with_detail), "units": UNITS}
        members = [(f"{task.key}.jpg", _jpg(out_rgb, o.jpeg_quality)),
                   (f"{task.key}.npz", _npz(depth=m.depth, normals=m.normals.astype(np.float16), mask=m.mask.astype(np.uint8))),
                   (f"{task.key}.json", json.dumps(info).encode("utf-8"))]
        ctx = {"asset": asset, "frame": frame, "cam": cam, "P": P, "R": R, "sh": sh_c, "row": row}
        return row, members, ctx

    # -- a synthesized target ------------------------------------------------------------------
    def _target(self, task: Task, base: dict, ctx: dict, expr: str, yaw: float):
        """(row, members) through the raster; with a Blender renderer (row, None, the
        target's render job for ``dataset.blender``) — members come from that task."""
        from facedet3d.dataset import synth

        t, c = time.perf_counter(), time.process_time()
        key = target_key(task.key, expr, yaw)
        row = {**base, "key": key, "kind": "synth", "source_key": task.key, "expression": expr, "view_yaw_deg": yaw,
               "renderer": self.opts.renderer}
        args = (ctx["asset"], self.backend.bfm, ctx["P"], ctx["R"], ctx["frame"], ctx["cam"], expr, yaw, self.predictor,
                self.opts.detail_size)
        try:
            out = synth.render_target(*args, ctx["sh"]) if self.opts.renderer == "raster" else synth.target_geometry(*args)
        except Exception as exc:  # noqa: BLE001 - recorded, the photo's other targets go on
            row.update(status="failed", reason=_one_line(exc), synth_ms=round((time.perf_counter() - t) * 1000.0, 1))
            return row, [], None
        from facedet3d.rig.facs import AU_IDS

        aus = {int(a): float(v) for a, v in zip(AU_IDS, out["aus"])}
        src = ctx["row"]
        fr, cam, m = ctx["frame"], ctx["cam"], out["maps"]
        row.update(status="ok", reason=None, width=fr.width, height=fr.height, photo_width=src["photo_width"],
                   photo_height=src["photo_height"], quality=src["quality"], lm_residual=src["lm_residual"],
                   photo_residual=src["photo_residual"], scale_px_per_m=src["scale_px_per_m"], focal_px=src["focal_px"],
                   camera_distance_m=src["camera_distance_m"], mask_fraction=_r(m.mask.mean()), target_aus=aus,
                   has_detail=True, detail_max_m=_r(out["detail_max_m"], 9),
                   synth_ms=round((time.perf_counter() - t) * 1000.0, 1), cpu_ms=round((time.process_time() - c) * 1000.0, 1))
        info = {"key": key, "kind": "synth", "source_key": task.key, "relpath": task.relpath, "labels": task.labels,
                "expression": expr, "view_yaw_deg": yaw, "target_aus": aus, "width": fr.width, "height": fr.height,
                "landmarks68": np.round(out["landmarks68"], 3).tolist(), "renderer": self.opts.renderer,
                "camera": {"f_px": cam.f_px, "s_px_per_m": cam.s_px_per_m, "distance_m": cam.distance_m},
                "rgb": "software raster: unwrapped texture x detail shading ratio", "units": UNITS}
        if self.opts.renderer == "raster":
            return row, encode_target(key, out, info, self.opts.jpeg_quality), None
        job = {"key": key, "row": row, "info": info, "verts": out["verts_cam"].astype(np.float32),
               "detail": np.asarray(out["detail_uv"], np.float32), "raster_depth": m.depth, "raster_mask": m.mask}
        return row, None, job


def encode_target(key: str, out: dict, info: dict, jpeg_quality: int) -> list:
    """A synthesized sample's members from {'rgb', 'depth', 'normals', 'mask'} and its JSON."""
    return [(f"{key}.jpg", _jpg(out["rgb"], jpeg_quality)),
            (f"{key}.npz", _npz(depth=out["depth"], normals=out["normals"].astype(np.float16),
                                mask=out["mask"].astype(np.uint8))),
            (f"{key}.json", json.dumps(info).encode("utf-8"))]
