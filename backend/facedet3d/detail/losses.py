"""DetP's training losses (paper Eqs. 7-18; supplementary Eqs. 3-7).

Every term has a weight in ``LossConfig``; a weight of 0 switches the term off and its
computation is skipped. Map-space losses work on maps divided by DETAIL_SCALE_M (0.1 mm).

Generator (DetP) side, for D~y = DetP(Dx, x, y, alpha_y, age, id):
  reg      LapLoss(D~y, Dy) on paired data (Eq. 18)
  cyc      LapLoss(DetP(D~y, y, x, alpha_x, age, id), Dx) (supp. Eq. 5)
           Both LapLosses weight texels by ``change_weight`` (1 + change_gain where the pair's
           expression changes the map): the folds an AU adds are a small share of a map whose
           static part (pores, persistent lines) is copied for free, and an unweighted loss
           is content to copy the input (change_gain = 0 gives the paper's plain LapLoss).
  exp_adv  -log D_Exp^r(D~y), non-saturating, global and per-texel heads (Eq. 9)
  au       ||D_Exp^AU(D~y) - y||² (Eq. 10);  alpha  ||D_Exp^alpha(D~y) - alpha_y||² (Eq. 11)
  id       ||D_Face^ID(D~y) - FaceID||² (Eq. 13), only for samples with an identity code;
  id_adv   -log D_Face^r(D~y) (Eq. 14)
  age      ||D_Age^Age(D~y) - age||² (Eq. 16);  age_adv  -log D_Age^r(D~y) (Eq. 17)
Discriminator side, real maps Dx and Dy with their labels:
  d_adv    non-saturating loss of D_Exp, D_Face, D_Age (Eq. 7), plus R1 (gamma / 2) on real maps
           every ``r1_every`` steps (lazy regularisation, scaled by r1_every)
  d_exp    ||D_Exp^AU - x||² + ||D_Exp^alpha - alpha_x||² (Eq. 8)
  d_id     ||D_Face^ID - FaceID||² (Eq. 12);  d_age  ||D_Age^Age - age||² (Eq. 15)
Squared errors are averaged over vector dimensions (so AU, alpha_e, ID and age losses are on
comparable scales); log-sigmoid terms use softplus.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from facedet3d.detail.nets import DETAIL_SCALE_M


@dataclass
class LossConfig:
    reg: float = 20.0
    cyc: float = 5.0
    exp_adv: float = 0.05
    au: float = 1.0
    alpha: float = 0.5
    id: float = 0.1
    id_adv: float = 0.02
    age: float = 0.2
    age_adv: float = 0.02
    d_adv: float = 1.0
    r1_gamma: float = 1.0
    r1_every: int = 8
    cyc_every: int = 2     # the cycle pass (a second DetP pass) every N steps, weight x N
    d_every: int = 2       # discriminator updates every N steps
    d_exp: float = 1.0
    d_id: float = 1.0
    d_age: float = 1.0
    lap_levels: int = 4
    change_gain: float = 9.0   # extra LapLoss weight where D_x and D_y differ (0 = plain LapLoss)
    change_scale_m: float = 1e-5  # |D_y - D_x| (metres) at which a texel gets the full extra weight

    def to_dict(self) -> dict:
        return asdict(self)


_G5 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    k = (_G5[:, None] * _G5[None, :]).to(x)[None, None]
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k)


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels (finest first) and the low-pass residual of (B, 1, H, W) maps."""
    out = []
    cur = x
    for _ in range(levels - 1):
        low = _blur(cur)
        down = low[:, :, ::2, ::2]
        up = F.interpolate(down, size=cur.shape[-2:], mode="bilinear", align_corners=False)
        out.append(cur - up)
        cur = down
    out.append(cur)
    return out


def lap_loss(a: torch.Tensor, b: torch.Tensor, levels: int = 4, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Laplacian-pyramid L1 (Ling & Okada 2006; Bojanowski et al. 2018): sum over levels of the
    mean absolute difference, in units of DETAIL_SCALE_M (so per-texel weight grows 4x per
    coarser level, as the 2^(2j)-weighted sum-norm of Bojanowski et al.).

    weight: optional (B, 1, H, W) texel weights (``change_weight``); each level uses them
    average-pooled to its size, normalised to mean 1 per level."""
    pa = laplacian_pyramid(a / DETAIL_SCALE_M, levels)
    pb = laplacian_pyramid(b / DETAIL_SCALE_M, levels)
    if weight is None:
        return sum((x - y).abs().mean() for x, y in zip(pa, pb))
    total, w = 0.0, weight
    for x, y in zip(pa, pb):
        if w.shape[-2:] != x.shape[-2:]:
            w = F.adaptive_avg_pool2d(w, x.shape[-2:])
        total = total + ((x - y).abs() * w).mean() / w.mean().clamp_min(1e-8)
    return total


def change_weight(d_x: torch.Tensor, d_y: torch.Tensor, gain: float, scale_m: float) -> torch.Tensor | None:
    """(B, 1, H, W) texel weights 1 + gain * min(|D_y - D_x| / scale_m, 1), the change
    dilated by 2 texels so a fold's shoulders count too; None when ``gain`` is 0."""
    if gain <= 0:
        return None
    c = F.max_pool2d((d_y - d_x).abs(), 5, 1, 2)
    return 1.0 + gain * (c / scale_m).clamp(max=1.0)


def g_nonsat(logits: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(D(fake)) (Eqs. 9, 14, 17)."""
    return F.softplus(-logits).mean()


def d_nonsat(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(D(real)) - log(1 - sigmoid(D(fake))) (Eq. 7, first two terms)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def r1_penalty(real_logits: torch.Tensor, real_input: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||² on real maps (Mescheder et al. 2018), gradient w.r.t. the map in
    DETAIL_SCALE_M units."""
    (g,) = torch.autograd.grad(real_logits.sum(), real_input, create_graph=True)
    return (g * DETAIL_SCALE_M).pow(2).flatten(1).sum(1).mean()


def sq(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per sample (over dimensions), averaged over the (masked) batch."""
    e = (a - b).pow(2).flatten(1).mean(1)
    if mask is None:
        return e.mean()
    m = mask.reshape(-1).to(e)
    return (e * m).sum() / m.sum().clamp_min(1.0)


def generator_losses(batch: dict, detp, dexp, dface, dage, cfg: LossConfig, step: int = 0):
    """DetP's total loss, its named parts (floats) and the prediction D~y. ``batch`` holds
    tensors d_x, d_y, x, y, alpha_x, alpha_y, age, face_id, id_flag, id_target, id_known
    (see data.py)."""
    b = batch
    parts: dict[str, torch.Tensor] = {}
    inp = (b["face_id"], b["id_flag"])
    d_hat = detp(b["d_x"], b["x"], b["y"], b["alpha_y"], b["age"], *inp)
    w = change_weight(b["d_x"], b["d_y"], cfg.change_gain, cfg.change_scale_m) if (cfg.reg or cfg.cyc) else None
    if cfg.reg:
        parts["reg"] = lap_loss(d_hat, b["d_y"], cfg.lap_levels, w) * b.get("paired_w", 1.0)
    if cfg.cyc and step % max(cfg.cyc_every, 1) == 0:
        d_back = detp(d_hat, b["y"], b["x"], b["alpha_x"], b["age"], *inp)
        parts["cyc"] = lap_loss(d_back, b["d_x"], cfg.lap_levels, w)
    if cfg.exp_adv or cfg.au or cfg.alpha:
        o = dexp(d_hat)
        if cfg.exp_adv:
            parts["exp_adv"] = g_nonsat(o["r"]) + g_nonsat(o["r_pix"])
        if cfg.au:
            parts["au"] = sq(o["au"], b["y"])
        if cfg.alpha:
            parts["alpha"] = sq(o["alpha"], b["alpha_y"])
    if cfg.id or cfg.id_adv:
        o = dface(d_hat)
        if cfg.id:
            parts["id"] = sq(o["v"], b["id_target"], b["id_known"]) * 100.0  # unit vectors: per-dim ~1/512
        if cfg.id_adv:
            parts["id_adv"] = g_nonsat(o["r"])
    if cfg.age or cfg.age_adv:
        o = dage(d_hat)
        if cfg.age:
            parts["age"] = sq(o["v"], b["age"])
        if cfg.age_adv:
            parts["age_adv"] = g_nonsat(o["r"])
    total = sum(getattr(cfg, k) * v * (max(cfg.cyc_every, 1) if k == "cyc" else 1) for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}, d_hat


def discriminator_losses(batch: dict, d_fake: torch.Tensor, dexp, dface, dage, cfg: LossConfig,
                         step: int) -> tuple[torch.Tensor, dict]:
    """Loss of the three discriminators on real maps (d_x with labels x, and d_y with y) and
    DetP's detached prediction ``d_fake``."""
    b = batch
    real = torch.cat([b["d_x"], b["d_y"]], 0)
    lab_au = torch.cat([b["x"], b["y"]], 0)
    lab_alpha = torch.cat([b["alpha_x"], b["alpha_y"]], 0)
    age = torch.cat([b["age"], b["age"]], 0)
    idt = torch.cat([b["id_target"], b["id_target"]], 0)
    idk = torch.cat([b["id_known"], b["id_known"]], 0)
    do_r1 = cfg.r1_gamma > 0 and cfg.d_adv > 0 and step % max(cfg.r1_every, 1) == 0
    if do_r1:
        real = real.detach().requires_grad_(True)
    fake = d_fake.detach()
    parts: dict[str, torch.Tensor] = {}
    adv = 0.0
    r1 = 0.0
    for name, net in (("exp", dexp), ("face", dface), ("age", dage)):
        use_adv = cfg.d_adv > 0 and {"exp": cfg.exp_adv, "face": cfg.id_adv, "age": cfg.age_adv}[name] > 0
        use_reg = {"exp": cfg.d_exp, "face": cfg.d_id, "age": cfg.d_age}[name] > 0
        if not (use_adv or use_reg):
            continue
        o_real = net(real)
        if use_adv:
            o_fake = net(fake)
            adv = adv + d_nonsat(o_real["r"], o_fake["r"])
            if name == "exp":
                adv = adv + d_nonsat(o_real["r_pix"], o_fake["r_pix"])
            if do_r1:
                logit = o_real["r"] + (o_real["r_pix"].mean((1, 2, 3)) if name == "exp" else 0)
                r1 = r1 + r1_penalty(logit, real)
        if use_reg and name == "exp":
            parts["d_exp"] = sq(o_real["au"], lab_au) + sq(o_real["alpha"], lab_alpha)
        elif use_reg and name == "face":
            parts["d_id"] = sq(o_real["v"], idt, idk) * 100.0
        elif use_reg and name == "age":
            parts["d_age"] = sq(o_real["v"], age)
    if not isinstance(adv, float):
        parts["d_adv"] = adv
    total = sum(getattr(cfg, k) * v for k, v in parts.items())
    if not isinstance(r1, float):
        parts["r1"] = r1
        total = total + cfg.r1_gamma / 2 * cfg.r1_every * r1
    if isinstance(total, float):
        total = torch.zeros((), requires_grad=True)
    return total, {k: float(v.detach()) for k, v in parts.items()}
