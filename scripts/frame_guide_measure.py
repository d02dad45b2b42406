"""Per-frame landmark agreement between the video-frame fit (detail/frames.py) and MediaPipe
(its 478 points mapped to the 68, fit/mp68.py), with and without MediaPipe's brow/eye/mouth
targets (FrameFitter(guide=...)), on LivePortrait d0.mp4; writes /tmp/i10/guide.json and the
overlay docs/frame_guide_overlay.jpg is cut from /tmp/i10/guide_overlay.jpg.

    PYTHONPATH=backend python scripts/frame_guide_measure.py
"""
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from facedet3d.detail.frames import FrameFitter, read_video
from facedet3d.fit import mp68

D0 = Path(__file__).resolve().parents[1].parent / "shared/data/faces/LivePortrait/assets/examples/driving/d0.mp4"
want = list(range(0, 78, 2))[:39]  # 39 frames, every other one (neutral -> smile -> neutral)
frames = read_video(D0, frames=want)
res = {}
fits = {}
os.makedirs("/tmp/i10", exist_ok=True)
for guide in (False, True):
    fitter = FrameFitter(256, guide=guide)
    bfm = fitter.backend.bfm
    shape, box, rows = None, None, []
    t0 = time.perf_counter()
    for i in sorted(frames):
        f = fitter.fit(frames[i], shape=shape, box=box)
        if shape is None:
            shape = f.shape
            f = fitter.fit(frames[i], shape=shape, box=f.box)
        box = f.box
        r = fitter.read(frames[i], f.box)
        mp = mp68.to_68(r.landmarks)
        lm = f.verts_img[bfm.landmarks, :2]
        iod = np.linalg.norm(mp[36] - mp[45])
        d = np.linalg.norm(lm - mp, axis=1) / iod * 100
        row = {k: float(d[list(v)].mean()) for k, v in mp68.REGIONS.items()}
        row["all"] = float(d.mean()); row["targets"] = f.landmark_targets; row["rms_px"] = f.landmark_rms_px
        row["au12"] = f.aus.get(12, 0.0); row["au6"] = f.aus.get(6, 0.0); row["au26"] = f.aus.get(26, 0.0)
        rows.append((i, row))
        fits.setdefault(i, {})[guide] = (lm, mp)
    dt = time.perf_counter() - t0
    res["guided" if guide else "unguided"] = {
        "sec_per_frame": round(dt / len(frames), 3),
        "mean_nme_pct": {k: round(float(np.mean([r[k] for _, r in rows])), 2) for k in list(mp68.REGIONS) + ["all"]},
        "max_nme_pct_guided_regions": round(float(max(np.mean([r[k] for k in ("brows", "eyes", "mouth")]) for _, r in rows)), 2),
        "mean_refit_rms_px": round(float(np.mean([r["rms_px"] for _, r in rows])), 2),
        "targets_first": rows[0][1]["targets"],
        "per_frame_mouth": [round(r["mouth"], 2) for _, r in rows],
        "per_frame_eyes": [round(r["eyes"], 2) for _, r in rows],
        "au12": [round(r["au12"], 2) for _, r in rows],
        "au6": [round(r["au6"], 2) for _, r in rows],
    }
print(json.dumps(res))
json.dump(res, open("/tmp/i10/guide.json", "w"))
# overlay of the frame where the unguided mouth is worst
worst = want[int(np.argmax(res["unguided"]["per_frame_mouth"]))]
peak = worst
img = cv2.cvtColor(frames[peak], cv2.COLOR_RGB2BGR).copy()
big = cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_CUBIC)
s = 2.0
for guide, col in ((False, (0, 0, 255)), (True, (255, 128, 0))):
    lm, mp = fits[peak][guide]
    for p in lm: cv2.circle(big, (int(p[0]*s), int(p[1]*s)), 3, col, -1)
for p in fits[peak][True][1]: cv2.circle(big, (int(p[0]*s), int(p[1]*s)), 4, (0, 255, 0), 1)
y0 = int(max(0, min(fits[peak][True][1][:, 1]) * s - 60)); x0 = int(max(0, min(fits[peak][True][1][:, 0]) * s - 60))
crop = big[y0:y0 + 560, x0:x0 + 560]
cv2.putText(crop, f"d0 frame {peak}: green MediaPipe-68, red unguided fit, blue guided fit", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
cv2.imwrite("/tmp/i10/guide_overlay.jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
cv2.imwrite("/tmp/i10/guide_overlay.png", crop)
print("overlay frame", peak)
