"""DetP, discriminators, SR and losses with small random networks: shapes, the masking
equations, tiling, loss switches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facedet3d.detail.discriminators import DAge, DExp, DFace
from facedet3d.detail.losses import LossConfig, discriminator_losses, generator_losses, lap_loss, r1_penalty
from facedet3d.detail.nets import DETAIL_SCALE_M, DetP, age_features
from facedet3d.detail.sr import RCAN, upscale_tiled

torch.set_flush_denormal(True)


def inputs(B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, 1, 256, 256, generator=g) * 1e-4, torch.rand(B, 17, generator=g), torch.rand(B, 17, generator=g),
            torch.rand(B, 53, generator=g), torch.from_numpy(age_features([30.0] * B)), torch.zeros(B, 512), torch.zeros(B, 1)]


def batch(B=2):
    d_x, x, y, a, age, fid, flag = inputs(B)
    return {"d_x": d_x, "d_y": d_x.roll(3, -1), "x": x, "y": y, "alpha_x": a, "alpha_y": a.flip(0), "age": age,
            "face_id": fid, "id_flag": flag, "id_target": torch.nn.functional.normalize(torch.randn(B, 512), dim=1),
            "id_known": torch.ones(B, 1)}


def test_detp_shapes_parts_and_equations():
    torch.manual_seed(0)
    net = DetP()
    a = inputs()
    with torch.no_grad():
        out, p = net(*a, return_parts=True)
    assert out.shape == (2, 1, 256, 256)
    for k in ("H_C", "M_C", "D_C", "H_F", "M_F", "D_F"):
        assert p[k].shape == (2, 1, 256, 256)
    d = a[0]
    assert torch.allclose(p["D_C"], p["M_C"] * p["H_C"] + (1 - p["M_C"]) * d, atol=1e-10)  # Eq. 4
    assert torch.allclose(p["D_F"], p["M_F"] * p["H_F"] + (1 - p["M_F"]) * d, atol=1e-10)  # Eq. 5
    assert torch.allclose(out, p["D_C"] + p["D_F"], atol=1e-10)
    # initialisation keeps the input (mask biases, zero H^F head)
    assert (out - d).abs().mean() < 0.1 * d.abs().mean()


def test_detp_rejects_bad_shapes():
    net = DetP()
    a = inputs()
    with pytest.raises(AssertionError, match="d_x"):
        net(a[0][:, :, :128, :128], *a[1:])
    with pytest.raises(AssertionError, match="AU"):
        net(a[0], a[1][:, :5], *a[2:])


def test_age_features_smooth():
    f = age_features([30.0, 31.0, 70.0])
    assert f.shape == (3, 8)
    assert np.abs(f[0] - f[1]).max() < 0.1 < np.abs(f[0] - f[2]).max()


def test_discriminator_heads():
    d = torch.randn(3, 1, 256, 256) * 1e-4
    o = DExp()(d)
    assert o["r"].shape == (3,) and o["r_pix"].shape == (3, 1, 128, 128)
    assert o["au"].shape == (3, 17) and o["alpha"].shape == (3, 53)
    assert DFace()(d)["v"].shape == (3, 512) and DAge()(d)["v"].shape == (3, 8)


def test_sr_shape_and_tiling_equals_untiled():
    torch.manual_seed(1)
    net = RCAN().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # make every path matter
    lr = (np.random.default_rng(0).normal(size=(120, 136)) * 1e-4).astype(np.float32)

    def fn(a):
        with torch.no_grad():
            return net(torch.from_numpy(a)).numpy()

    full = fn(lr[None, None])[0, 0]
    assert full.shape == (480, 544)
    tiled = upscale_tiled(fn, lr, tile=40, margin=net.radius)
    assert np.abs(tiled - full).max() < 1e-4 * np.abs(full).max()
    # too small a margin would differ: the check above is meaningful
    assert np.abs(upscale_tiled(fn, lr, tile=40, margin=2) - full).max() > 1e-3 * np.abs(full).max()


def test_lap_loss_and_r1():
    a = torch.randn(2, 1, 64, 64) * 1e-4
    assert float(lap_loss(a, a)) == 0.0
    assert float(lap_loss(a, a + 1e-5)) > 0
    d = DExp(size=256)
    real = (torch.randn(2, 1, 256, 256) * DETAIL_SCALE_M).requires_grad_(True)
    assert float(r1_penalty(d(real)["r"], real)) > 0


class _Forbidden(torch.nn.Module):
    def forward(self, d):
        raise AssertionError("a switched-off discriminator was called")


def test_loss_switches():
    torch.manual_seed(0)
    b = batch()
    g, de, df, da = DetP(), DExp(), DFace(), DAge()
    full, parts, d_hat = generator_losses(b, g, de, df, da, LossConfig(), step=0)
    assert {"reg", "cyc", "exp_adv", "au", "alpha", "id", "id_adv", "age", "age_adv"} <= set(parts)
    only = LossConfig(**{**{k: 0.0 for k in ("cyc", "exp_adv", "au", "alpha", "id", "id_adv", "age", "age_adv")}})
    tot, parts, _ = generator_losses(b, g, _Forbidden(), _Forbidden(), _Forbidden(), only, step=0)
    assert set(parts) == {"reg"} and torch.isclose(tot, 20.0 * lap_loss(d_hat, b["d_y"]), rtol=1e-4)
    off = LossConfig(**{k: 0.0 for k in ("exp_adv", "id_adv", "age_adv", "d_exp", "d_id", "d_age")})
    tot, parts = discriminator_losses(b, d_hat, _Forbidden(), _Forbidden(), _Forbidden(), off, step=0)
    assert parts == {}
    tot, parts = discriminator_losses(b, d_hat, de, df, da, LossConfig(), step=0)
    assert {"d_adv", "r1", "d_exp", "d_id", "d_age"} <= set(parts)
    tot.backward()
    assert de.head_au.weight.grad is not None
