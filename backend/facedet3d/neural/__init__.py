"""The neural render pass: the paper's rendering network R (Sec. 3.3), fitted per subject.

Public API
- ``fit_subject(asset_dir, cfg=None, photo=None)`` -> (net, subject, report); writes
  ``neural.safetensors`` + ``neural.json`` into the FaceAsset folder.
- ``neural_render(asset_dir, vertices_m, detail, view, size, sh=None)`` -> (H, W, 3) uint8.
- ``view_projection(projection, box, side, yaw_deg=0, pitch_deg=0, centre_units=None)`` -> 3x4.
- ``NeuralConfig`` / ``LossWeights``: network sizes, steps, and every loss weight (0 = off).
CLI: ``facedet3d neural-fit SUBJECT_DIR`` and ``facedet3d neural-render SUBJECT_DIR -o OUT.png``.
"""

from facedet3d.neural.geometry import view_projection
from facedet3d.neural.losses import LossWeights
from facedet3d.neural.model import NeuralConfig


def fit_subject(*args, **kwargs):
    from facedet3d.neural.fit import fit_subject as f

    return f(*args, **kwargs)


def neural_render(*args, **kwargs):
    from facedet3d.neural.render import neural_render as f

    return f(*args, **kwargs)


__all__ = ["LossWeights", "NeuralConfig", "fit_subject", "neural_render", "view_projection"]
