"""``facedet3d serve``: the loopback backend server for a Blender without torch (see server)."""

from __future__ import annotations

import os


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="loopback backend server for the Blender add-on")
    p.add_argument("--host", default="127.0.0.1", help="loopback address only (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (printed on stdout)")
    p.add_argument("--token", default=os.environ.get("FACEDET3D_TOKEN") or None,
                   help="shared secret (default: $FACEDET3D_TOKEN, else random; printed on stdout)")
    p.add_argument("--regressor", choices=("onnx", "torch"), default="onnx")
    p.add_argument("--verbose", action="store_true", help="log each request on stderr")
    p.set_defaults(func=handler)


def handler(args) -> int:
    from facedet3d.api.http import serve

    try:
        serve(args.host, args.port, args.token, args.regressor, args.verbose)
    except KeyboardInterrupt:
        pass
    return 0
