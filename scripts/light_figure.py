"""Real frames next to renders of the same face under the two lights (issue 11, "visible").

    PYTHONPATH=backend python scripts/light_figure.py --key DIR_KEY --front DIR_FRONT -o OUT.jpg [SUBJECT ...]

DIR_KEY / DIR_FRONT are two ``personal_renders.py`` outputs of the same subjects, rendered with
``--light key`` (the default sun, 55 degrees above the view) and ``--light front``. Columns:
real neutral (the imported photo) | real expression | DetP + the person's folds at the preset
under the key light | the same under the front light | the front-lit render at the photo's own
expression (frame 1). One row per subject; the frames are cropped to the face.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cavity_figure import two_dir_main  # noqa: E402

TILE = 320


def _crop(im: np.ndarray, frac: float = 0.72) -> np.ndarray:
    """The central ``frac`` of a square-ish frame (the face fills the middle of these)."""
    h, w = im.shape[:2]
    s = int(min(h, w) * frac)
    y, x = (h - s) // 2, (w - s) // 2
    return im[y:y + s, x:x + s]


def row(key: Path, front: Path) -> np.ndarray:
    frame = sorted((front / "folds" / "frames").glob("*.png"))
    tiles = [cv2.imread(str(front / n)) for n in ("real_neutral.png", "real_expr.png")]
    tiles += [cv2.imread(str(key / "folds" / "frames" / frame[-1].name)), cv2.imread(str(frame[-1])),
              cv2.imread(str(frame[0]))]
    return np.concatenate([cv2.resize(_crop(t), (TILE, TILE), interpolation=cv2.INTER_AREA) for t in tiles], 1)


def main(argv=None) -> int:
    return two_dir_main(argv, __doc__, "key", "front", row)


if __name__ == "__main__":
    sys.exit(main())
