"""The backend's one typed, in-process API (used by the CLI, the benchmark, the server and
the Blender add-on's client). Models load once per ``Backend`` and stay warm.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedet3d import __version__
from facedet3d.assets import files as assets
from facedet3d.assets import bfm as bfm_mod
from facedet3d.fit import faceasset
from facedet3d.fit import camera as fit
from facedet3d.errors import BadImage, FaceDet3DError

TEXTURE_SIZES = (256, 512, 1024, 2048)


@dataclass(frozen=True)
class FitRequest:
    """What to fit.

    photo: path of any ordinary photo (JPEG/PNG/WebP/TIFF, any mode, EXIF honoured).
    box: optional face box LEFT, TOP, WIDTH, HEIGHT in photo pixels (after EXIF rotation).
    face: which face when several: 0 = largest, 1 = second largest, ...
    texture_size: side of the UV texture / detail maps, texels.
    overlay: also make overlay.png and texture_preview.png.
    refine: flipped test-time augmentation + least-squares landmark refinement.
    """

    photo: str
    box: tuple[float, float, float, float] | None = None
    face: int = 0
    texture_size: int = 1024
    overlay: bool = False
    refine: bool = True


class _Timer:
    def __init__(self):
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        yield
        self.ms[stage] = round(self.ms.get(stage, 0.0) + (time.perf_counter() - t0) * 1000.0, 2)


class Backend:
    """Holds the loaded models. Construct once; call ``fit`` many times."""

    def __init__(
        self,
        regressor_backend: str = "onnx",  # "onnx" (fast on CPU) or "torch" (CUDA when present)
    ):
        from facedet3d.fit.detect import FaceDetector
        from facedet3d.fit.regressor import Regressor

        from facedet3d.rig.transfer import load_rig

        self.bfm = bfm_mod.load_bfm()
        self.rig = load_rig()
        self.regressor = Regressor(regressor_backend)
        self.detector = FaceDetector()
        self._reader = None  # MediaPipe expression reader, made on the first fit
        self.last_reading = None  # the reader's Reading of the last fit's face (None: none found)

    def read_face(self, rgb: np.ndarray, box):
        """MediaPipe's reading (``expression.reader.Reading``: 478 landmarks, blendshapes;
        photo pixels) of the face in ``box``, or None when it finds no face there; it also
        stays in ``last_reading``. A missing mediapipe is an error. The fit uses it twice:
        its landmarks as targets for brows, eyelids and lips (``fit.mp68``) and its
        blendshapes for the photo's AUs."""
        from facedet3d.expression import reader

        self.last_reading = None
        if self._reader is None:
            self._reader = reader.FaceReader("image")
        self.last_reading = reader.read_photo(rgb, box, self._reader)
        return self.last_reading

    def read_expression(self, rgb: np.ndarray, box) -> tuple[dict, str]:
        """The photo's AUs from the expression reader (MediaPipe blendshapes and the AU9
        landmark cue -> ``expression.au``); ``({}, "landmarks")`` when it finds no face in
        the box, and the caller falls back to the 68-landmark fit. The reading stays in
        ``last_reading``."""
        return _aus_of(self.read_face(rgb, box))

    def fit(self, req: FitRequest) -> faceasset.FaceAsset:
        """Photo -> FaceAsset in memory (nothing written). Raises FaceDet3DError subclasses."""
        from facedet3d.fit import detail_input, mp68
        from facedet3d.fit import photo as photo_mod
        from facedet3d.geometry import raster
        from facedet3d.fit import texture
        from facedet3d.fit.select import select_face, small_face_warning

        if req.texture_size not in TEXTURE_SIZES:
            raise BadImage(f"texture size {req.texture_size} is not one of {TEXTURE_SIZES}")
        tm = _Timer()
        with tm("load"):
            ph = photo_mod.load_photo(req.photo)
        rgb = ph.rgb
        h, w = rgb.shape[:2]
        with tm("detect"):
            dets = self.detector(rgb)  # also with --box: it picks the best-overlapping detection
            det = select_face(dets, face_index=req.face, box=req.box, image_size=(w, h))
        with tm("expression"):  # read once: landmarks guide the fit, blendshapes give the AUs
            reading = self.read_face(rgb, det.box)
            photo_aus, aus_source = _aus_of(reading)
        guide = None if reading is None or not req.refine else reading.landmarks
        with tm("regress"):
            fp = fit.fit_face(rgb, np.asarray(det.box, np.float64), self.regressor, self.bfm, refine_landmarks=req.refine,
                              guide=guide)
        with tm("reconstruct"):
            model_v = self.bfm.vertices(fp.shape, fp.exp)  # posed with the photo's expression
            img_v = fit.project(model_v, fp.projection).astype(np.float32)
            lm2d = img_v[self.bfm.landmarks, :2]
            neutral_units = self.bfm.vertices(fp.shape, None)  # identity only, BFM units
            pose = fit.decompose(fp.projection)
        with tm("rig"):
            rig_arrays, landmark_aus = self._rig(neutral_units, model_v, fp.projection, pose)
            photo_aus = photo_aus or landmark_aus  # the 68-landmark fit only when no face was read
        with tm("unwrap"):
            layout = texture.uv_layout(req.texture_size)
            tex, mask = texture.unwrap(rgb, img_v, self.bfm.faces, layout)
        with tm("occluders"):  # glasses, hands, hair: out of T(Ix) and D(Ix) (fit/occluders.py)
            from facedet3d.fit import occluders

            occ = occluders.detect(tex, mask, layout, self.bfm, self.rig.openings)
            tex, mask = occluders.remove(tex, mask, occ, layout, self.bfm, self.rig.openings)
        with tm("detail_input"):
            normals_cam = raster.vertex_normals(model_v @ pose["rotation"].T, self.bfm.faces)
            detail = detail_input.estimate_detail(tex, mask, layout, normals_cam)
        with tm("head"):  # eyes, teeth, mouth socket, head and neck (rig/head.py)
            from facedet3d.rig import head as head_mod

            head_arrays = head_mod.subject_head(neutral_units, self.rig, tex, mask, self.bfm.uv, shape_coeffs=fp.shape,
                                                photo=rgb, projection=fp.projection)
        meta = faceasset.FaceMeta(
            format_version=faceasset.FORMAT_VERSION,
            photo=str(Path(req.photo).name),
            photo_path=str(Path(req.photo).resolve()),
            face_px=round(float(min(det.width, det.height)), 1),
            warnings=[w for w in (small_face_warning(det), ph.colour_warning) if w],
            image_size=[int(w), int(h)],
            box=[float(v) for v in det.box],
            box_source="detector" if det.landmarks5 is not None else "user",
            detector_score=None if not np.isfinite(det.score) else float(det.score),
            landmarks_2d=np.round(lm2d.astype(np.float64), 3).tolist(),
            pose=faceasset.Pose(
                projection=fp.projection.tolist(),
                rotation=pose["rotation"].tolist(),
                scale_px_per_m=pose["scale_px_per_unit"] / bfm_mod.METRES_PER_UNIT,
                yaw_deg=pose["yaw_deg"], pitch_deg=pose["pitch_deg"], roll_deg=pose["roll_deg"],
            ),
            shape_coeffs=fp.shape.tolist(),
            exp_coeffs=fp.exp.tolist(),
            texture_size=req.texture_size,
            observed_fraction=float((mask > 127).sum() / max(int(layout.chart.sum()), 1)),
            versions={"facedet3d": __version__, "regressor": self.regressor.backend},
            assets={e.path: e.sha256 for e in assets.manifest()},
            aus={str(k): round(v, 4) for k, v in photo_aus.items()},
            aus_source=aus_source,
            landmark_targets=list(mp68.FIT_REGIONS) if guide is not None else [],
            rig_residual_mm=float(self.rig.residual_mm),
        )
        asset = faceasset.FaceAsset(
            vertices=(neutral_units * bfm_mod.METRES_PER_UNIT).astype(np.float32), faces=self.bfm.faces, uv=self.bfm.uv, landmarks=self.bfm.landmarks,
            texture=tex, texture_mask=mask, detail_input=detail, meta=meta, rig=rig_arrays, head=head_arrays,
        )
        asset.extras["occluder_mask.png"] = (occ * 255).astype(np.uint8)
        if req.overlay:
            from facedet3d.preview import overlay

            with tm("overlay"):
                asset.extras["overlay.png"] = overlay.overlay(rgb, img_v, self.bfm.faces, lm2d, det.box, uv=self.bfm.uv)
                asset.extras["texture_preview.png"] = overlay.texture_preview(tex, mask, detail)
        meta.timings_ms = tm.ms
        return asset

    def _rig(self, neutral_units: np.ndarray, posed_units: np.ndarray, projection: np.ndarray, pose: dict):
        """rig.npz arrays for this subject and the photo's AUs (landmark fit).

        ``neutral_units`` / ``posed_units``: (N,3) the subject mesh without / with the
        photo's regressed expression, BFM units. The AUs are fitted to the posed mesh's 68
        landmarks seen through the similarity part of the camera (both sides of the fit use
        the same projection, so the affine camera's small skew cannot pose as expression)."""
        from facedet3d.rig import facs

        deltas_units = self.rig.subject_deltas(neutral_units)
        rot, scale, t = pose["rotation"], pose["scale_px_per_unit"], projection[:2, 3]
        target = facs.project(posed_units[self.bfm.landmarks], rot, scale, t)
        aus = facs.fit_photo_aus(target, neutral_units, self.rig, rot, scale, t, subject_deltas=deltas_units)
        arrays = {
            "blendshapes": (deltas_units * bfm_mod.METRES_PER_UNIT).astype(np.float32),
            "names": np.asarray(self.rig.names).astype(str),
            "au_ids": np.asarray(facs.AU_IDS, np.int32),
            "au_to_blendshape": facs.au_to_blendshape(self.rig.names).astype(np.float32),
        }
        return arrays, aus

    def fit_to_disk(self, req: FitRequest, out_dir: str | Path) -> Path:
        """Fit and write the FaceAsset folder atomically; returns its path."""
        return faceasset.write(self.fit(req), out_dir)  # meta.json written once, last, with the write time


def _aus_of(reading) -> tuple[dict, str]:
    """(AUs, source) of a reader's ``Reading``; ``({}, "landmarks")`` for None."""
    from facedet3d.expression import au

    if reading is None:
        return {}, "landmarks"
    return au.aus_of_reading(reading), "mediapipe"


__all__ = ["Backend", "FitRequest", "FaceDet3DError"]
