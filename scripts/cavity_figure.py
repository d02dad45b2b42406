"""The cavity term on real subjects (issue 11, "visible"): one row per subject.

    PYTHONPATH=backend python scripts/cavity_figure.py --bump DIR0 --cavity DIR1 -o docs/fold_cavity.jpg [SUBJECT ...]

DIR0 / DIR1 are two ``personal_renders.py`` outputs of the same subjects, rendered with
``--cavity 0`` (bump and displacement only) and the default ``--cavity 1``. Columns: real
neutral (the imported photo) | real expression | DetP + folds, bump only | DetP + folds with the
cavity | the folds' own luminance change with the cavity (folds - DetP-only render, linear
luminance ratio, x20 around mid grey: darker = the render darkened there).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fold_contrast import luma8 as _luma  # noqa: E402

TILE = 320


def row(bump: Path, cav: Path) -> np.ndarray:
    frame = sorted((cav / "folds" / "frames").glob("*.png"))[-1].name
    real_n, real_e = (cv2.imread(str(cav / n)) for n in ("real_neutral.png", "real_expr.png"))
    b, c = (cv2.imread(str(d / "folds" / "frames" / frame)) for d in (bump, cav))
    base = cv2.imread(str(cav / "detp" / "frames" / frame))
    ratio = np.log(np.maximum(_luma(c), 1e-3) / np.maximum(_luma(base), 1e-3))
    diff = np.clip(128 + 20 * 255 * ratio, 0, 255).astype(np.uint8)  # x20 (log ratio ~ relative change)
    tiles = [real_n, real_e, b, c, cv2.cvtColor(diff, cv2.COLOR_GRAY2BGR)]
    return np.concatenate([cv2.resize(t, (TILE, TILE), interpolation=cv2.INTER_AREA) for t in tiles], 1)


def write_figure(names: list[str], row_of, out: str) -> None:
    """One labelled row per subject name (``row_of(name)`` -> BGR image), stacked into a JPEG."""
    rows = []
    for n in names:
        r = row_of(n)
        cv2.putText(r, n.split("_level")[0].split("_")[0], (8, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2,
                    cv2.LINE_AA)
        rows.append(r)
    cv2.imwrite(out, np.concatenate(rows, 0), [cv2.IMWRITE_JPEG_QUALITY, 85])


def two_dir_main(argv, doc: str, first: str, second: str, row_of) -> int:
    """The command line of the figure scripts that put two ``personal_renders.py`` outputs of the
    same subjects side by side: ``[SUBJECT ...] --FIRST DIR --SECOND DIR -o OUT``; one row per
    subject, ``row_of(first_dir / subject, second_dir / subject)``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("subjects", nargs="*")
    ap.add_argument(f"--{first}", required=True)
    ap.add_argument(f"--{second}", required=True)
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args(argv)
    a, b = Path(getattr(args, first)), Path(getattr(args, second))
    names = args.subjects or sorted(p.name for p in b.iterdir() if (p / "folds" / "frames").is_dir())
    write_figure(names, lambda n: row_of(a / n, b / n), args.out)
    return 0


def main(argv=None) -> int:
    return two_dir_main(argv, __doc__, "bump", "cavity", row)


if __name__ == "__main__":
    sys.exit(main())
