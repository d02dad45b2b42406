"""``facedet3d dataset INPUT -o OUT``: a photo collection -> RGB-D(-N) training data.

INPUT: a folder of photos (recursive) or a .csv/.jsonl list of photo paths with labels.
OUT: WebDataset tar shards, a Parquet manifest and a dataset card (see
``facedet3d.dataset``). Resumable: rerunning the same command finishes a killed run.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys

from facedet3d.errors import BadRequest


def _views(text: str) -> tuple:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("--views takes yaw angles in degrees, e.g. -30,0,30") from None
    if not vals or any(abs(v) > 90 for v in vals):
        raise argparse.ArgumentTypeError("--views takes yaw angles within -90..90 degrees")
    return vals


def _expressions(text: str) -> tuple:
    from facedet3d.rig.facs import PRESETS

    names = tuple(e.strip() for e in text.split(",") if e.strip())
    bad = [e for e in names if e not in PRESETS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"--expressions takes presets from {', '.join(PRESETS)} (not {', '.join(bad) or 'nothing'})")
    return names


def add_parser(sub) -> None:
    p = sub.add_parser("dataset", help="photo folder or list -> depth/normals/landmarks/AUs dataset (shards + Parquet)")
    p.add_argument("input", help="folder of photos (recursive) or a .csv/.jsonl list with a 'path' column and labels")
    p.add_argument("-o", "--out", required=True, help="output folder (created; a rerun resumes it)")
    p.add_argument("--size", type=int, help="output long side in pixels (default: the photo's resolution; 256 with --crop face)")
    p.add_argument("--crop", choices=("none", "face"), default="none", help="whole photo (default) or a square around the face")
    p.add_argument("--min-quality", type=float, help="drop fits whose quality score (0..1) is below this")
    p.add_argument("--with-detail", action="store_true", help="add the photo's fine detail D(Ix) to depth and normals")
    p.add_argument("--expressions", type=_expressions, default=(), help="synthesize these presets, e.g. happy,surprise")
    p.add_argument("--views", type=_views, help="yaw angles of the synthesized views, e.g. -30,0,30 (default 0)")
    # argparse reads "-30,0,30" as an unknown option (its negative-number pattern has no
    # commas); this parser has no option that looks like a number, so widen the pattern.
    p._negative_number_matcher = re.compile(r"^-\d[\d.,-]*$")
    p.add_argument("--renderer", choices=("cycles", "eevee", "raster"), default="cycles",
                   help="synthesized RGB: Blender Cycles (default, CPU), Blender Eevee, or the software raster "
                        "(fast, texture x detail shading); recorded in every synthesized row")
    p.add_argument("--render-samples", type=int, default=16, help="Blender samples per pixel (default 16)")
    p.add_argument("--addon", metavar="DIR", help="the Blender add-on folder with dataset_render.py "
                                                  "(default: $FACEDET3D_ADDON_DIR)")
    p.add_argument("--blender", metavar="PATH", help="render in this Blender binary instead of the bpy module")
    p.add_argument("--detail-size", type=int, choices=(256, 1024), default=256, help="DetP map size for synthesized wrinkles")
    p.add_argument("--texture-size", type=int, choices=(256, 512, 1024), default=512,
                   help="UV texture/D(Ix) size when details or synthesis need it")
    p.add_argument("--focal-mm", type=float, default=50.0, help="assumed 35 mm-equivalent focal length for depth (default 50)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (1 = in this process)")
    p.add_argument("--ray", metavar="local|auto|ADDRESS", help="run on Ray: 'local' starts one here, 'auto' joins a cluster")
    p.add_argument("--shard-size", type=int, default=64, help="photos per tar shard (default 64)")
    p.add_argument("--limit", type=int, help="only the first N inputs")
    p.add_argument("--overwrite", action="store_true", help="delete an existing dataset in OUT first")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from facedet3d.dataset.runner import run_job
    from facedet3d.dataset.sample import JobOptions

    if args.workers < 1:
        raise BadRequest("--workers takes 1 or more")
    if args.shard_size < 1:
        raise BadRequest("--shard-size takes 1 or more")
    if args.size is not None and not 16 <= args.size <= 8192:
        raise BadRequest("--size takes 16..8192 pixels")
    if not 5 <= args.focal_mm <= 2000:
        raise BadRequest("--focal-mm takes a 35 mm-equivalent focal length in 5..2000")
    if args.views and not args.expressions:
        raise BadRequest("--views sets the synthesized views: give --expressions too (e.g. --expressions happy)")
    if not 1 <= args.render_samples <= 4096:
        raise BadRequest("--render-samples takes 1..4096")
    if args.min_quality is not None and not 0 <= args.min_quality <= 1:
        raise BadRequest("--min-quality takes a score in 0..1")
    opts = JobOptions(size=args.size, crop=args.crop, min_quality=args.min_quality, with_detail=args.with_detail,
                      expressions=tuple(args.expressions), views=tuple(args.views or (0.0,)),
                      focal_mm=args.focal_mm, detail_size=args.detail_size, texture_size=args.texture_size,
                      renderer=args.renderer if args.expressions else "raster",
                      render_samples=args.render_samples if args.expressions else 16)
    command = "facedet3d " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    rep = run_job(args.input, args.out, opts, workers=args.workers, ray=args.ray, shard_size=args.shard_size,
                  limit=args.limit, overwrite=args.overwrite, command=command, addon=args.addon, blender=args.blender)
    c = rep.counts
    print(f"wrote {rep.out}: {c['inputs']} inputs, {c['photos_ok']} ok, {c['photos_failed']} failed, "
          f"{c['photos_filtered']} filtered, {c['synth_ok']} synthesized; computed {rep.computed} "
          f"({rep.resumed} from an earlier run) in {rep.seconds:.1f} s, {rep.photos_per_s:.2f} photos/s ({rep.executor})")
    return 0
