"""Eyeballs for the BFM face: placed where ICT-FaceKit's are, cleared behind the BFM lids.

ICT's eyeballs do not move in any of its 53 shapes (an engine turns them), and their
cornea is baked into the sclera mesh, so the eye is rebuilt here: a UV sphere of ICT's
eyeball radius (sphere fitted to ICT's sclera, mapped through the registration), its faces
split into sclera and iris (iris within ``LIMBUS_DEG`` of the gaze axis; the pupil is a
colour inside ``PUPIL_DEG``), plus a cornea cap (radius ``CORNEA_REL`` of the eyeball's,
meeting the sphere at the limbus, ~1.2 mm proud of it) that carries the highlight.

Clearance: the BFM lids are skin over where the eyeball goes, and the rig closes them
linearly (a shape key moves each vertex on a straight line), so mid-blink the upper lid's
path cuts ~1 mm into any sphere its rest and closed positions lie on. The eyeball is
therefore pushed back along its axis until no eye point lies in front of the lid skin
(outside the removed opening) at rest, and each shape that moves the lids gets a further
push back of the eyeball, linear in the shape's weight, found the same way at weights
0.25..1 — an eye never pokes through a closing lid. The eye-look shapes rotate the eyeball
about its centre (``LOOK_DEG``); a shape key moves points on chords, which shrinks the
eye by 1 - cos(angle/2) (< 2.5 % at 25 degrees) at full weight.

Units: BFM micrometres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facedet3d.rig.geometry import face_normals, project_to_mesh

EYES_VERSION = 1
SCLERA = {"L": (21451, 22221), "R": (23021, 23791)}  # ICT vertex ranges (README table)
IRIS = {"L": (22221, 23021), "R": (23791, 24591)}
LIMBUS_DEG = 31.0  # iris radius ~6 mm on a 12 mm eyeball
PUPIL_DEG = 11.0
CORNEA_REL = 0.65  # cornea radius of curvature / eyeball radius (7.8 mm / 12 mm)
LOOK_DEG = {"Up": 25.0, "Down": 25.0, "In": 30.0, "Out": 30.0}
CLEAR_UM = 300.0  # eye points keep at least this behind the lid skin
STEP_UM = 100.0
EYE_RADIUS_UM = 12_000.0
N_LAT, N_LON = 24, 36
MATERIALS = ("sclera", "iris", "cornea")


@dataclass
class Eye:
    vertices: np.ndarray  # (M, 3) um
    faces: np.ndarray  # (T, 3)
    material: np.ndarray  # (T,) index into MATERIALS
    deltas: np.ndarray  # (K, M, 3) um
    centre: np.ndarray  # (3,) um, at rest
    axis: np.ndarray  # (3,) unit gaze direction at rest
    radius: float  # um
    pushback: float  # um the eyeball sits behind the registered ICT position
    polar_deg: np.ndarray  # (M,) angle of each vertex from the gaze axis (for colours)


def _fit_sphere(p: np.ndarray) -> tuple[np.ndarray, float]:
    a = np.c_[2 * p, np.ones(len(p))]
    sol = np.linalg.lstsq(a, (p ** 2).sum(1), rcond=None)[0]
    return sol[:3], float(np.sqrt(sol[3] + sol[:3] @ sol[:3]))


def _frame(axis: np.ndarray) -> np.ndarray:
    """(3, 3) rows: two unit vectors across the axis (the first ~ +X) and the axis."""
    x = np.array([1.0, 0, 0]) - axis[0] * axis
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(axis, x), axis])


def sphere_mesh(radius: float):
    """Unit-axis (+Z) eyeball and cornea in local coordinates: (verts (M, 3), faces,
    material per face, polar angle per vertex in degrees)."""
    th = np.linspace(0, np.pi, N_LAT + 1)
    ph = np.linspace(0, 2 * np.pi, N_LON, endpoint=False)
    # rings 1..N_LAT-1 plus the two poles
    rings = [(t, p) for t in th[1:-1] for p in ph]
    v = [(0, 0, radius)] + [(radius * np.sin(t) * np.cos(p), radius * np.sin(t) * np.sin(p), radius * np.cos(t))
                            for t, p in rings] + [(0, 0, -radius)]
    v = np.asarray(v)
    f = []
    ring = lambda i, j: 1 + i * N_LON + (j % N_LON)  # noqa: E731
    for j in range(N_LON):
        f.append((0, ring(0, j), ring(0, j + 1)))
    for i in range(N_LAT - 2):
        for j in range(N_LON):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            f += [(a, c, b), (b, c, d)]
    last = len(v) - 1
    for j in range(N_LON):
        f.append((ring(N_LAT - 2, j), last, ring(N_LAT - 2, j + 1)))
    f = np.asarray(f)
    polar = np.degrees(np.arccos(np.clip(v[:, 2] / radius, -1, 1)))
    mat = np.where(polar[f].mean(1) < LIMBUS_DEG, 1, 0)
    # cornea cap: sphere of radius rc through the limbus ring
    lim = np.radians(LIMBUS_DEG)
    rc = CORNEA_REL * radius
    zc = radius * np.cos(lim) - np.sqrt(rc ** 2 - (radius * np.sin(lim)) ** 2)
    psi_l = np.arcsin(radius * np.sin(lim) / rc)
    cv = [(0, 0, zc + rc)]
    n_cap = 8
    for i in range(1, n_cap + 1):
        ps = psi_l * i / n_cap
        cv += [(rc * np.sin(ps) * np.cos(p), rc * np.sin(ps) * np.sin(p), zc + rc * np.cos(ps)) for p in ph]
    cv = np.asarray(cv) * 1.002  # a hair outside the sphere at the limbus: no z-fight
    cf = [(0, 1 + j, 1 + (j + 1) % N_LON) for j in range(N_LON)]
    for i in range(n_cap - 1):
        for j in range(N_LON):
            a, b = 1 + i * N_LON + j, 1 + i * N_LON + (j + 1) % N_LON
            c, d = a + N_LON, b + N_LON
            cf += [(a, c, b), (b, c, d)]
    cf = np.asarray(cf) + len(v)
    cpolar = np.degrees(np.arccos(np.clip(cv[:, 2] / np.linalg.norm(cv, axis=1), -1, 1)))
    return (np.concatenate([v, cv]), np.concatenate([f, cf]), np.r_[mat, np.full(len(cf), 2)],
            np.r_[polar, cpolar])


def _rotation(axis: np.ndarray, deg: float) -> np.ndarray:
    a = np.radians(deg)
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


def look_deltas(names, side: str, verts: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(K, M, 3) eye-look rotations about the centre (model axes: +X the subject's left,
    +Y up, +Z forward). ``In`` turns the gaze towards the nose."""
    out = np.zeros((len(names), len(verts), 3))
    nose = -1.0 if side == "L" else 1.0  # the nose is at -X from the left eye
    dirs = {"Up": np.array([0, 1.0, 0]), "Down": np.array([0, -1.0, 0]),
            "In": np.array([nose, 0, 0]), "Out": np.array([-nose, 0, 0])}
    fwd = np.array([0, 0, 1.0])
    for k, n in enumerate(names):
        n = str(n)
        if not n.startswith("eyeLook") or not n.endswith(f"_{side}"):
            continue
        way = n[len("eyeLook"):-2]
        rot = _rotation(np.cross(fwd, dirs[way]), LOOK_DEG[way])
        out[k] = (verts - centre) @ rot.T + centre - verts
    return out


def poke_depth(pts: np.ndarray, skin_v: np.ndarray, skin_f: np.ndarray, inner: bool = False,
               clear: float = CLEAR_UM) -> float:
    """Largest depth (um, plus ``clear``) by which points (P, 3) break through the
    skin: in front of (or less than ``clear`` behind) a skin triangle that faces forward
    (+Z), counting only points whose closest skin point lies inside the triangle's normal
    prism (not points seen through an opening, whose closest point is on its rim). With
    ``inner`` also points inside the tissue behind a backward-facing skin triangle (the
    lips' inner surface): teeth must stay out of the lips from either side."""
    tri, _, cp, _ = project_to_mesh(pts, skin_v, skin_f, k=12)
    off = pts - cp
    n = face_normals(skin_v, skin_f)[tri]
    along = (off * n).sum(1)
    tangential = np.linalg.norm(off - along[:, None] * n, axis=1)
    ok = tangential < 50.0
    depth = np.where(n[:, 2] > 0.2, along + clear, -np.inf)
    if inner:
        depth = np.maximum(depth, np.where((n[:, 2] < -0.2) & (along < 0), -along + clear, -np.inf))
    depth = depth[ok]
    return float(max(depth.max(), 0.0)) if len(depth) else 0.0


def build_eye(side, ict, reg, bfm_v, kept_faces, rig) -> Eye:
    """The eye on the BFM mean (see the module docstring)."""
    s0, s1 = SCLERA[side]
    i0, i1 = IRIS[side]
    c_ict, _ = _fit_sphere(ict.neutral[s0:s1])
    axis_ict = ict.neutral[i0:i1].mean(0) - c_ict
    centre = reg(c_ict[None])[0]
    axis = reg.rot @ (axis_ict / np.linalg.norm(axis_ict))
    # ICT's sclera sphere maps to a 15 mm radius here (its eyes are large for its face);
    # an adult eyeball is 24 mm across (Bekerman et al. 2014), so use 12 mm on the BFM mean
    radius = EYE_RADIUS_UM
    lv, f, mat, polar = sphere_mesh(radius)
    frame = _frame(axis)
    rest = lv @ frame + centre
    # the lid skin near this eye (the BFM triangles over the eye are removed)
    near = np.linalg.norm(bfm_v - centre, axis=1) < 2.2 * radius
    fsel = kept_faces[near[kept_faces].all(1)]
    ids, inv = np.unique(fsel, return_inverse=True)
    sf = inv.reshape(-1, 3)
    skin = bfm_v[ids]
    # moving the eye back by x along its axis lowers a poke by about x (the lids face
    # forward), so a few rounds of "back by the deepest poke" converge
    push = 0.0
    for _ in range(8):
        need = poke_depth(rest - push * axis, skin, sf)
        if need <= 0:
            break
        push += need + STEP_UM
    rest = rest - push * axis
    centre = centre - push * axis
    names = list(rig.names)
    deltas = look_deltas(names, side, rest, centre)
    for k in range(len(names)):
        dk = rig.deltas[k, ids]
        if np.abs(dk).max() < 200.0:  # the lids hardly move (< 0.2 mm; CLEAR_UM covers it)
            continue
        extra = 0.0
        for _ in range(8):  # the push grows with the weight: a poke at w needs poke / w more
            need = max(poke_depth(rest + w * (deltas[k] - extra * axis), skin + w * dk, sf) / w
                       for w in (0.25, 0.5, 0.75, 1.0))
            if need <= 0:
                break
            extra += need + STEP_UM
        deltas[k] -= extra * axis
    return Eye(vertices=rest, faces=f, material=mat, deltas=deltas.astype(np.float32), centre=centre,
               axis=axis, radius=float(radius), pushback=float(push), polar_deg=polar)
