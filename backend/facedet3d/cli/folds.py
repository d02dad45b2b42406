"""``facedet3d folds VIDEO --asset DIR``: learn the person's own folds from their video.

A population network cannot place one person's folds (``docs/detail_real_change.md`` §5);
their own video can: a few seconds of neutral -> smile -> brow raise -> frown. The folds are
stored in the FaceAsset (``personal_folds.npz``) and added to DetP's prediction wherever the
asset's detail is predicted (``facedet3d detail``, the add-on's live path, renders).
``--remove`` deletes them again. Method and measurements: ``facedet3d.detail.personal``.
"""

from __future__ import annotations

from pathlib import Path

from facedet3d.errors import BadRequest


def add_parser(sub) -> None:
    p = sub.add_parser("folds", help="learn the person's own folds from their video into a FaceAsset")
    p.add_argument("video", nargs="?", help="a video of the photo's person making expressions")
    p.add_argument("--asset", required=True, help="the person's FaceAsset folder (from `facedet3d fit`)")
    p.add_argument("--stride", type=int, default=2, help="fit every N-th frame (default 2)")
    p.add_argument("--max-frames", type=int, default=120, help="scan at most N frames, spread over the video")
    p.add_argument("--remove", action="store_true", help="delete the asset's enrolled folds")
    p.set_defaults(func=handler)


def handler(args) -> int:
    from facedet3d.detail import personal

    asset = Path(args.asset)
    if args.remove:
        f = asset / personal.FILE
        if f.is_file():
            f.unlink()
            print(f"removed {f}")
        else:
            print(f"{asset}: no enrolled folds")
        return 0
    if not args.video:
        raise BadRequest("give the VIDEO to learn from (or --remove)")
    if args.stride < 1 or args.max_frames < 8:
        raise BadRequest("--stride must be >= 1 and --max-frames >= 8")
    meta = personal.enrol(args.video, asset, stride=args.stride, max_frames=args.max_frames,
                          progress=lambda m: print(m, flush=True))
    print(f"wrote {meta['path']}: {meta['frames']} frames, AUs {meta['active_aus']}, "
          f"first half -> second half r = {meta['split_check_r']} over {meta['split_check_pairs']} pairs")
    return 0
