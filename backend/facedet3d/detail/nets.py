"""DetP, the detail prediction network of FaceDet3D (paper Sec. 3.2, Fig. 2, Eqs. 2, 4, 5).

    D~(I_y) = DetP(D(I_x), x, y, alpha_e, Age(I_x), FaceID(I_x))

Inputs (batch B, maps 256² at DETAIL_SIZE):
- d_x:      (B, 1, 256, 256) input detail map D(I_x), METRES along the normal, row 0 = v 1.
- x:        (B, 17) source AUs in [0, 1] (``facs.AU_IDS`` order).
- y:        (B, 17) target AUs in [0, 1].
- alpha_e:  (B, 53) target expression parameters: the ARKit blendshape weights of y
            (``facs.blendshape_weights``; see ``data.alpha_e``).
- age:      (B, 8) age features (``age_features``; the subject's age in years encoded).
- face_id:  (B, 512) FaceNet embedding, or zeros when absent;
- id_flag:  (B, 1) 1 when face_id holds a real embedding, 0 on the absent-embedding path.

One feature extractor per input (a strided conv encoder for the map, with two UV coordinate
channels so features know where on the face they are; small MLPs for the vectors, broadcast
over the bottleneck grid; for x and alpha_e also a linear map to spatial features on that
grid, i.e. a learned layout per AU / blendshape), concatenated along channels, fused, then a decoder whose every
stage gets the target AUs y through AdaIN. Coarse head -> H^C, M^C:
``D^C = M^C * H^C + (1 - M^C) * D(I_x)`` (Eq. 4). A refinement module on D^C (with D(I_x),
the decoder's 128² features, and y through AdaIN) -> H^F, M^F: ``D^F = M^F * H^F + (1 - M^F) * D(I_x)`` (Eq. 5).
Output ``D^C + D^F`` (as the paper). Since both stages blend with D(I_x), the output at
initialisation is exactly D(I_x) (mask biases M^C ≈ 0.05, M^F ≈ 0.95, zero-initialised H^C and
H^F heads: D^C + D^F = 0.95 D + 0.05 D), so training starts from "keep the input"; the coarse
mask learns where to erase the input (source-expression folds), the refinement what to add.

Internally maps are divided by DETAIL_SCALE_M (0.1 mm) so activations are O(1).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DETAIL_SIZE = 256
DETAIL_SCALE_M = 1e-4
N_AU = 17
N_ALPHA = 53
AGE_DIM = 8
ID_DIM = 512
_AGE_CENTRES = np.arange(15.0, 80.0, 10.0)  # 7 radial features + 1 linear


def age_features(age_years) -> np.ndarray:
    """(..., 8) float32 age encoding: age/100 and 7 Gaussian bumps (centres 15..75 years,
    sigma 10), so nearby ages get nearby features."""
    a = np.asarray(age_years, np.float64)[..., None]
    rbf = np.exp(-0.5 * ((a - _AGE_CENTRES) / 10.0) ** 2)
    return np.concatenate([a / 100.0, rbf], -1).astype(np.float32)


def coord_channels(n: int, size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(n, 2, size, size): 2u - 1 and 2v - 1 at the texel centres (row 0 = v 1)."""
    t = (torch.arange(size, device=device, dtype=dtype) + 0.5) / size * 2 - 1
    u = t.view(1, 1, 1, size).expand(n, 1, size, size)
    v = (-t).view(1, 1, size, 1).expand(n, 1, size, size)
    return torch.cat([u, v], 1)


def _act():
    return nn.LeakyReLU(0.2, inplace=True)


class AdaIN(nn.Module):
    """Adaptive instance normalisation (Huang & Belongie 2017): per-channel scale and shift
    predicted from a style vector (here the target AUs)."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.affine = nn.Linear(style_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, h: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        g, b = self.affine(style).unsqueeze(-1).unsqueeze(-1).chunk(2, 1)
        return F.instance_norm(h) * (1 + g) + b


class AdaResBlock(nn.Module):
    """conv-AdaIN-act-conv-AdaIN + skip."""

    def __init__(self, ch: int, style_dim: int):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(ch, ch, 3, 1, 1), nn.Conv2d(ch, ch, 3, 1, 1)
        self.n1, self.n2 = AdaIN(ch, style_dim), AdaIN(ch, style_dim)
        self.act = _act()

    def forward(self, h, s):
        r = self.act(self.n1(self.c1(h), s))
        return h + self.n2(self.c2(r), s)


def _mlp(i: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, o), _act(), nn.Linear(o, o), _act())


class DetP(nn.Module):
    def __init__(
        self,
        base_channels: int = 16,   # channels at 128² (doubled at 64² and again at 32²)
        bottleneck_blocks: int = 2,  # AdaIN residual blocks of the decoder at 32²
        vec_channels: int = 32,    # feature width of each vector input's extractor (age: half)
        refine_channels: int = 16,  # channels of the refinement module at 128² (x2 at 64²)
        size: int = DETAIL_SIZE,   # map side the network is built for (coordinate channels)
        spatial_channels: int = 8,  # channels of the spatial x / alpha_e feature maps at size/8
    ):
        super().__init__()
        c1, c2, c3 = base_channels, 2 * base_channels, 4 * base_channels
        self.size = size
        self.register_buffer("coords", coord_channels(1, size), persistent=False)
        # feature extractor of D(I_x): 3 -> c1@128 -> c2@64 -> c3@32
        self.e1 = nn.Sequential(nn.Conv2d(3, c1, 3, 2, 1), _act())
        self.e2 = nn.Sequential(nn.Conv2d(c1, c2, 3, 2, 1), _act())
        self.e3 = nn.Sequential(nn.Conv2d(c2, c3, 3, 2, 1), _act(), nn.Conv2d(c3, c3, 3, 1, 1), _act())
        # feature extractors of the vector inputs
        self.f_x = _mlp(N_AU, vec_channels)
        self.f_alpha = _mlp(N_ALPHA, vec_channels)
        self.f_age = _mlp(AGE_DIM, vec_channels // 2)
        self.f_id = _mlp(ID_DIM + 1, vec_channels)
        # spatial extractors for the expression inputs: a learned map per AU / blendshape at the
        # bottleneck grid (broadcast vectors alone would be removed by the instance norms)
        g = size // 8
        self.grid = g
        self.f_x_map = nn.Linear(N_AU, spatial_channels * g * g)
        self.f_alpha_map = nn.Linear(N_ALPHA, spatial_channels * g * g)
        for lin in (self.f_x_map, self.f_alpha_map):
            nn.init.normal_(lin.weight, std=0.1)
            nn.init.zeros_(lin.bias)
        self.fuse = nn.Sequential(nn.Conv2d(c3 + 3 * vec_channels + vec_channels // 2 + 2 * spatial_channels, c3, 1),
                                  _act())
        # decoder, target AUs through AdaIN
        self.style = _mlp(N_AU, 64)
        self.blocks = nn.ModuleList(AdaResBlock(c3, 64) for _ in range(bottleneck_blocks))
        self.r3 = nn.Conv2d(c3, c2, 1)
        self.d2 = nn.Conv2d(2 * c2, c2, 3, 1, 1)
        self.n2 = AdaIN(c2, 64)
        self.r2 = nn.Conv2d(c2, c1, 1)
        self.d1 = nn.Conv2d(2 * c1 + 4, c1, 3, 1, 1)  # + D(I_x) space-to-depth (4 = 2x2 texels)
        self.n1 = AdaIN(c1, 64)
        self.head_c = nn.Conv2d(c1, 8, 3, 1, 1)  # (H^C, M^C) x 2x2 sub-texels -> pixel shuffle
        # refinement module on D^C (and D(I_x)), space-to-depth at 128², with the decoder's
        # 128² features, y through AdaIN
        r1, r2 = refine_channels, 2 * refine_channels
        self.register_buffer("coords_half", coord_channels(1, size // 2), persistent=False)
        self.q1 = nn.Sequential(nn.Conv2d(10 + c1, r1, 3, 1, 1), _act())  # + the decoder's 128² features
        self.q2 = nn.Sequential(nn.Conv2d(r1, r2, 3, 2, 1), _act())
        self.qb = AdaResBlock(r2, 64)
        self.qr2 = nn.Conv2d(r2, r1, 1)
        self.qd1 = nn.Conv2d(2 * r1 + 8, r1, 3, 1, 1)
        self.head_f = nn.Conv2d(r1, 8, 3, 1, 1)  # (H^F, M^F) x 2x2 sub-texels
        self.act = _act()
        with torch.no_grad():
            self.head_c.weight[:4].zero_()  # H^C starts at 0: the coarse mask then learns what to erase
            self.head_c.bias.copy_(torch.tensor([0.0] * 4 + [-3.0] * 4))
            self.head_f.weight.zero_()
            self.head_f.bias.copy_(torch.tensor([0.0] * 4 + [3.0] * 4))

    def forward(self, d_x, x, y, alpha_e, age, face_id, id_flag, return_parts: bool = False):
        B = d_x.shape[0]
        S = self.size
        assert d_x.shape == (B, 1, S, S), f"d_x must be (B, 1, {S}, {S}), got {tuple(d_x.shape)}"
        assert x.shape == (B, N_AU) and y.shape == (B, N_AU), "x and y must be (B, 17) AU vectors"
        assert alpha_e.shape == (B, N_ALPHA), f"alpha_e must be (B, {N_ALPHA})"
        assert age.shape == (B, AGE_DIM), f"age must be (B, {AGE_DIM}) age features"
        assert face_id.shape == (B, ID_DIM) and id_flag.shape == (B, 1), "face_id (B, 512), id_flag (B, 1)"
        d = d_x / DETAIL_SCALE_M
        xy = self.coords.expand(B, 2, S, S)
        h1 = self.e1(torch.cat([d, xy], 1))
        h2 = self.e2(h1)
        h3 = self.e3(h2)
        vec = torch.cat([self.f_x(x), self.f_alpha(alpha_e), self.f_age(age),
                         self.f_id(torch.cat([face_id * id_flag, id_flag], 1))], 1)
        g = self.grid
        sp = torch.cat([self.f_x_map(x).view(B, -1, g, g), self.f_alpha_map(alpha_e).view(B, -1, g, g)], 1)
        h = self.fuse(torch.cat([h3, vec[:, :, None, None].expand(-1, -1, g, g), sp], 1))
        s = self.style(y)
        for blk in self.blocks:
            h = blk(h, s)
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
        h = self.act(self.n2(self.d2(torch.cat([up(self.r3(h)), h2], 1)), s))
        d4 = F.pixel_unshuffle(d, 2)
        h = self.act(self.n1(self.d1(torch.cat([up(self.r2(h)), h1, d4], 1)), s))
        hc, mc = F.pixel_shuffle(self.head_c(h), 2).chunk(2, 1)
        mc = torch.sigmoid(mc)
        d_c = mc * hc + (1 - mc) * d  # Eq. 4
        q_in = torch.cat([F.pixel_unshuffle(torch.cat([d_c, d], 1), 2), self.coords_half.expand(B, 2, S // 2, S // 2)], 1)
        g1 = self.q1(torch.cat([q_in, h], 1))
        g = self.qb(self.q2(g1), s)
        g = self.act(self.qd1(torch.cat([up(self.qr2(g)), g1, q_in[:, :8]], 1)))
        hf, mf = F.pixel_shuffle(self.head_f(g), 2).chunk(2, 1)
        mf = torch.sigmoid(mf)
        d_f = mf * hf + (1 - mf) * d  # Eq. 5
        out = (d_c + d_f) * DETAIL_SCALE_M
        if return_parts:
            return out, {"H_C": hc * DETAIL_SCALE_M, "M_C": mc, "D_C": d_c * DETAIL_SCALE_M,
                         "H_F": hf * DETAIL_SCALE_M, "M_F": mf, "D_F": d_f * DETAIL_SCALE_M}
        return out


def config_of(net: nn.Module) -> dict:
    """Constructor arguments recorded by ``build`` (stored in the weights' metadata)."""
    return dict(getattr(net, "_config", {}))


def build(cls, **kwargs):
    net = cls(**kwargs)
    net._config = kwargs
    return net
