"""Occluder removal on real photos: how much of the face chart is removed, and how much of
what was removed still shows (issue 13's glasses check).

    python scripts/occluder_report.py [--sheet OUT.jpg] PHOTO [PHOTO ...]

Per photo (fitted at 1024² texels, first face) it prints: the mask's share of the face
chart; inside the mask, the mean thin-line response (``occluders.line_response``, Lab L
units: how much darker than their surroundings thin straight dark lines are) of the
texture before and after removal, and the RMS of D(Ix) (micrometres) computed from the
texture with the occluders left in vs removed. ``--sheet`` writes, per photo, the upper
face of the unwrapped texture, the mask over it, and the cleaned texture.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np


def _capture(backend, photo: str) -> dict:
    """Fit ``photo`` and keep the unwrap's texture, mask and camera normals (before removal)."""
    from facedet3d.fit import detail_input, occluders

    cap, det, est = {}, occluders.detect, detail_input.estimate_detail

    def keep_det(tex, mask, *a):
        cap["tex"], cap["mask"] = tex.copy(), mask.copy()
        return det(tex, mask, *a)

    def keep_est(tex, mask, layout, normals):
        cap.setdefault("normals", np.asarray(normals).copy())
        return est(tex, mask, layout, normals)

    from facedet3d.fit.pipeline import FitRequest

    occluders.detect, detail_input.estimate_detail = keep_det, keep_est
    try:
        backend.fit(FitRequest(photo=photo, texture_size=1024))
    finally:
        occluders.detect, detail_input.estimate_detail = det, est
    return cap


def main(argv: list[str]) -> int:
    from facedet3d.assets import bfm as bfm_mod
    from facedet3d.fit import detail_input, occluders, texture
    from facedet3d.fit.pipeline import Backend

    sheet = None
    if argv[:1] == ["--sheet"]:
        sheet, argv = argv[1], argv[2:]
    if not argv:
        print(__doc__)
        return 2
    be = Backend()
    bfm, layout = bfm_mod.load_bfm(), texture.uv_layout(1024)
    rows = []
    for photo in argv:
        c = _capture(be, photo)
        tex, mask = c["tex"], c["mask"]
        occ = occluders.detect(tex, mask, layout, bfm, be.rig.openings)
        clean, new_mask = occluders.remove(tex, mask, occ, layout, bfm, be.rig.openings)

        def line(t):
            return occluders.line_response(cv2.cvtColor(t, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32) * 100 / 255, 1024)

        share = occ[layout.chart].mean() * 100
        msg = f"{Path(photo).name}: mask {share:.2f} % of the chart"
        if occ.any():
            d0 = detail_input.estimate_detail(tex, mask, layout, c["normals"])
            d1 = detail_input.estimate_detail(clean, new_mask, layout, c["normals"])
            msg += (f"; in the mask: line response {line(tex)[occ].mean():.1f} -> {line(clean)[occ].mean():.1f} L,"
                    f" D(Ix) RMS {np.sqrt((d0[occ] ** 2).mean()) * 1e6:.1f} -> {np.sqrt((d1[occ] ** 2).mean()) * 1e6:.1f} um")
        print(msg, flush=True)
        if sheet:
            over = tex.copy()
            over[occ] = (0.5 * over[occ] + [0, 127, 0]).astype(np.uint8)
            rows.append(np.hstack([x[60:460, 60:964] for x in (tex, over, clean)]))
    if sheet:
        img = np.vstack(rows)
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        cv2.imwrite(sheet, img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
