"""Renders of real subjects with D(I)'s colour cue before and after stop 25 (issue 11, "visible").

    PYTHONPATH=backend python scripts/skin_cue_renders.py --before DIR0 --after DIR1 -o OUT.jpg [SUBJECT ...]

DIR0 / DIR1 are two ``personal_renders.py`` outputs of the same subjects, made by the code
before the new cue and by the shipped code (the photo's D(I), DetP's input, and the folds
enrolled from the video all change with it). Columns, the frames cropped to the face: real
neutral (the imported photo) | real expression | DetP + the person's folds at the preset,
before | the same, after | what the details add after (the folds render against the
details-off render, log luminance x10 around mid grey: darker = the details darkened there).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cavity_figure import two_dir_main  # noqa: E402
from fold_contrast import luma8  # noqa: E402
from light_figure import _crop  # noqa: E402

TILE = 360


def row(before: Path, after: Path) -> np.ndarray:
    frame = sorted((after / "folds" / "frames").glob("*.png"))[-1].name
    tiles = [cv2.imread(str(after / n)) for n in ("real_neutral.png", "real_expr.png")]
    tiles += [cv2.imread(str(d / "folds" / "frames" / frame)) for d in (before, after)]
    on, off = (cv2.imread(str(after / d / "frames" / frame)) for d in ("folds", "off"))
    ratio = np.log(np.maximum(luma8(on), 1e-3) / np.maximum(luma8(off), 1e-3))
    tiles.append(cv2.cvtColor(np.clip(128 + 10 * 255 * ratio, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    return np.concatenate([cv2.resize(_crop(t, 0.6), (TILE, TILE), interpolation=cv2.INTER_AREA) for t in tiles], 1)


def main(argv=None) -> int:
    return two_dir_main(argv, __doc__, "before", "after", row)


if __name__ == "__main__":
    sys.exit(main())
