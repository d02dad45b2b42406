"""Command line: ``facedet3d fit | assets | export-onnx | bench``.

Errors print one line on stderr (``facedet3d: error: ...``) and exit non-zero; a traceback
only with ``--debug``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import traceback

from facedet3d.errors import FaceDet3DError


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("--box takes LEFT,TOP,WIDTH,HEIGHT numbers") from None
    if len(vals) != 4 or vals[2] <= 0 or vals[3] <= 0:
        raise argparse.ArgumentTypeError("--box takes LEFT,TOP,WIDTH,HEIGHT with positive width and height")
    return vals  # type: ignore[return-value]


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError("--face takes 1 (largest face), 2, 3, ...")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="facedet3d", description="One photo of a face -> animatable BFM face asset.")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("fit", help="photo -> FaceAsset folder")
    f.add_argument("photo")
    f.add_argument("-o", "--out", required=True, help="output folder (written atomically)")
    f.add_argument("--box", type=_box, help="face box LEFT,TOP,WIDTH,HEIGHT in pixels")
    f.add_argument("--face", type=_positive, default=1, help="N-th largest face (1 = largest)")
    f.add_argument("--overlay", action="store_true", help="also write overlay.png and texture_preview.png")
    f.add_argument("--texture-size", type=int, default=1024)
    f.add_argument("--no-refine", action="store_true", help="plain two-pass 3DDFA_V2 fit, no refinement")
    f.add_argument("--regressor", choices=("onnx", "torch"), default="onnx")

    a = sub.add_parser("assets", help="face-model files")
    a.add_argument("action", choices=("fetch", "status"))
    a.add_argument("--mirror", help="local folder laid out like the upstream repos (default: $FACEDET3D_ASSET_MIRROR)")
    a.add_argument("--force", action="store_true", help="fetch again even when cached")

    sub.add_parser("export-onnx", help="build step: export the regressor to ONNX")

    b = sub.add_parser("bench", help="benchmark; the last line is one JSON object")
    b.add_argument("photo")
    b.add_argument("--json", action="store_true")
    b.add_argument("--repeats", type=int, default=7)
    b.add_argument("--megapixels", type=float, help="resample the photo to this size first (e.g. 12)")
    b.add_argument("--skip-detail", action="store_true", help="leave out the detail-network figures")
    b.add_argument("--skip-ui", action="store_true", help="leave out the add-on/render figures (minutes)")
    b.add_argument("--addon", metavar="DIR", help="the add-on folder with batch.py for the add-on figures "
                   "(default: $FACEDET3D_ADDON_DIR)")
    b.add_argument("--skip-dataset", action="store_true", help="leave out the dataset-job throughput (a few minutes: "
                   "fit-only, the raster, Cycles and Eevee)")
    for mod in _plugins():
        mod.add_parser(sub)
    return ap


# Subcommands defined by their stage's module: each has ``add_parser(subparsers)`` (which
# sets ``func=handler`` through ``set_defaults``) and a ``handler(args) -> int``.
_PLUGIN_MODULES: tuple[str, ...] = ("cli.pose", "cli.render", "cli.serve", "cli.detail", "cli.neural", "cli.corpus",
                                     "cli.dataset", "cli.track", "cli.folds")


def _plugins():
    import importlib

    return [importlib.import_module(f"facedet3d.{m}") for m in _PLUGIN_MODULES]


@functools.lru_cache(maxsize=2)
def _backend(regressor: str):
    """One warm Backend per process (in-process callers such as tests reuse it)."""
    from facedet3d.fit.pipeline import Backend

    return Backend(regressor_backend=regressor)


def _cmd_fit(args) -> int:
    from facedet3d.fit.pipeline import FitRequest

    req = FitRequest(photo=args.photo, box=args.box, face=args.face - 1, texture_size=args.texture_size,
                     overlay=args.overlay, refine=not args.no_refine)
    backend = _backend(args.regressor)
    path = backend.fit_to_disk(req, args.out)
    meta = json.loads((path / "meta.json").read_text())
    for w in meta.get("warnings", []):
        print(f"facedet3d: warning: {w}", file=sys.stderr)
    t = meta["timings_ms"]
    print(f"wrote {path} (yaw {meta['pose']['yaw_deg']:.0f} deg, {sum(t.values()):.0f} ms: "
          + ", ".join(f"{k} {v:.0f}" for k, v in t.items()) + ")")
    return 0


def _cmd_assets(args) -> int:
    from facedet3d.assets import files as assets

    if args.action == "fetch":
        paths = assets.fetch(mirror=args.mirror, force=args.force, progress=lambda m: print(m, flush=True))
        print(f"{len(paths)} face-model files verified in {assets.assets_dir()}")
        return 0
    st = assets.status()
    for path, state in st.items():
        print(f"{state:8s} {path}")
    bad = [p for p, s in st.items() if s != "ok"]
    if bad:
        print(f"{len(bad)} file(s) not ready; {assets.FETCH_HINT}")
    return 1 if bad else 0


def _cmd_export(args) -> int:
    from facedet3d.fit.regressor import export_onnx

    print(f"wrote {export_onnx()}")
    return 0


def _cmd_bench(args) -> int:
    from facedet3d.cli.bench import run_bench

    result = run_bench(args.photo, repeats=args.repeats, megapixels=args.megapixels,
                       detail=not args.skip_detail, ui=not args.skip_ui, dataset=not args.skip_dataset,
                       addon=args.addon)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"fit": _cmd_fit, "assets": _cmd_assets, "export-onnx": _cmd_export, "bench": _cmd_bench}
    try:
        return handlers[args.cmd](args) if args.cmd in handlers else args.func(args)
    except FaceDet3DError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"facedet3d: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("facedet3d: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: still one line unless --debug
        if args.debug:
            traceback.print_exc()
        print(f"facedet3d: error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
