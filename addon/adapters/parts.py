"""Head parts (eyes, teeth, mouth socket, head and neck) as children of the face object.

Built from ``FaceData.head`` (``api_types.HeadParts``, the typed interface shared with the
backend; the add-on never reads the FaceAsset's files itself). Each part is its own object with
the custom property ``facedet3d_part`` (one of face, head, eye_L, eye_R, teeth_upper,
teeth_lower, tongue, mouth; a part that merges others lists them in ``facedet3d_parts``,
comma-separated), a render UV map ``FaceUV`` into the face's texture (so a UV pass — the
neural render pass — sees skin, eye and lip texels on the parts, never background),
the same 53 shape keys as the face, each driven by the face's key of the
same name (so AU drivers, animation and presets move every part), vertex colours (the
``Col`` attribute, sRGB) feeding its materials, and eyes an aim target (Damped Track on an
empty in front of the face).
"""

from __future__ import annotations

import bpy
import numpy as np

from . import mesh as mesh_ad
from . import to_blender

COLOUR_ATTR = "Col"
SEAM_GROUP = "FaceDet3D seam fade"
FACE_UV = "FaceUV"  # parts' render UV: coordinates in the face texture (UV passes, neural pass)
_MAT = {  # material name -> (roughness, transmission, alpha)
    "skin": (0.55, 0.0, 1.0), "mouth": (0.6, 0.0, 1.0), "teeth": (0.25, 0.0, 1.0), "gums": (0.35, 0.0, 1.0),
    "sclera": (0.35, 0.0, 1.0), "iris": (0.45, 0.0, 1.0), "cornea": (0.02, 1.0, 0.15),
}


def visible_faces(faces: np.ndarray, head) -> np.ndarray:
    """The face triangles to build: without those over the eyes when there are eyes
    (``head``: ``api_types.HeadParts`` or None)."""
    if head is None:
        return faces
    keep = np.ones(len(faces), bool)
    keep[head.face_hidden] = False
    return faces[keep]


def _material(name: str, part: str) -> bpy.types.Material:
    rough, trans, alpha = _MAT[name]
    mat = bpy.data.materials.new(f"FaceDet3D {part} {name}")
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    nt = mat.node_tree
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    attr = nt.nodes.new("ShaderNodeVertexColor")
    attr.layer_name = COLOUR_ATTR
    nt.links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = rough
    if trans > 0:
        bsdf.inputs["Transmission Weight"].default_value = trans
        bsdf.inputs["IOR"].default_value = 1.376  # cornea
        bsdf.inputs["Alpha"].default_value = alpha
    return mat


def _drive_from_face(obj, face_obj, names) -> None:
    """Each of ``obj``'s shape keys follows the face's key of the same name."""
    for name in names:
        fc = obj.data.shape_keys.key_blocks[str(name)].driver_add("value")
        drv = fc.driver
        drv.type = "AVERAGE"
        var = drv.variables.new()
        var.name = "k"
        var.type = "SINGLE_PROP"
        var.targets[0].id_type = "KEY"
        var.targets[0].id = face_obj.data.shape_keys
        var.targets[0].data_path = f'key_blocks["{name}"].value'
        for mod in list(fc.modifiers):
            fc.modifiers.remove(mod)


def build_parts(face_obj, head, names) -> list:
    """Unlinked part objects (children of ``face_obj``) plus the eye target empty; the
    caller links them. ``head``: ``api_types.HeadParts``; ``names``: the face's shape key
    names (every part has the same shapes, in that order)."""
    gen = build_parts_steps(face_obj, head, names)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def build_parts_steps(face_obj, head, names):
    """``build_parts`` as a step generator (``jobs``): one part per step (a part's mesh and
    53 shape keys are 10-100 ms of main-thread work). Returns the objects."""
    for pname, part in head.parts.items():
        if part.blendshapes.shape[0] != len(names):
            raise ValueError(f"head part {pname} has {part.blendshapes.shape[0]} shapes, the face {len(names)}: "
                             "fit the photo again")
    face_obj["facedet3d_part"] = "face"
    made = []
    target = bpy.data.objects.new(f"{face_obj.name} eye target", None)
    target.empty_display_type = "SPHERE"
    target.empty_display_size = 0.02
    centres = [head.parts[f"eye_{s}"].centre for s in ("L", "R")]
    mid = np.mean(centres, 0) + np.array([0.0, 0.0, 0.6], np.float32)  # 60 cm ahead
    target.location = to_blender(mid)
    target.parent = face_obj
    made.append(target)
    for pname, part in head.parts.items():
        origin = np.asarray(part.centre if part.centre else (0.0, 0.0, 0.0), np.float32)
        me = mesh_ad.build_mesh(f"{face_obj.name} {pname}", part.vertices - origin, part.faces, part.uv)
        # the render UV map: where the face texture has this part
        fuv = me.uv_layers.new(name=FACE_UV)
        fuv.data.foreach_set("uv", part.face_uv[part.faces.reshape(-1)].reshape(-1))
        fuv.active_render = True
        col = me.color_attributes.new(COLOUR_ATTR, "BYTE_COLOR", "POINT")
        rgba = np.ones((len(part.vertices), 4), np.float32)
        rgba[:, :3] = part.colour.astype(np.float32) / 255.0
        col.data.foreach_set("color_srgb", rgba.reshape(-1))
        obj = bpy.data.objects.new(f"{face_obj.name} {pname}", me)
        obj.location = to_blender(origin)
        obj.parent = face_obj
        mesh_ad.add_shape_keys(obj, names, part.blendshapes)
        _drive_from_face(obj, face_obj, names)
        for mname in part.materials:
            me.materials.append(_material(str(mname), pname))
        me.polygons.foreach_set("material_index", part.material.astype(np.int32))
        obj["facedet3d_part"] = pname
        if part.merged:
            obj["facedet3d_parts"] = ",".join(part.merged)
        if pname.startswith("eye_"):
            c = obj.constraints.new("DAMPED_TRACK")
            c.target = target
            c.track_axis = "TRACK_NEGATIVE_Y"  # the model's +Z (gaze) is Blender's -Y
        made.append(obj)
        yield f"building the face: {pname}"
    return made


def seam_weights(head, vertices: np.ndarray, fade_m: float = 0.008) -> np.ndarray:
    """(N,) Displace weights of the face's vertices: 0 at the vertices the head and the
    mouth socket share, 1 from ``fade_m`` metres away (smoothstep between). ``head``:
    ``api_types.HeadParts``. No bpy: ~1 s of numpy with 38k vertices, so Import computes it
    in a worker."""
    seam = vertices[np.r_[head.head_seam, head.mouth_seam]].astype(np.float32)
    v = np.asarray(vertices, np.float32)
    # nearest seam vertex: |v|² + |s|² - 2 v.s as one (N, S) matrix product (~100 MB float32)
    d2 = (v ** 2).sum(1)[:, None] + (seam ** 2).sum(1)[None] - 2.0 * (v @ seam.T)
    d = np.sqrt(np.maximum(d2.min(1), 0.0))
    t = np.clip(d / fade_m, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def pin_seams(face_obj, w: np.ndarray) -> None:
    """The face's Displace modifier (detail maps) fades to zero at the seams with the head
    and the mouth socket (vertex group ``SEAM_GROUP`` with ``seam_weights``): a displaced
    border would open a crack against the head."""
    from . import displacement

    vg = face_obj.vertex_groups.new(name=SEAM_GROUP)
    levels = np.round(w * 50).astype(int)  # 51 weight levels: one add() call each
    for lvl in np.unique(levels):
        vg.add(np.flatnonzero(levels == lvl).tolist(), float(lvl) / 50.0, "REPLACE")
    md = displacement.modifier(face_obj)
    if md is not None:
        md.vertex_group = vg.name


def part_objects(face_obj) -> list:
    """The face's part children (objects carrying ``facedet3d_part``)."""
    return [o for o in face_obj.children if o.type == "MESH" and "facedet3d_part" in o.keys()]
