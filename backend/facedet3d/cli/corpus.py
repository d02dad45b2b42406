"""``facedet3d corpus INPUT... -o CORPUS``: build (or resume) the real detail corpus.

Videos: frames sampled where the expression changes, fitted with the identity held per
clip, D(I) and AUs stored; photos: one entry each. Layout and options:
``facedet3d.detail.real_corpus``.
"""

from __future__ import annotations

import argparse

from facedet3d.errors import BadRequest


def add_parser(sub) -> None:
    p = sub.add_parser("corpus", help="build the real detail corpus (D(I) + AUs) from videos and photos")
    p.add_argument("inputs", nargs="+", help="videos, photos, or folders of them")
    p.add_argument("-o", "--out", required=True, help="corpus folder (reruns resume: finished clips are skipped)")
    p.add_argument("--stride", type=int, default=3, help="fit every N-th video frame (default 3)")
    p.add_argument("--per-clip", type=int, default=24, help="at most N frames kept per video (default 24)")
    p.add_argument("--min-change", type=float, default=0.6,
                   help="keep a frame when its AUs differ by >= this (L1 over 17 AUs, 0..1 each) from every kept one")
    p.add_argument("--max-frames", type=int, help="scan at most N frames per video, spread over it")
    p.add_argument("--size", type=int, choices=(256, 512, 1024), default=512, help="unwrap / D(I) size (default 512)")
    p.add_argument("--store-size", type=int, choices=(256, 512), default=256, help="stored map size (default 256)")
    p.add_argument("--no-align", action="store_true", help="store frames as fitted (no UV-flow registration)")
    p.add_argument("--labels", default="landmarks",
                   help="AU labels source: 'landmarks' (68-landmark rig fit), 'mediapipe' (the expression "
                        "reader's blendshapes) or 'package.module:function' "
                        "called with each fitted frame (facedet3d.detail.frames.resolve_labels)")
    p.add_argument("--no-twins", action="store_true",
                   help="do not keep each selected frame's nearest-expression twin (>= 12 frames away)")
    p.add_argument("--age", type=float, help="the subjects' age in years, when known (else null)")
    p.add_argument("--coarse-sigma", type=float,
                   help="D(I)'s coarse cut (fraction of the map side; default the photo fit's 0.01, ~3 mm); "
                        "personal folds use 0.03 (detail.personal.COARSE_SIGMA)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from facedet3d.detail import real_corpus
    from facedet3d.detail.frames import resolve_labels

    if args.stride < 1 or args.per_clip < 1:
        raise BadRequest("--stride and --per-clip must be at least 1")
    labels = resolve_labels(args.labels)
    params = None
    if args.coarse_sigma is not None:
        from facedet3d.fit.detail_input import DetailParams

        if not 0 < args.coarse_sigma < 0.5:
            raise BadRequest("--coarse-sigma is a fraction of the map side, between 0 and 0.5")
        params = DetailParams(coarse_sigma=args.coarse_sigma)
    index = real_corpus.build(args.inputs, args.out, labels=labels, labels_name=args.labels, size=args.size,
                              detail_params=params, stride=args.stride, per_clip=args.per_clip,
                              min_change=args.min_change, store_size=args.store_size, age=args.age,
                              max_frames=args.max_frames, align=not args.no_align, twins=not args.no_twins, progress=lambda m: print(m, flush=True))
    clips = index["clips"]
    frames = sum(c["frames_scanned"] for c in clips.values())
    secs = sum(c["seconds"] for c in clips.values())
    print(f"{args.out}: {len(index['entries'])} entries from {len(clips)} clips; "
          f"{secs / max(frames, 1) * 1000:.0f} ms per scanned frame")
    return 0
