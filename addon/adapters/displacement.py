"""Detail maps in Blender: a float image (Non-Color, linear metres along the normal) fed to
a Displace modifier (UV coordinates, normal direction, mid level 0, strength = detail
strength, so 1.0 means the predicted metres) and to the material's bump node.

Backend maps are row 0 = top (v = 1); Blender images are row 0 = bottom: rows are flipped.
"""

from contextlib import contextmanager

import bpy
import numpy as np

from . import material

MODIFIER = "FaceDet3D Detail"


def _rgba(detail: np.ndarray) -> np.ndarray:
    d = np.asarray(detail, np.float32)[::-1]
    out = np.empty(d.shape + (4,), np.float32)
    out[..., 0] = out[..., 1] = out[..., 2] = d
    out[..., 3] = 1.0
    return out.reshape(-1)


def new_detail_image(name: str, detail: np.ndarray) -> bpy.types.Image:
    size = int(detail.shape[0])
    img = bpy.data.images.new(name, size, size, alpha=False, float_buffer=True, is_data=True)
    img.colorspace_settings.name = "Non-Color"
    set_pixels(img, detail)
    return img


def set_pixels(img: bpy.types.Image, detail: np.ndarray) -> None:
    """Write a (S,S) metres map into ``img`` in place (resizing it when S changed)."""
    size = int(detail.shape[0])
    if tuple(img.size) != (size, size) or (img.source == "GENERATED" and img.generated_width != size):
        if img.source == "GENERATED":  # a freed buffer is regenerated at this size, so keep it right
            img.generated_width = img.generated_height = size
        if tuple(img.size) != (size, size):
            img.scale(size, size)
    img.pixels.foreach_set(_rgba(detail))
    img.update()


def get_pixels(img: bpy.types.Image) -> np.ndarray:
    """(S,S) float32 metres, row 0 = top (the backend's orientation)."""
    w, h = img.size
    buf = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(buf)
    return buf.reshape(h, w, 4)[::-1, :, 0].copy()


def add_modifier(obj: bpy.types.Object, img: bpy.types.Image, strength: float) -> bpy.types.DisplaceModifier:
    tex = bpy.data.textures.new(f"{obj.name} detail", "IMAGE")
    tex.image = img
    tex.extension = "EXTEND"
    tex.use_clamp = False  # signed displacement
    tex.use_interpolation = True
    md = obj.modifiers.new(MODIFIER, "DISPLACE")
    md.texture = tex
    md.texture_coords = "UV"
    md.uv_layer = obj.data.uv_layers[0].name
    md.direction = "NORMAL"
    md.mid_level = 0.0
    md.strength = strength
    return md


def modifier(obj):
    return obj.modifiers.get(MODIFIER)


def image(obj):
    """The detail image the face currently uses (live or baked sequence)."""
    md = modifier(obj)
    return md.texture.image if md is not None and md.texture is not None else None


def set_strength(obj, strength: float) -> None:
    md = modifier(obj)
    if md is not None:
        md.strength = strength
    mat = obj.active_material
    node = mat.node_tree.nodes.get("FaceDet3D Bump") if mat and mat.node_tree else None
    if node is not None:
        node.inputs["Distance"].default_value = strength
    material.set_cavity(mat, strength, obj.facedet3d.detail_cavity)  # the texture's darkening scales with the depth


def use_sequence(obj, seq_image: bpy.types.Image, frame_start: int, frames: int) -> None:
    """Point the modifier texture and the material bump at a baked image sequence."""
    md = modifier(obj)
    md.texture.image = seq_image
    iu = md.texture.image_user
    iu.frame_start, iu.frame_duration, iu.frame_offset = frame_start, frames, 0
    iu.use_auto_refresh = True
    mat = obj.active_material
    node = mat.node_tree.nodes.get("FaceDet3D Detail") if mat and mat.node_tree else None
    if node is not None:
        node.image = seq_image
        iu = node.image_user
        iu.frame_start, iu.frame_duration, iu.frame_offset = frame_start, frames, 0
        iu.use_auto_refresh = True


@contextmanager
def details_off(obj):
    """The proxy geometry (no details): Displace modifier, bump and cavity term off, restored
    afterwards."""
    md = modifier(obj)
    mat = obj.active_material
    nodes = mat.node_tree.nodes if mat and mat.node_tree else {}
    bump, cav = nodes.get("FaceDet3D Bump"), nodes.get(material.CAVITY)
    keep_md = md.show_render if md else None
    keep_bump = bump.inputs["Distance"].default_value if bump else None
    keep_cav = cav.inputs[1].default_value if cav else None
    try:
        if md:
            md.show_render = False
        if bump:
            bump.inputs["Distance"].default_value = 0.0
        if cav:
            cav.inputs[1].default_value = 0.0
        yield
    finally:
        if md:
            md.show_render = keep_md
        if bump:
            bump.inputs["Distance"].default_value = keep_bump
        if cav:
            cav.inputs[1].default_value = keep_cav
