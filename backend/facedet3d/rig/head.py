"""A complete head for a fitted subject: the generic parts (``rig.parts``) fitted to this
face's size and shape, with their 53 shape keys, colours sampled from the photo.

Fitting to the subject (BFM units inside, metres out):
- every part vertex moves by the mean -> subject displacement of the BFM face, extended
  smoothly off the face by a 3D biharmonic spline (``RBFInterpolator``, kernel ``r`` —
  the 3D thin plate — with an affine part, so a wider face gives a wider head) fitted on
  a sample of the BFM's vertices including every seam vertex;
- the seam copies take the subject's BFM positions exactly (the head and the mouth socket
  meet the face with no gap);
- eyes move rigidly with the spline at their centre and scale with the face (a sphere
  stays a sphere);
- shape motion scales like the face's (``Rig.subject_deltas``: face size ratio).

Colour (sRGB, per vertex): the head's skin continues the face's colour and lighting
(``rig.head_skin``): a first-order lighting model of the face's skin evaluated on the head's
normals, the face border's colour smoothed along the seam and fading out within
``head_skin.SKIN_BLEND_MM``, and, where the photo sees the head (the neck, the jaw's
underside) as skin, the photo's colour. No hair is modelled: the scalp shows bare skin in
the subject's tone and light. The iris colour is the median of the photo's iris pixels (the texture
inside the eye openings, without the bright sclera and the darkest pupil/lash pixels).
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import RBFInterpolator
from scipy.spatial import cKDTree

from facedet3d.assets import bfm as bfm_mod
from facedet3d.rig import parts as parts_mod
from facedet3d.rig.geometry import smoothstep

SAMPLE_EVERY = 25  # every 25th BFM vertex (plus the seams) drives the subject spline
PART_MATERIALS = {  # per part: material names, index = the part's ``material`` values
    "head": ("skin",), "mouth": ("mouth",), "teeth_upper": ("teeth", "gums"), "teeth_lower": ("teeth", "gums"),
    "eye_L": ("sclera", "iris", "cornea"), "eye_R": ("sclera", "iris", "cornea"),
}
TEETH_RGB = (235, 228, 210)
GUMS_RGB = (190, 95, 100)
MOUTH_RGB = (120, 45, 50)
SCLERA_RGB = (235, 232, 228)
PUPIL_RGB = (12, 10, 10)
SKIN_UV_RGB = 60.0  # the head's face-texture UVs: border texels this near the skin tone (RGB)
SKIN_UV_MIN = 0.1  # ... and at least the nearest 10 % of the border
CAVITY_MM = (4.0, 35.0)  # mouth parts darken from 4 mm to 35 mm behind the lips' slit
CAVITY_DARK = 0.7  # ... to 30 % of their colour


def _sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(P, 3) float sRGB of the texture (S, S, 3) at uv (P, 2) (v up), nearest texel."""
    s = texture.shape[0]
    x = np.clip((uv[:, 0] * s).astype(int), 0, s - 1)
    y = np.clip(((1.0 - uv[:, 1]) * s).astype(int), 0, s - 1)
    return texture[y, x].astype(np.float64)


def skin_tone(texture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(3,) median sRGB of the observed texture (the photo's skin, mostly)."""
    seen = mask > 127
    px = texture[seen] if seen.sum() > 100 else texture.reshape(-1, 3)
    return np.median(px.astype(np.float64), axis=0)


def iris_colour(texture: np.ndarray, mask: np.ndarray, uv: np.ndarray, openings: dict) -> np.ndarray:
    """(3,) sRGB: the photo's iris (see the module docstring). Falls back to nothing: if no
    eye texel was observed, the median of both openings is used as they are."""
    ids = np.flatnonzero(openings["eye_l"] | openings["eye_r"])
    col = _sample_texture(texture, uv[ids])
    s = texture.shape[0]
    seen = mask[np.clip(((1 - uv[ids, 1]) * s).astype(int), 0, s - 1), np.clip((uv[ids, 0] * s).astype(int), 0, s - 1)] > 127
    if seen.sum() >= 10:
        col = col[seen]
    lum = col @ np.array([0.299, 0.587, 0.114])
    lo, hi = np.percentile(lum, [15, 55])  # no pupil/lashes (darkest), no sclera (brightest)
    keep = (lum >= lo) & (lum <= hi)
    return np.median(col[keep] if keep.sum() >= 3 else col, axis=0)


def _spline(mean_um: np.ndarray, subject_um: np.ndarray, seams: np.ndarray) -> RBFInterpolator:
    ids = np.unique(np.r_[np.arange(0, len(mean_um), SAMPLE_EVERY), seams])
    mm = 1e-3
    return RBFInterpolator(mean_um[ids] * mm, (subject_um[ids] - mean_um[ids]) * mm, kernel="linear", degree=1)


_FIELDS: dict = {}


def _shape_fields(p: dict, mean: np.ndarray, shape_basis: np.ndarray, seams: np.ndarray) -> dict[str, np.ndarray]:
    """Per part (and eye centre), the subject spline's displacement for each unit BFM shape
    coefficient: (40, M, 3) micrometres. The spline is linear in its data, and a neutral
    subject is ``mean + shape_basis @ a``, so a subject's displacement is ``sum_k a_k F_k``:
    one 40-column spline per process instead of one solve per fit (~250 ms)."""
    key = id(p)
    if key not in _FIELDS:
        ids = np.unique(np.r_[np.arange(0, len(mean), SAMPLE_EVERY), seams])
        basis = shape_basis.reshape(len(mean), 3, -1).astype(np.float64)  # (N, 3, 40) BFM units
        n_k = basis.shape[2]
        mm = 1e-3
        vals = basis[ids].transpose(0, 2, 1).reshape(len(ids), n_k * 3) * mm
        rbf = RBFInterpolator(mean[ids] * mm, vals, kernel="linear", degree=1)
        fields = {}
        for name in parts_mod.PART_NAMES:
            pts = p[f"{name}_centre"][None] if name.startswith("eye_") else p[f"{name}_vertices"]
            fields[name] = (rbf(np.asarray(pts, np.float64) * mm).reshape(len(pts), n_k, 3) / mm).transpose(1, 0, 2)
        _FIELDS.clear()
        _FIELDS[key] = fields
    return _FIELDS[key]


def _cyl_uv(v: np.ndarray) -> np.ndarray:
    """Cylindrical UV about the vertical axis (u around, v up), for the skin-like parts."""
    c = v.mean(0)
    u = (np.arctan2(v[:, 0] - c[0], v[:, 2] - c[2]) / (2 * np.pi)) + 0.5
    h = (v[:, 1] - v[:, 1].min()) / max(np.ptp(v[:, 1]), 1e-9)
    return np.c_[u, h].astype(np.float32)


def subject_head(subject_um: np.ndarray, rig, texture: np.ndarray, mask: np.ndarray,
                 uv: np.ndarray, parts: dict | None = None, shape_coeffs: np.ndarray | None = None,
                 photo: np.ndarray | None = None, projection: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The ``head.npz`` arrays for a subject (see ``fit.faceasset``): per part in
    ``part_names`` its ``_vertices`` (M, 3) float32 metres, ``_faces`` (T, 3) int32,
    ``_uv`` (M, 2), ``_blendshapes`` (53, M, 3) float32 metres, ``_colour`` (M, 3) uint8
    sRGB, ``_material`` (T,) int8 and ``_materials`` (names); ``face_hidden`` (the face
    triangles over the eyes, dropped when the parts are shown), ``head_seam_bfm`` /
    ``mouth_seam_bfm`` (face vertex ids the seam copies), ``eye_{L,R}_centre`` (3,) metres,
    ``iris_rgb``, ``skin_rgb``, ``names`` (53). With ``shape_coeffs`` (40,), when
    ``subject_um`` is exactly the BFM's ``vertices(shape_coeffs)``, the subject spline comes
    from precomputed per-coefficient fields (same values, no solve per fit). With ``photo``
    (H, W, 3) sRGB and its (3, 4) ``projection`` (BFM units -> pixels), the head takes the
    photo's colour where the photo sees its skin (``head_skin.photo_colours``)."""
    p = parts_mod.load_parts() if parts is None else parts
    bfm = bfm_mod.load_bfm()
    mean = bfm.mean.astype(np.float64)
    subj = np.asarray(subject_um, np.float64)
    seams = np.r_[p["head_seam_bfm"], p["mouth_seam_bfm"]]
    if shape_coeffs is not None:
        fields = _shape_fields(p, mean, bfm.shape_basis, seams)
        coeffs = np.asarray(shape_coeffs, np.float64).reshape(-1)

        def displacement(name):  # (M, 3) micrometres
            return np.tensordot(coeffs, fields[name], axes=(0, 0))
    else:
        spline = _spline(mean, subj, seams)

        def displacement(name):
            pts = p[f"{name}_centre"][None] if name.startswith("eye_") else p[f"{name}_vertices"].astype(np.float64)
            return spline(pts * 1e-3) * 1e3
    sf = _face_scale(rig, subj, mean)
    m = bfm_mod.METRES_PER_UNIT
    tone = skin_tone(texture, mask)
    iris = iris_colour(texture, mask, uv, rig.openings)
    out: dict[str, np.ndarray] = {"part_names": np.asarray(parts_mod.PART_NAMES), "names": p["names"],
                                  "face_hidden": p["face_hidden"], "iris_rgb": iris.astype(np.float32),
                                  "skin_rgb": tone.astype(np.float32)}
    skin_seam = _skin_like(_sample_texture(texture, uv[p["head_seam_bfm"]]), tone)
    for name in parts_mod.PART_NAMES:
        v0 = p[f"{name}_vertices"].astype(np.float64)
        d = p[f"{name}_deltas"] * np.float32(sf)
        f = p[f"{name}_faces"]
        if name.startswith("eye_"):
            c0 = p[f"{name}_centre"]
            c1 = c0 + displacement(name)[0]
            v = c1 + (v0 - c0) * sf
            out[f"{name}_centre"] = (c1 * m).astype(np.float32)
            mat = p[f"{name}_material"]
            polar = p[f"{name}_polar_deg"]
            col = np.where(polar[:, None] < 11.0, np.array(PUPIL_RGB, float), iris[None])
            col = np.where(polar[:, None] < 31.0, col, np.array(SCLERA_RGB, float)[None])
            uvp = np.c_[np.arctan2(v0[:, 1] - c0[1], v0[:, 0] - c0[0]) / (2 * np.pi) + 0.5,
                        polar / 180.0].astype(np.float32)
        else:
            v = v0 + displacement(name)
            mat = np.zeros(len(f), np.int8)
            uvp = _cyl_uv(v0)
            if name in ("head", "mouth"):
                seam_ids = p[f"{name}_seam_bfm"]
                local = np.arange(len(v0) - len(seam_ids), len(v0))
                v[local] = subj[seam_ids]  # exact: the seam copies sit on the face
            if name == "head":
                col = _head_colour(v, f, local, seam_ids, subj, bfm, texture, mask, uv, tone, rig.openings,
                                   photo, projection)
            elif name == "mouth":
                col = np.tile(np.array(MOUTH_RGB, float), (len(v), 1)) * _cavity(v0, p)[:, None]
            else:  # teeth and gums (ICT's own geometry parts)
                mat = p[f"{name}_material"]
                col = np.tile(np.array(TEETH_RGB, float), (len(v), 1))
                gum_v = np.unique(f[mat == 1]) if (mat == 1).any() else np.zeros(0, int)
                col[gum_v] = GUMS_RGB
                col *= _cavity(v0, p)[:, None]
        out[f"{name}_vertices"] = (v * m).astype(np.float32)
        out[f"{name}_faces"] = f.astype(np.int32)
        out[f"{name}_uv"] = uvp
        out[f"{name}_face_uv"] = _face_uv(name, v, subj, uv, rig.openings, p, skin_seam)
        out[f"{name}_blendshapes"] = (d * m).astype(np.float32)
        out[f"{name}_colour"] = np.clip(np.round(col), 0, 255).astype(np.uint8)
        out[f"{name}_material"] = np.asarray(mat, np.int8)
        out[f"{name}_materials"] = np.asarray(PART_MATERIALS[name])
    out["head_seam_bfm"] = p["head_seam_bfm"]
    out["mouth_seam_bfm"] = p["mouth_seam_bfm"]
    return out


def _head_colour(v, f, local, seam_ids, subj, bfm, texture, mask, uv, tone, openings, photo, projection):
    """(M, 3) float sRGB of the head part (see ``rig.head_skin``)."""
    from facedet3d.rig import head_skin

    exclude = openings["eye_l"] | openings["eye_r"] | openings["mouth"]
    light = head_skin.lighting_model(subj, bfm.faces, uv, texture, mask, tone, exclude)
    model = head_skin.shade(light, head_skin.outward_normals(v, f))
    border = _sample_texture(texture, uv[seam_ids])
    # hair, background or shadow at the face's border is not skin: there the border
    # follows the model (weight falls from 1 at 40 to 0 at 90 RGB from the skin tone)
    far = np.linalg.norm(border - tone[None], axis=1)
    keep = 1.0 - smoothstep(far, 40.0, 90.0)
    border = keep[:, None] * border + (1 - keep[:, None]) * model[local]
    col = model + head_skin.border_offset(v, v[local], border, model[local])
    if photo is not None and projection is not None:
        pc, pw = head_skin.photo_colours(v, f, subj, bfm.faces, photo, projection, tone)
        pc, pw = head_skin.smooth_on_mesh(pc, pw, f)
        pw[local] = 0.0  # the seam copies keep the face border's colour
        col = pw[:, None] * pc + (1 - pw[:, None]) * col
    return col


def _cavity(v0: np.ndarray, p: dict) -> np.ndarray:
    """(M,) colour factor for the mouth's inside parts (generic positions ``v0``, um): 1 at
    the lips, falling to ``1 - CAVITY_DARK`` ``CAVITY_MM`` behind the mouth slit. Light
    reaches a mouth through its opening only: the tongue's back, the palate and the molars
    are in shade. Baked into the vertex colours so that the software pictures (no shadows)
    and Blender's materials (which read the colours) both show a mouth, not a lit plate."""
    z_slit = bfm_mod.load_bfm().mean[p["mouth_seam_bfm"], 2].astype(np.float64).mean()
    depth_mm = (z_slit - v0[:, 2]) * 1e-3
    return 1.0 - CAVITY_DARK * smoothstep(depth_mm, *CAVITY_MM)


def _skin_like(colours: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """(P,) bool: colours (P, 3) sRGB within ``SKIN_UV_RGB`` of the skin tone; at least the
    nearest ``SKIN_UV_MIN`` share of them (a photo whose whole face border is hair or
    background still gives the head its least unlike texels)."""
    far = np.linalg.norm(np.asarray(colours, np.float64) - tone[None], axis=1)
    least = max(1, int(np.ceil(SKIN_UV_MIN * len(far))))
    return (far < SKIN_UV_RGB) | (far <= np.sort(far)[least - 1])


def _face_uv(name: str, v: np.ndarray, subj: np.ndarray, uv: np.ndarray, openings: dict, p: dict,
             skin_seam: np.ndarray) -> np.ndarray:
    """(M, 2) a place in the FACE's UV layout for every part vertex: the UV of the nearest
    face vertex of the region the part shows through (head: the face's border where its
    texels are skin, ``skin_seam``; eyes: the eye opening; mouth and teeth: the skin
    between the lips). The add-on makes this the parts' render UV map, so a UV pass (the
    neural render pass reads the face texture through it) finds the photo's own skin, eye
    and lip texels there — never background, and for the head no hair or shadow at the
    face's border (those read as dark hair across the scalp and neck)."""
    if name == "head":
        ids = p["head_seam_bfm"][skin_seam]
    elif name.startswith("eye_"):
        ids = np.flatnonzero(openings["eye_l" if name.endswith("L") else "eye_r"])
    else:
        ids = np.flatnonzero(openings["mouth"])
    key = [0, 1] if name.startswith("eye_") else [0, 1, 2]  # eyes: straight through the opening (xy)
    _, j = cKDTree(subj[ids][:, key]).query(v[:, key])
    return uv[ids[j]].astype(np.float32)


def _face_scale(rig, subj: np.ndarray, mean: np.ndarray) -> float:
    """The subject's face size relative to the BFM mean (``Rig.subject_deltas``'s ratio)."""
    from facedet3d.rig.transfer import NO_JAW

    ids = rig.landmarks[NO_JAW]

    def spread(x):
        q = x[ids]
        return np.sqrt(((q - q.mean(0)) ** 2).sum(1).mean())

    return float(spread(subj) / spread(mean))


def posed_parts(head: dict, weights: np.ndarray) -> dict[str, np.ndarray]:
    """name -> (M, 3) metres: every part posed with (53,) blendshape weights."""
    w = np.asarray(weights, np.float32)
    return {str(n): head[f"{n}_vertices"] + np.tensordot(w, head[f"{n}_blendshapes"], axes=1)
            for n in head["part_names"]}


def visible_face_faces(asset) -> np.ndarray:
    """The face's triangles shown with the head parts (those over the eyes dropped)."""
    keep = np.ones(len(asset.faces), bool)
    keep[asset.head["face_hidden"]] = False
    return asset.faces[keep]


def combined_mesh(asset, face_vertices_m: np.ndarray, parts: dict):
    """One mesh (vertices, faces, uv) of the face and all parts (each part's own uv), for
    OBJ/PLY output: face vertices first, then the parts in ``part_names`` order."""
    vs, fs, uvs, off = [face_vertices_m], [visible_face_faces(asset)], [asset.uv], len(face_vertices_m)
    for n in asset.head["part_names"]:
        n = str(n)
        vs.append(parts[n])
        fs.append(asset.head[f"{n}_faces"] + off)
        uvs.append(asset.head[f"{n}_uv"])
        off += len(parts[n])
    return np.concatenate(vs), np.concatenate(fs), np.concatenate(uvs)


def view_items(asset, face_vertices_m: np.ndarray, parts: dict, textured: bool = True):
    """``preview.views.Item`` list: the face (textured or clay) and every part (its vertex
    colours, or clay)."""
    from facedet3d.preview.views import Item

    clay = np.array([205.0, 200.0, 190.0])
    face = Item(face_vertices_m, visible_face_faces(asset), texture=asset.texture if textured else None,
                uv=asset.uv, colour=None if textured else np.tile(clay, (len(face_vertices_m), 1)))
    items = [face]
    for n in asset.head["part_names"]:
        n = str(n)
        col = asset.head[f"{n}_colour"].astype(np.float32) if textured else np.tile(clay, (len(parts[n]), 1))
        if n.startswith("eye_") and not textured:
            col = asset.head[f"{n}_colour"].astype(np.float32)  # clay eyes would read as blind
        items.append(Item(parts[n], asset.head[f"{n}_faces"], colour=col))
    return items
