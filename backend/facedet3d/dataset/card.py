"""OUT/README.md: the dataset card (counts, filters, conventions, camera, licences, loading)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from facedet3d import __version__
from facedet3d.dataset.reading import KNOWN_LIMITS

LICENCES = """\
- Geometry comes from the Basel Face Model 2009 through 3DDFA_V2's `bfm_noneck_v3.pkl`:
  **academic, non-commercial use only** (the BFM licence of the University of Basel; a
  commercial use needs a licence from them). Depth, normals, masks and synthesized targets
  are derived from it and inherit that restriction.
- 3DDFA_V2 code and regressor weights: MIT. ICT-FaceKit (the FACS expression shapes): MIT.
  MTCNN weights (facenet-pytorch): MIT. MediaPipe Face Landmarker (`face_landmarker.task`: the
  478 landmarks, blendshapes and photo AUs): Apache-2.0 (its model card).
- The detail network (DetP) weights ship with FaceDet3D and were trained only on a
  procedural wrinkle corpus (see the project's `backend/facedet3d/weights/TRAINING.md`):
  synthesized wrinkles are that model's, not measured.
- The photos keep their own licences; this job does not change them. Record them here.
"""


def _stats(vals) -> str:
    import numpy as np

    v = np.array([x for x in vals if x is not None], np.float64)
    if v.size == 0:
        return "n/a"
    p10, p50, p90 = np.percentile(v, [10, 50, 90])
    return f"median {p50:.3f} (10 % {p10:.3f}, 90 % {p90:.3f})"


def _renderer_line(o, synth: list) -> str:
    if o.renderer == "raster":
        return ("RGB, depth and normals from the software rasteriser (`--renderer raster`: unwrapped texture x "
                "detail shading ratio), not Blender.")
    ok = [r for r in synth if r["status"] == "ok"]
    return (f"RGB, depth, normals and mask from one Blender {o.renderer.title()} render per target "
            f"({o.render_samples} samples, pixel-centre samples; the textured mesh displaced by DetP's map, key light "
            "and grey world), in a Blender task of its own. Checked per target against the software raster's maps of "
            f"the same geometry: |depth difference| {_stats(r['depth_vs_raster_mm'] for r in ok)} mm (median per "
            f"target), mask IoU {_stats(r['mask_iou_vs_raster'] for r in ok)}; frame "
            f"{_stats(r['render_ms'] / 1000.0 for r in ok if r['render_ms'] is not None)} s.")


def write_card(store, inputs, table, opts, command: str | None, executor: str, workers: int) -> dict:
    rows = table.to_pylist()
    photos = [r for r in rows if r["kind"] == "photo"]
    synth = [r for r in rows if r["kind"] == "synth"]
    counts = {"inputs": len(inputs.tasks), "photos_ok": sum(r["status"] == "ok" for r in photos),
              "photos_failed": sum(r["status"] == "failed" for r in photos),
              "photos_filtered": sum(r["status"] == "filtered" for r in photos),
              "synth_ok": sum(r["status"] == "ok" for r in synth), "synth_failed": sum(r["status"] == "failed" for r in synth),
              "skipped_files": len(inputs.skipped), "shards": len(list(store.shards.glob("shard-*.tar")))}
    reasons = Counter(r["reason"] for r in photos if r["status"] == "failed")
    reader_counts = Counter(r["reader_status"] for r in photos if r["status"] != "failed")
    ok = [r for r in photos if r["status"] == "ok"]
    o = opts
    lines = [
        "# Dataset card", "",
        f"Made by FaceDet3D {__version__} (`facedet3d dataset`), input `{inputs.source}` "
        f"`{store.job['input']}`, executor {executor}.", "",
        "```", command or "facedet3d dataset ...", "```", "",
        "## Counts", "",
        "| | count |", "| --- | --- |",
        f"| inputs (photos listed) | {counts['inputs']} |",
        f"| photos with maps (status ok) | {counts['photos_ok']} |",
        f"| photos failed (one-line reason in the manifest) | {counts['photos_failed']} |",
        f"| photos dropped by `--min-quality` | {counts['photos_filtered']} |",
        f"| synthesized targets ok / failed | {counts['synth_ok']} / {counts['synth_failed']} |",
        f"| files in the folder that are not images (not processed) | {counts['skipped_files']} |",
        f"| shards | {counts['shards']} |", "",
    ]
    if reasons:
        lines += ["Failures by reason:", ""] + [f"- {n} x {r}" for r, n in reasons.most_common(20)] + [""]
    if inputs.skipped:
        lines += ["Not processed (not an image by extension): " + ", ".join(f"`{s}`" for s in inputs.skipped[:20])
                  + (" ..." if len(inputs.skipped) > 20 else ""), ""]
    lines += [
        "## Filters and quality", "",
        f"- `--min-quality`: {o.min_quality if o.min_quality is not None else 'none (every fit kept; filter on the manifest column `quality`)'}",
        f"- quality of the kept fits: {_stats(r['quality'] for r in ok)}; landmark residual (x inter-ocular, "
        f"against MTCNN's five points): {_stats(r['lm_residual'] for r in ok)}; photometric residual "
        f"(relative, SH9 shading over the mask): {_stats(r['photo_residual'] for r in ok)}.",
        "- `quality = exp(-(lm/0.12)^2/2 - (photo/0.8)^2/2)`; both residuals are manifest columns.", "",
        "## What a sample holds", "",
        "WebDataset tar shards (`shards/shard-NNNNNN.tar`), members `KEY.jpg` (the photo in the output frame, "
        "or the synthesized RGB), `KEY.npz` (`depth` (H, W) float32, `normals` (H, W, 3) float16, `mask` (H, W) uint8) "
        "and `KEY.json` (68 and 478 landmarks in output pixels, blendshapes, AUs 0..1, head pose, camera, quality, "
        "labels). "
        "`manifest.parquet` has one row per sample, failed and filtered photos included.", "",
        f"- Output frame: {'the whole photo' if o.crop == 'none' else 'a square around the face (1.6 x the face box)'}"
        f"{f', long side {o.size} px' if o.size else ' at the photo resolution'}.",
        "- Depth: metres from the camera along its axis, 0 on the background (mask 0).",
        f"- Camera (stated, not measured): the fit is scaled-orthographic (3DDFA_V2); depth assumes a pinhole "
        f"camera of {o.focal_mm:g} mm focal length on a 35 mm frame whose 36 mm side is the photo's long side "
        f"(`focal_px` = {o.focal_mm:g}/36 x long side), placed at `camera_distance_m` = focal_px / (pixels per metre of "
        "the fit) from the head model's origin (about 13 cm behind the nose tip). The face's relief is metric whatever "
        "the focal length; the absolute distance scales with it. x/y are the fit's orthographic projection.",
        "- Normals: unit vectors in the camera frame, x right, y up, z toward the camera (facing pixels have z > 0); "
        "the normals of the same mesh the depth comes from (they agree with the depth map's gradient).",
        f"- Fine detail: {'the photo’s own D(Ix) added to depth and normals' if o.with_detail else 'not added (smooth BFM surface)'}.",
        "- 478 landmarks (`landmarks478`, x/y output pixels, z MediaPipe's relative depth in output pixels) and the 51 "
        "ARKit blendshape scores (`blendshapes`) from MediaPipe's Face Landmarker, the expression reader that also "
        "reads the photo AUs. Per sample `reader.status` (manifest `reader_status`): " + ", ".join(
            f"{k} {v}" for k, v in reader_counts.items()) + ". `no face`: nulls, AUs from the 68-landmark fit "
        "(`aus_source`); `disagrees`: the reader's key points lie > 0.15 inter-ocular distances from the fit's "
        "(kept, flagged). Known limits of the reader: " + KNOWN_LIMITS + ".",
    ]
    if o.expressions:
        lines += [f"- Synthesized targets: expressions {', '.join(o.expressions)} x views {', '.join(f'{v:g}' for v in o.views)}"
                  " degrees of yaw; geometry = the subject's FACS rig at the preset's AUs (labels: `target_aus`), "
                  f"DetP wrinkles at {o.detail_size}² texels; " + _renderer_line(o, synth)]
    lines += ["", "## Licences", "", LICENCES, "## Loading", "", "```python",
              "from facedet3d.dataset.reader import ShardDataset",
              f"ds = ShardDataset(\"{store.out}\")          # torch IterableDataset over the shards",
              "for s in ds: s[\"rgb\"], s[\"depth\"], s[\"normals\"], s[\"mask\"], s[\"info\"]",
              "```", "",
              "Any WebDataset reader works too (`.npz` decodes with `numpy.load`).", ""]
    path = Path(store.out) / "README.md"
    tmp = path.with_name("README.md.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, path)
    cp = Path(store.out) / "counts.json"
    ctmp = cp.with_name("counts.json.tmp")
    ctmp.write_text(json.dumps(counts, indent=1), encoding="utf-8")
    os.replace(ctmp, cp)
    return counts
