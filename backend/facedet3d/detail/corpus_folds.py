"""Fold families of the procedural wrinkle corpus (``detail.corpus``): where each AU's folds
lie on one identity's face, drawn from the 68 landmarks' UV positions.

Units: positions, lengths, widths and jitters in UV units (the map spans about 250 mm of
face, so 0.004 UV is about 1 mm); depths in metres (1e-4 m = 0.1 mm) at full AU drive,
before the identity's depth scale and ``FOLD_DEPTH_GAIN``; angles in radians (0 = along
+u, counter-clockwise toward +v). u = 0.5 is the face's mirror line; side s = -1 is the
subject's right half (u < 0.5), +1 the left.

The random draws happen in a fixed order: a corpus seed must keep giving identical maps
(the shipped weights were trained on them), so neither the families' order nor the order
of the draws inside a family may change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facedet3d.rig.facs import AU_IDS

AU_INDEX = {au: i for i, au in enumerate(AU_IDS)}
# Fold depths below are for a mid-aged face at rest share 0; dynamic wrinkles at full AU
# intensity are deeper than the etched ones (forehead furrows and crow's feet of raised brows
# and a broad smile reach several tenths of a millimetre), hence this common factor.
FOLD_DEPTH_GAIN = 1.6


@dataclass
class Line:
    """One fold: a parabolic arc from its centre along direction ``angle``.

    centre (u, v); angle radians (chord direction); half: chord half-length; sag: offset of
    the arc's middle from the chord (UV units, toward the chord normal); width: Gaussian
    sigma across (UV units); depth: metres at full drive; drivers: ((AU index, gain,
    s_lo, s_hi), ...) — the AU deepens the part of the arc with s/half in [s_lo, s_hi];
    rest: share of the depth present at rest (persistent line); sign: -1 fold, +1 bulge.
    """

    centre: tuple[float, float]
    angle: float
    half: float
    sag: float
    width: float
    depth: float
    drivers: tuple = ()
    rest: float = 0.0
    sign: float = -1.0
    side: int = 0  # -1 subject's right half, +1 left, 0 both/midline (picks the AU gain)


@dataclass(frozen=True)
class Jitter:
    """A normal draw N(0, sigma)."""

    sigma: float


# A drawn quantity: a constant (no draw), a (lo, hi) uniform range, or a Jitter.
Spec = float | tuple[float, float] | Jitter


@dataclass(frozen=True)
class FoldSpec:
    """How a family's lines are drawn (see the module docstring for units).

    half: chord half-length (None: the family sets it from the anatomy); sag: offset of
    the arc's middle; width: Gaussian sigma across; depth: (lo, hi) metres at full drive;
    drivers: ((AU id, gain, s_lo, s_hi), ...), the AUs that deepen the part of the arc with
    s/half in [s_lo, s_hi]; count: (lo, hi) lines per side drawn as rng.integers(lo, hi)
    (so lo..hi-1), before any age term."""

    half: Spec | None
    sag: Spec
    width: Spec
    depth: tuple[float, float]
    drivers: tuple
    count: tuple[int, int] = (1, 2)


@dataclass(frozen=True)
class FoldFamilies:
    """The fold families, one FoldSpec each (placement is in the family functions)."""

    forehead: FoldSpec = FoldSpec(half=(0.17, 0.26), sag=(0.0, 0.02), width=(0.0022, 0.0035), depth=(1.3e-4, 2.2e-4),
                                  drivers=((1, 1.0, -0.45, 0.45), (2, 1.0, -1, -0.3), (2, 1.0, 0.3, 1),
                                           (5, 0.25, -1, 1)), count=(3, 5))
    glabella: FoldSpec = FoldSpec(half=(0.025, 0.04), sag=Jitter(0.004), width=(0.0022, 0.0032),
                                  depth=(1.6e-4, 2.6e-4), drivers=((4, 1.0, -1, 1),), count=(1, 3))
    nasion: FoldSpec = FoldSpec(half=(0.025, 0.04), sag=-0.004, width=0.003, depth=(0.8e-4, 1.4e-4),
                                drivers=((4, 0.6, -1, 1), (9, 1.0, -1, 1)))
    crows_feet: FoldSpec = FoldSpec(half=(0.018, 0.024), sag=Jitter(0.002), width=(0.0018, 0.0026),
                                    depth=(1.2e-4, 2.0e-4), drivers=((6, 1.0, -1, 1), (45, 0.3, -1, 1)), count=(3, 5))
    lower_lid: FoldSpec = FoldSpec(half=None, sag=-0.006, width=(0.0022, 0.003), depth=(0.9e-4, 1.5e-4),
                                   drivers=((6, 0.8, -1, 1), (7, 1.0, -1, 1)), count=(1, 3))
    cheek: FoldSpec = FoldSpec(half=0.04, sag=0.0, width=0.02, depth=(1.0e-4, 2.0e-4),
                               drivers=((6, 0.5, -1, 1), (12, 1.0, -1, 1)))
    bunny: FoldSpec = FoldSpec(half=(0.012, 0.02), sag=Jitter(0.002), width=0.0022, depth=(1.2e-4, 2.0e-4),
                               drivers=((9, 1.0, -1, 1),), count=(2, 4))
    nasolabial: FoldSpec = FoldSpec(half=None, sag=(0.008, 0.02), width=(0.003, 0.0045), depth=(2.0e-4, 3.2e-4),
                                    drivers=((12, 1.0, -1, 1), (10, 0.8, -1, 0.1), (26, 0.25, -1, 1),
                                             (25, 0.15, -1, 1)))
    dimple: FoldSpec = FoldSpec(half=(0.01, 0.016), sag=0.003, width=(0.003, 0.004), depth=(1.5e-4, 2.5e-4),
                                drivers=((14, 1.0, -1, 1),))
    marionette: FoldSpec = FoldSpec(half=(0.025, 0.035), sag=0.004, width=0.003, depth=(1.2e-4, 2.0e-4),
                                    drivers=((15, 1.0, -1, 1),))
    stretch: FoldSpec = FoldSpec(half=(0.02, 0.03), sag=Jitter(0.002), width=0.0022, depth=(0.8e-4, 1.3e-4),
                                 drivers=((20, 1.0, -1, 1),), count=(2, 4))
    perioral: FoldSpec = FoldSpec(half=(0.008, 0.014), sag=0.0, width=0.0016, depth=(0.8e-4, 1.3e-4),
                                  drivers=((23, 1.0, -1, 1),), count=(2, 4))
    mentolabial: FoldSpec = FoldSpec(half=(0.04, 0.06), sag=(0.006, 0.012), width=0.004, depth=(1.8e-4, 2.8e-4),
                                     drivers=((17, 1.0, -1, 1), (15, 0.5, -1, 1)))


FOLDS = FoldFamilies()


@dataclass
class FoldDrawer:
    """Draws one identity's lines: its random generator, depth scale (multiplier of every
    fold depth), resting share, and the list the lines go to."""

    rng: np.random.Generator
    depth_scale: float
    rest: float
    lines: list = field(default_factory=list)

    def jit(self, sigma: float) -> float:
        return self.rng.normal(scale=sigma)

    def draw(self, spec: Spec) -> float:
        if isinstance(spec, Jitter):
            return self.rng.normal(scale=spec.sigma)
        if isinstance(spec, tuple):
            return self.rng.uniform(*spec)
        return spec

    def count(self, spec: FoldSpec):
        return self.rng.integers(*spec.count)

    def line(self, centre, angle: float, spec: FoldSpec, half: float | None = None, sag_sign: float = 1.0,
             sign: float = -1.0, rest: float | None = None, side: int = 0) -> None:
        """Append one line; draws (in this order) the half-length unless given, the sag
        (times ``sag_sign``), the width and the depth."""
        half = self.draw(spec.half) if half is None else half
        sag = sag_sign * self.draw(spec.sag)
        width = self.draw(spec.width)
        depth = self.draw(spec.depth)
        drivers = tuple((AU_INDEX[au], g, lo, hi) for au, g, lo, hi in spec.drivers)
        self.lines.append(Line((float(centre[0]), float(centre[1])), float(angle), float(half), float(sag),
                               float(width), float(depth * self.depth_scale * FOLD_DEPTH_GAIN), drivers,
                               self.rest if rest is None else rest, sign, side))


def brow_v(lm: np.ndarray) -> float:
    """v of the brows' tops (landmarks 19, 24)."""
    return lm[[19, 24], 1].mean()


def forehead(d: FoldDrawer, lm, fa: float, spec: FoldSpec = FOLDS.forehead, above_brow: float = 0.035,
             spacing: tuple[float, float] = (0.0205, 0.0235), top_v: float = 0.985, shrink: float = 0.04) -> None:
    """AU1/AU2 (AU5 a little): one set of long horizontal lines, the first ``above_brow``
    (~9 mm) over the brows, ``spacing`` (~5 mm) apart, up to ``top_v``; each one ``shrink``
    shorter than the one below. AU1 drives the middle, AU2 the sides. More with age."""
    n = int(d.count(spec) + round(2 * fa))
    step = d.rng.uniform(*spacing)
    bv = brow_v(lm)
    for k in range(n):
        v = bv + above_brow + k * step + d.jit(0.001)
        if v > top_v:
            break
        half = d.draw(spec.half) * (1 - shrink * k)
        d.line((0.5 + d.jit(0.004), v), d.jit(0.01), spec, half=half)


def glabella(d: FoldDrawer, lm, fa: float, spec: FoldSpec = FOLDS.glabella) -> None:
    """AU4: near-vertical lines either side of the midline, 4 mm out and 3.5 mm apart,
    tilted inward toward the top (a second one from mid age)."""
    bv = brow_v(lm)
    for s in (-1, 1):
        for k in range(int(d.count(spec) + (fa > 0.5))):
            du = 0.016 + 0.014 * k + d.jit(0.0015)
            c = (0.5 + s * du, bv - 0.005 + d.jit(0.002))
            d.line(c, np.pi / 2 - s * (0.12 + 0.08 * k + d.jit(0.03)), spec, side=s)


def nasion(d: FoldDrawer, lm, spec: FoldSpec = FOLDS.nasion) -> None:
    """AU4 (some) and AU9: the horizontal crease 3 mm above the nasion (landmark 27)."""
    d.line((0.5, lm[27, 1] + 0.012 + d.jit(0.0015)), d.jit(0.02), spec)


def crows_feet(d: FoldDrawer, s: int, eo, fa: float, spec: FoldSpec = FOLDS.crows_feet,
               angles=(-0.5, 0.45, -0.05, 0.2, -0.3, 0.65), gap: float = 0.022) -> None:
    """AU6 (some AU45): a fan of up to six lines from the outer canthus ``eo``, each
    starting ``gap`` (~5 mm) from it, at the fan's ``angles`` (radians from horizontal)."""
    for k in range(min(len(angles), int(d.count(spec) + round(1.5 * fa)))):
        ang = angles[k] + d.jit(0.04)
        half = d.draw(spec.half)
        c = eo + np.array([s * np.cos(ang), np.sin(ang)]) * (gap + half)
        d.line(c, ang if s > 0 else np.pi - ang, spec, half=half, side=s)


def lower_lid(d: FoldDrawer, s: int, eo, ei, lower, spec: FoldSpec = FOLDS.lower_lid) -> None:
    """AU6, AU7: folds under the lower lid, 5 mm below it and 3 mm apart, along the eye
    (0.55 of its width per half-length), tilted slightly with the lid."""
    for k in range(int(d.count(spec))):
        c = (ei + eo) / 2 * np.r_[1, 0] + np.r_[0, lower[1] - 0.02 - 0.013 * k + d.jit(0.001)]
        d.line(c, (0.15 if s > 0 else -0.15) + d.jit(0.02), spec, half=abs(eo[0] - ei[0]) * 0.55, side=s)


def cheek(d: FoldDrawer, s: int, eo, ei, lower, spec: FoldSpec = FOLDS.cheek) -> None:
    """AU6 + AU12: a broad positive bulge 25 mm below the lower lid (no resting share)."""
    d.line(np.array([eo[0] * 0.6 + ei[0] * 0.4, lower[1] - 0.1]), 0.0, spec, sign=1.0, rest=0.0, side=s)


def bunny(d: FoldDrawer, s: int, lm, spec: FoldSpec = FOLDS.bunny) -> None:
    """AU9: short oblique lines on the side of the nasal bridge (8 mm out from the
    midline, from landmark 28 up, ~3 mm apart), running down and outward."""
    for k in range(int(d.count(spec))):
        c = np.array([0.5 + s * (0.033 + d.jit(0.002)), lm[28, 1] + 0.011 * k + d.jit(0.0015)])
        ang = 0.7 + d.jit(0.06)
        d.line(c, -ang if s > 0 else ang, spec, side=s)


def nasolabial(d: FoldDrawer, s: int, ala, corner, spec: FoldSpec = FOLDS.nasolabial) -> None:
    """AU12 (all), AU10 (upper part), AU25/26 (some): from beside the nose wing ``ala``
    (6-7.5 mm out, 1.5-3.5 mm up) to lateral of and below the mouth ``corner`` (6.5-8.5 mm
    out, 7.5-11 mm down), bowed outward."""
    p0 = ala + np.r_[s * d.rng.uniform(0.024, 0.03), d.rng.uniform(0.006, 0.014)]
    p1 = corner + np.r_[s * d.rng.uniform(0.026, 0.034), -d.rng.uniform(0.03, 0.045)]
    ch = p1 - p0
    d.line((p0 + p1) / 2, np.arctan2(ch[1], ch[0]), spec, half=np.linalg.norm(ch) / 2,
           sag_sign=-s * np.sign(ch[1]), side=s)


def dimple(d: FoldDrawer, s: int, corner, spec: FoldSpec = FOLDS.dimple) -> None:
    """AU14: a short near-vertical crease 7-8 mm lateral to the mouth corner."""
    c = corner + np.r_[s * d.rng.uniform(0.028, 0.032), d.jit(0.002)]
    d.line(c, np.pi / 2 + s * 0.2, spec, sag_sign=s, side=s)


def marionette(d: FoldDrawer, s: int, corner, spec: FoldSpec = FOLDS.marionette) -> None:
    """AU15: from 3 mm out and 9 mm below the mouth corner, down and out."""
    d.line(corner + np.r_[s * 0.012, -0.035 + d.jit(0.0015)], -np.pi / 2 + s * 0.25, spec, sag_sign=s, side=s)


def stretch(d: FoldDrawer, s: int, corner, spec: FoldSpec = FOLDS.stretch) -> None:
    """AU20: oblique lines lateral to the mouth (11 mm out, then 4 mm further and 3 mm
    lower each)."""
    for k in range(int(d.count(spec))):
        c = corner + np.r_[s * (0.045 + 0.015 * k + d.jit(0.0015)), -0.02 - 0.012 * k]
        d.line(c, -np.pi / 2 + s * (0.47 + d.jit(0.04)), spec, side=s)


def perioral(d: FoldDrawer, s: int, lm, fa: float, spec: FoldSpec = FOLDS.perioral) -> None:
    """AU23: short vertical lines on the upper lip (halfway between landmarks 33 and 51),
    from 2.5 mm off the midline, 2 mm apart, fanning out. More with age."""
    for k in range(int(d.count(spec) + round(2 * fa))):
        c = np.array([0.5 + s * (0.01 + 0.008 * k + d.jit(0.0015)), (lm[51, 1] + lm[33, 1]) / 2 + d.jit(0.002)])
        d.line(c, np.pi / 2 + s * 0.1 * k + d.jit(0.05), spec, side=s)


def side_folds(d: FoldDrawer, s: int, lm, fa: float) -> None:
    """Every paired family on side ``s``, in the corpus's fixed order."""
    eo = lm[36] if s < 0 else lm[45]  # outer eye corner
    ei = lm[39] if s < 0 else lm[42]  # inner eye corner
    lower = lm[[40, 41]].mean(0) if s < 0 else lm[[46, 47]].mean(0)  # lower lid
    ala, corner = (lm[31] if s < 0 else lm[35]), (lm[48] if s < 0 else lm[54])  # nose wing, mouth corner
    crows_feet(d, s, eo, fa)
    lower_lid(d, s, eo, ei, lower)
    cheek(d, s, eo, ei, lower)
    bunny(d, s, lm)
    nasolabial(d, s, ala, corner)
    dimple(d, s, corner)
    marionette(d, s, corner)
    stretch(d, s, corner)
    perioral(d, s, lm, fa)


def mentolabial(d: FoldDrawer, lm, spec: FoldSpec = FOLDS.mentolabial) -> None:
    """AU17 (AU15 some): an arc between the lower lip (landmark 57) and the chin (8),
    0.45 of the way down, bowed downward."""
    mv = lm[57, 1] * 0.55 + lm[8, 1] * 0.45 + d.jit(0.002)
    d.line((0.5 + d.jit(0.002), mv), d.jit(0.02), spec, sag_sign=-1.0)


def draw_folds(d: FoldDrawer, lm: np.ndarray, fa: float) -> None:
    """All of an identity's AU-driven lines, in the fixed order."""
    forehead(d, lm, fa)
    glabella(d, lm, fa)
    nasion(d, lm)
    for s in (-1, 1):
        side_folds(d, s, lm, fa)
    mentolabial(d, lm)
