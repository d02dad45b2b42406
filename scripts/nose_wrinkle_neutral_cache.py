"""Cache the raw per-frame channel vectors (track._read_frames) of the MEAD clips."""
import glob
import os
import pickle
import time
from pathlib import Path

from facedet3d.expression import track
from facedet3d.expression.reader import FaceReader
out = {}
for p in sorted(glob.glob(str(Path(__file__).resolve().parents[1].parent / 'shared/data/faces/spectre/samples/MEAD') + '/*.mp4')):
    t0 = time.perf_counter()
    with FaceReader("video") as r:
        out[p] = list(track._read_frames(p, track.TrackOptions(), r))
    print(p.split('/')[-1], len(out[p]), sum(v is None for _, v in out[p]), round(time.perf_counter() - t0, 1), flush=True)
os.makedirs('/tmp/i10', exist_ok=True)
pickle.dump(out, open('/tmp/i10/mead_raw.pkl', 'wb'))
