"""``facedet3d track VIDEO -o TRACK.json|TRACK.csv`` and ``track --from-csv CAPTURE.csv``."""

from __future__ import annotations

import sys
import time


def _span(text: str) -> tuple[float, float]:
    import argparse

    try:
        a, b = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError("--neutral takes START:END in seconds, e.g. 0:1") from None
    if not 0 <= a < b:
        raise argparse.ArgumentTypeError("--neutral takes START:END with 0 <= START < END")
    return a, b


def add_parser(sub) -> None:
    from facedet3d.cli.app import _box

    t = sub.add_parser("track", help="video (or Live Link Face CSV) -> per-frame AUs, blendshapes, head pose")
    t.add_argument("video", nargs="?", help="the video to track")
    t.add_argument("-o", "--out", required=True, help="TRACK.json or TRACK.csv (Live Link Face format)")
    t.add_argument("--from-csv", metavar="CAPTURE.csv", help="read a Live Link Face capture instead of a video")
    t.add_argument("--fps", type=float, help="the capture's frame rate for --from-csv (default: inferred)")
    t.add_argument("--box", type=_box, help="follow the face in LEFT,TOP,WIDTH,HEIGHT (pixels)")
    t.add_argument("--smoothing", choices=("one-euro", "none"), default="one-euro",
                   help="temporal smoothing (One-Euro: min cut-off 1 Hz, beta 8 for scores, 0.05 for degrees)")
    t.add_argument("--neutral", type=_span, metavar="START:END",
                   help="seconds where the face rests: calibrate against this person's neutral")
    t.add_argument("--max-gap", type=float, default=0.25, help="fill gaps without a face up to this many seconds")
    t.add_argument("--frames", type=int, help="only the first N frames")
    t.set_defaults(func=handler)


def handler(args) -> int:
    from facedet3d.errors import BadRequest
    from facedet3d.expression import track

    if args.from_csv:
        if args.video:
            raise BadRequest("give either VIDEO or --from-csv, not both")
        res = track.convert_csv(args.from_csv, args.out, fps=args.fps)
        print(f"wrote {args.out}: {res['frames']} frames at {res['fps']:g} fps from {args.from_csv}")
        return 0
    if not args.video:
        raise BadRequest("track needs a VIDEO (or --from-csv CAPTURE.csv)")
    if args.frames is not None and args.frames < 1:
        raise BadRequest("--frames takes a positive number")
    box = None
    if args.box:
        x, y, w, h = args.box
        box = (x, y, x + w, y + h)
    opts = track.TrackOptions(box=box, smoothing=args.smoothing, neutral=args.neutral,
                              max_gap_s=args.max_gap, max_frames=args.frames)
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()

    def progress(n):
        if tty and n % 50 == 0:
            print(f"\rtracked {n} frames", end="", file=sys.stderr, flush=True)

    res = track.track_video(args.video, args.out, opts, progress=progress)
    if tty:
        print(file=sys.stderr)
    dt = time.perf_counter() - t0
    print(f"wrote {args.out}: {res['frames']} frames at {res['fps']:g} fps, face in {res['found']}, "
          f"{res['interpolated']} interpolated ({res['frames'] / max(dt, 1e-9):.0f} frames/s)")
    return 0
