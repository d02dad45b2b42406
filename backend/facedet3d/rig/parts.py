"""ICT-FaceKit's head parts carried onto the BFM mean face, with their 53 shape motions.

Built once per asset version and cached (like the rig, ``rig.transfer``):

- **head**: the ICT skin (its "Face" and "Head and Neck" geometry) less everything the BFM
  face covers — an ICT vertex is covered when its closest point on the BFM lies inside a
  BFM triangle (not beyond the border) within 15 mm — keeping the largest connected piece.
  A strip of triangles (``seam.zip_loops``) joins the piece's inner border to the BFM's
  outer border; the strip's outer vertices are *copies of the BFM border vertices*
  (``seam_bfm`` holds their BFM ids), so the head meets the face exactly, in every shape.
- **mouth**: ICT's mouth socket, joined the same way to the BFM's own mouth slit (the
  BFM no-neck mesh has a 78-vertex opening between the lips).
- **teeth_upper / teeth_lower**: ICT's teeth and its gums-and-tongue mesh, split by
  whether ``jawOpen`` moves them (the tongue and lower gums ride on the lower jaw and
  are merged into ``teeth_lower``; the upper gums into ``teeth_upper``). ICT's lips are
  thinner than the BFM's, so the teeth are cleared behind the lip skin like the eyes
  (``_clear_teeth``: pushed back at rest by the least that clears plus ``TEETH_SLACK_UM``,
  and per shape, linearly in its weight, where a shape would still bring a tooth through
  a lip). The upper teeth do not move in any shape but for that clearance (ICT's do not).
- **eye_L / eye_R**: an eyeball of ICT's size and centre (sphere fitted to ICT's sclera,
  through the registration), built here as a UV sphere with sclera and iris faces plus a
  cornea cap, pushed back until the BFM lids clear it (``rig.eyes``). The BFM skin over
  each eye (``transfer`` openings) is removed from the face when the parts are shown:
  ``face_hidden`` lists those BFM triangles.

Motion: an ICT vertex's shape displacement ``d`` (cm) becomes ``L d`` (``L`` the
similarity's linear part, cm -> um); head and socket vertices within ``BLEND_MM`` of the
seam blend towards the motion of the BFM border they join (exactly equal on the strip),
so the strip never tears. Eyes rotate with the eye-look shapes (``rig.eyes``).

Units: BFM micrometres, on the BFM mean (``rig.head`` scales everything to a subject).
"""

from __future__ import annotations

import functools
import hashlib
import time

import numpy as np
from scipy.spatial import cKDTree

from facedet3d.assets import bfm as bfm_mod
from facedet3d.assets import files as assets
from facedet3d.assets import ict as ict_mod
from facedet3d.rig import eyes as eyes_mod
from facedet3d.rig import seam
from facedet3d.rig.geometry import face_normals, loop_chains, loop_sides, project_to_mesh, smoothstep
from facedet3d.rig.register import register
from facedet3d.rig.transfer import RIG_VERSION, load_rig

PARTS_VERSION = 7  # bump when this algorithm changes (part of the cache key)
PART_NAMES = ("head", "eye_L", "eye_R", "teeth_upper", "teeth_lower", "mouth")
MERGED = {"teeth_upper": ("gums",), "teeth_lower": ("tongue",)}  # -> Blender facedet3d_parts
# ICT polygon index ranges (ICT-FaceKit README, "Face Model Topology"; half-open)
SKIN_POLYS = (0, 11144)  # Face + Head and Neck
SOCKET_POLYS = (11144, 13226)  # mouth socket
GUMS_POLYS = (14034, 17006)  # gums and tongue
TEETH_POLYS = (17006, 21496)
COVER_MM = 15.0  # ICT skin within this of the BFM's inside is under the face: cut away
TANGENT_MM = 0.5  # ... "inside": closest point less than this off the normal line
BLEND_MM = 12.0  # head/socket motion blends to the BFM border's over this distance
TEETH_SLACK_UM = 800.0  # teeth sit this much further back than the least that clears the lips
TEETH_CLEAR_UM = 100.0  # and keep at least this behind the lip skin in every shape
JAW_MOVES_CM = 0.05  # a gums/teeth vertex moving more than this in jawOpen is lower jaw


def _sub_mesh(tris: np.ndarray):
    """(vertex ids (M,), faces re-indexed (T, 3)) of a triangle subset of a larger mesh."""
    ids, inv = np.unique(tris, return_inverse=True)
    return ids, inv.reshape(-1, 3)


def _cut_head(warped: np.ndarray, tris: np.ndarray, bfm_v: np.ndarray, bfm_f: np.ndarray) -> np.ndarray:
    """The ICT skin triangles the BFM face does not cover (largest piece), see module doc."""
    ids = np.unique(tris)
    tri, bary, cp, dist = project_to_mesh(warped[ids], bfm_v, bfm_f)
    off = warped[ids] - cp
    n = face_normals(bfm_v, bfm_f)[tri]
    tangential = np.linalg.norm(off - (off * n).sum(1, keepdims=True) * n, axis=1)
    covered = np.zeros(len(warped), bool)
    covered[ids] = (dist < COVER_MM * 1000) & (tangential < TANGENT_MM * 1000)
    keep = tris[~covered[tris].any(1)]
    return keep[seam.largest_component(keep, len(warped))]


def _join(verts: np.ndarray, faces: np.ndarray, loop_bfm: np.ndarray, bfm_v: np.ndarray,
          bfm_normals: np.ndarray, corners: bool = False):
    """Append the seam strip to a part (verts (M, 3), faces) joining its border loop nearest
    to the BFM loop ``loop_bfm`` (BFM ids). Returns (verts, faces, seam_local_ids): the BFM
    border copies are appended after the part's vertices. ``corners``: both loops' least-
    and largest-x vertices meet (the mouth: upper lip to upper rim, lower to lower)."""
    loops = seam.boundary_loops(faces)
    gap = [cKDTree(bfm_v[loop_bfm]).query(verts[lp])[0].mean() for lp in loops]
    inner = loops[int(np.argmin(gap))]
    m = len(verts)
    anchors = None
    if corners:
        xa, xb = bfm_v[loop_bfm, 0], verts[inner, 0]
        anchors = sorted([(int(xa.argmin()), int(xb.argmin())), (int(xa.argmax()), int(xb.argmax()))])
    strip = seam.zip_loops(bfm_v[loop_bfm], verts[inner], anchors)
    # strip ids: 0..La-1 -> the appended copies, La.. -> the part's loop vertices
    la = len(loop_bfm)
    mapped = np.where(strip < la, m + strip, inner[np.clip(strip - la, 0, len(inner) - 1)])
    out_v = np.concatenate([verts, bfm_v[loop_bfm]])
    # orient the strip like the face: its normals agree with the BFM border's normals
    n = face_normals(out_v, mapped)
    if (n * bfm_normals[loop_bfm[strip.min(1)]]).sum() < 0:
        mapped = mapped[:, ::-1]
    return out_v, np.concatenate([faces, mapped]), np.arange(m, m + la), inner


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    out = np.zeros_like(v)
    for c in range(3):
        np.add.at(out, f[:, c], fn)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-30)


def _blend_to_seam(verts, deltas, seam_ids, seam_deltas, sides=None):
    """In place: motion of vertices near the seam copies -> the nearest copy's motion.
    ``sides`` (vertex sides (M,), copy sides (S,), +1/-1): only copies of the vertex's own
    side count (the mouth socket: the lips' slit is 1 mm tall at rest, so a lower-lip
    socket vertex may lie nearest an upper-lip copy, stay up when the jaw drops and make
    a spike across the open mouth)."""
    d, j = cKDTree(verts[seam_ids]).query(verts)
    if sides is not None:
        for s in (1.0, -1.0):
            own = np.flatnonzero(sides[1] == s)
            sel = sides[0] == s
            d[sel], k = cKDTree(verts[seam_ids[own]]).query(verts[sel])
            j[sel] = own[k]
    a = (1.0 - smoothstep(d / 1000.0, 0.0, BLEND_MM)).astype(np.float32)
    deltas[:] = a[None, :, None] * seam_deltas[:, j] + (1 - a[None, :, None]) * deltas
    deltas[:, seam_ids] = seam_deltas


def _clear_teeth(out, name, bv, faces, deltas, centre) -> tuple[float, np.ndarray]:
    """In place: push a teeth part back (-Z) until no tooth or gum point is in front of the
    lip skin at rest, then per shape (linear in its weight, like the eyes) until none is
    at weights 0.25..1. Returns the rest push (um) and the per-shape pushes (K,) um at
    weight 1. ICT's lips are thinner than the BFM's, so its teeth can sit in front of the
    BFM's inner lip skin."""
    near = np.linalg.norm(bv - centre, axis=1) < 45_000
    fsel = faces[near[faces].all(1)]
    ids, inv = np.unique(fsel, return_inverse=True)
    sf, skin = inv.reshape(-1, 3), bv[ids]
    v, d = out[f"{name}_vertices"].astype(np.float64), out[f"{name}_deltas"]
    back = np.array([0.0, 0.0, 1.0])
    push = 0.0
    for _ in range(8):
        need = eyes_mod.poke_depth(v - push * back, skin, sf, inner=True)
        if need <= 0:
            break
        push += need + eyes_mod.STEP_UM
    # slack: a small rest push spares the large per-shape pushes that near-touches at low
    # weight would need (a 0.1 mm touch at weight 0.25 costs 0.4 mm at full weight)
    push += TEETH_SLACK_UM
    v -= push * back
    extras = np.zeros(len(d), np.float32)
    for k in range(len(d)):
        if np.abs(d[k]).max() < 200.0 and np.abs(deltas[k, ids]).max() < 200.0:
            continue
        extra = 0.0
        for _ in range(8):
            need = max(eyes_mod.poke_depth(v + w * (d[k] - extra * back), skin + w * deltas[k, ids], sf,
                                           inner=True, clear=TEETH_CLEAR_UM) / w for w in (0.25, 0.5, 0.75, 1.0))
            if need <= 0:
                break
            extra += need + eyes_mod.STEP_UM
        d[k] -= np.float32(extra) * back.astype(np.float32)
        extras[k] = extra
    out[f"{name}_vertices"] = v.astype(np.float32)
    return push, extras


def build_parts(progress=None) -> dict[str, np.ndarray]:
    """Run the transfer of the parts. Returns the cached arrays (see ``load_parts``)."""
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    bfm, ict, rig = bfm_mod.load_bfm(), ict_mod.load_ict(), load_rig()
    bv = bfm.mean.astype(np.float64)
    bn = _vertex_normals(bv, bfm.faces)
    reg = register(bfm, ict)
    warped = reg(ict.neutral)
    lin = reg.linear().astype(np.float32)
    say(f"registration done ({time.perf_counter() - t0:.1f} s)")
    polys = ict.tri_poly
    out: dict[str, np.ndarray] = {}

    def motion(ids):  # (K, M, 3) um
        return ict.deltas[:, ids] @ lin.T

    def put(name, v, f, d):
        out[f"{name}_vertices"], out[f"{name}_faces"] = v.astype(np.float32), f.astype(np.int32)
        out[f"{name}_deltas"] = d.astype(np.float32)

    # head: ICT skin not under the face, joined to the BFM's outer border
    loops = seam.boundary_loops(bfm.faces)
    outer = max(loops, key=len)
    mouth_loop = min(loops, key=len)
    skin = ict.triangles[(polys >= SKIN_POLYS[0]) & (polys < SKIN_POLYS[1])]
    ids, f = _sub_mesh(_cut_head(warped, skin, bv, bfm.faces))
    v, f, seam_ids, _ = _join(warped[ids], f, outer, bv, bn)
    d = np.concatenate([motion(ids), rig.deltas[:, outer]], 1)
    _blend_to_seam(v, d, seam_ids, rig.deltas[:, outer])
    put("head", v, f, d)
    out["head_seam_bfm"] = outer
    say(f"head cut and joined ({time.perf_counter() - t0:.1f} s)")

    # mouth socket joined to the BFM mouth slit
    ids, f = _sub_mesh(ict.triangles[(polys >= SOCKET_POLYS[0]) & (polys < SOCKET_POLYS[1])])
    v, f, seam_ids, rim = _join(warped[ids], f, mouth_loop, bv, bn, corners=True)
    d = np.concatenate([motion(ids), rig.deltas[:, mouth_loop]], 1)
    # the socket's palate goes with the upper lip, its floor with the lower (nearer rim half)
    socket_side = loop_sides(v, f, np.arange(len(ids)), rim)
    up, _ = loop_chains(bv, mouth_loop)
    copy_side = np.where(np.isin(mouth_loop, up), 1.0, -1.0)
    _blend_to_seam(v, d, seam_ids, rig.deltas[:, mouth_loop], (np.r_[socket_side, copy_side], copy_side))
    put("mouth", v, f, d)
    out["mouth_seam_bfm"] = mouth_loop

    # teeth and gums/tongue: upper (still in jawOpen) and lower jaw
    jaw = ict.deltas[list(ict.names).index("jawOpen")]
    is_gum = (polys >= GUMS_POLYS[0]) & (polys < GUMS_POLYS[1])
    sel_in = is_gum | ((polys >= TEETH_POLYS[0]) & (polys < TEETH_POLYS[1]))
    inside, gum = ict.triangles[sel_in], is_gum[sel_in]
    lower_tri = (np.linalg.norm(jaw[inside], axis=2) > JAW_MOVES_CM).any(1)
    for name, sel in (("teeth_upper", ~lower_tri), ("teeth_lower", lower_tri)):
        ids, f = _sub_mesh(inside[sel])
        put(name, warped[ids], f, motion(ids))
        out[f"{name}_material"] = gum[sel].astype(np.int8)  # 0 teeth, 1 gums (and tongue)
    # the upper teeth stay on the skull in every shape (as ICT's do): the rig's lips part at
    # the slit (``transfer._fill_opening``), so an open mouth shows them under the upper lip
    mouth_c = bv[mouth_loop].mean(0)
    for name in ("teeth_upper", "teeth_lower"):
        rest, per_shape = _clear_teeth(out, name, bv, bfm.faces, rig.deltas, mouth_c)
        out[f"{name}_pushback_um"], out[f"{name}_shape_push_um"] = np.float64(rest), per_shape

    # eyes (and the BFM skin over them, hidden when the parts are shown)
    hidden = np.zeros(len(bfm.faces), bool)
    for side, key in (("L", "eye_l"), ("R", "eye_r")):
        hidden |= rig.openings[key][bfm.faces].any(1)
    out["face_hidden"] = np.flatnonzero(hidden).astype(np.int32)
    kept_faces = bfm.faces[~hidden]
    for side in ("L", "R"):
        eye = eyes_mod.build_eye(side, ict, reg, bv, kept_faces, rig)
        put(f"eye_{side}", eye.vertices, eye.faces, eye.deltas)
        out[f"eye_{side}_material"] = eye.material.astype(np.int8)
        out[f"eye_{side}_centre"] = eye.centre
        out[f"eye_{side}_axis"] = eye.axis
        out[f"eye_{side}_radius"] = np.float64(eye.radius)
        out[f"eye_{side}_pushback_um"] = np.float64(eye.pushback)
        out[f"eye_{side}_polar_deg"] = eye.polar_deg.astype(np.float32)
    say(f"parts done ({time.perf_counter() - t0:.1f} s)")
    out["names"] = ict.names
    out["build_s"] = np.float64(time.perf_counter() - t0)
    return out


def _cache_path():
    key = f"parts-v{PARTS_VERSION}-eyes-v{eyes_mod.EYES_VERSION}-rig-v{RIG_VERSION}-" \
          f"{ict_mod.cache_key()}-{bfm_mod._cache_key()}"
    return assets.converted_dir() / f"head_parts_{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


@functools.lru_cache(maxsize=1)
def load_parts(progress=None) -> dict[str, np.ndarray]:
    """The generic parts on the BFM mean (built once per asset version, cached as .npz):
    for each name in PART_NAMES ``{name}_vertices`` (M, 3) um, ``{name}_faces`` (T, 3),
    ``{name}_deltas`` (53, M, 3) um; ``head_seam_bfm`` / ``mouth_seam_bfm`` the BFM ids the
    seam copies (the last len(...) head / mouth vertices), ``face_hidden`` the BFM
    triangles over the eyes, eye centres/axes/radii, ``names`` (53)."""
    return assets.cached_arrays(_cache_path(), lambda: build_parts(progress))
