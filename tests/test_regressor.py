"""The 3DDFA_V2 regressor: weights load safely, torch and ONNX agree, decoding conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facedet3d.fit import camera as fit

from facedet3d.fit import regressor
from facedet3d.errors import AssetCorrupt


@pytest.fixture(scope="module")
def both():
    return regressor.Regressor("torch"), regressor.Regressor("onnx")


def _real_crops(photos):
    from facedet3d.fit.photo import load_photo

    crops = []
    for box, name in [((125, 100, 296, 316), "JianzhuGuo"), ((1030, 128, 1258, 436), "trump_hillary")]:
        rgb = load_photo(photos[name]).rgb
        crops.append(fit.crop(rgb, fit.roi_from_box(np.array(box, float)))[0])
    return np.stack(crops)


def test_weights_load_strictly_with_weights_only(bfm):
    sd = regressor.load_state_dict(regressor.assets.asset_path(regressor.WEIGHTS))
    model = regressor.MobileNetV1()
    model.load_state_dict(sd, strict=True)  # raises on any missing/unexpected key
    assert sum(p.numel() for p in model.parameters()) > 800_000


def test_malicious_checkpoint_is_refused(tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > /dev/null",))

    p = tmp_path / "evil.pth"
    torch.save({"state_dict": Evil()}, p, _use_new_zipfile_serialization=True)
    with pytest.raises(AssetCorrupt, match="refused or unreadable"):
        regressor.load_state_dict(p)


def test_torch_onnx_parity(both, photos):
    rt, ro = both
    crops = np.concatenate([_real_crops(photos), np.random.default_rng(0).integers(0, 256, (2, 120, 120, 3), np.uint8)])
    x = rt.preprocess(crops)
    a, b = rt.raw(x), ro.raw(x)
    assert a.shape == b.shape == (4, 62)
    np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-3)
    # and the de-normalised geometry agrees to far below a pixel
    pa, pb = rt(crops[:1]), ro(crops[:1])
    box = np.array([0, 0, 240, 240], float)
    da, db = fit.decode(pa[0], box), fit.decode(pb[0], box)
    np.testing.assert_allclose(da.projection[:2, 3], db.projection[:2, 3], atol=0.05)


def test_input_shape_is_checked(both):
    with pytest.raises(ValueError, match="120"):
        both[0](np.zeros((1, 100, 100, 3), np.uint8))


def test_decode_maps_crop_pixels_to_image_pixels():
    # identity-like params: R = I, t = (x0, y0) so a model point at the origin lands at
    # crop (x0 - 1, 120 - y0); a 240-pixel box at (100, 50) scales crop pixels by 2.
    p = np.zeros(62)
    p[:12] = [1, 0, 0, 31, 0, 1, 0, 70, 0, 0, 1, 0]
    fp = fit.decode(p, np.array([100, 50, 340, 290], float))
    x, y, _ = fit.project(np.zeros((1, 3)), fp.projection)[0]
    assert x == pytest.approx(100 + (30 + 0.5) * 2 - 0.5)
    assert y == pytest.approx(50 + (50 + 0.5) * 2 - 0.5)
    # +Y in the model goes up in the image
    assert fit.project(np.array([[0, 1.0, 0]]), fp.projection)[0, 1] < y


def test_roi_conventions():
    roi = fit.roi_from_box(np.array([100, 100, 200, 220], float))
    side = int(110 * 1.58)
    assert roi[2] - roi[0] == pytest.approx(side) and roi[3] - roi[1] == pytest.approx(side)
    assert (roi[1] + roi[3]) / 2 == pytest.approx(160 + 0.14 * 110)  # shifted down
    pts = np.array([[0, 0], [100, 40]], float)
    roi2 = fit.roi_from_landmarks(pts)
    assert roi2[2] - roi2[0] == pytest.approx(100 * np.sqrt(2))


def test_mirror_permutation_is_an_involution(bfm):
    m = fit.MIRROR_68
    assert sorted(m) == list(range(68)) and (m[m] == np.arange(68)).all()
    lm = bfm.mean[bfm.landmarks]
    # mirrored landmarks of the mean face sit at mirrored x
    np.testing.assert_allclose(lm[:, 0], -lm[m, 0], atol=0.08 * np.ptp(lm[:, 0]))


def test_crop_pads_outside_the_image():
    rgb = np.full((50, 50, 3), 200, np.uint8)
    patch, box = fit.crop(rgb, np.array([-25, -25, 35, 35], float))
    assert patch.shape == (120, 120, 3) and patch[:40, :40].max() == 0 and patch[80:, 80:].min() == 200
