"""The face material: the photo texture (8-bit sRGB) as base colour through the UV map, and
the detail image (Non-Color, metres) through a Bump node for the fine detail the ~1 mm mesh
cannot carry (Distance = detail strength, so heights stay in metres)."""

import bpy
import numpy as np


def new_texture_image(name: str, texture: np.ndarray) -> bpy.types.Image:
    """(S,S,3) uint8 sRGB, row 0 = top -> packed 8-bit sRGB image."""
    h, w = texture.shape[:2]
    img = bpy.data.images.new(name, w, h, alpha=False)
    img.colorspace_settings.name = "sRGB"
    rgba = np.empty((h, w, 4), np.float32)
    rgba[..., :3] = np.asarray(texture, np.float32)[::-1] / 255.0
    rgba[..., 3] = 1.0
    img.pixels.foreach_set(rgba.reshape(-1))
    img.update()
    img.pack()  # stays in the .blend
    return img


def build_material(name: str, texture_img: bpy.types.Image, detail_img: bpy.types.Image,
                   strength: float = 1.0) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):  # 5.0 materials always have node trees
        mat.use_nodes = True
    nt = mat.node_tree
    nodes, links = nt.nodes, nt.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = 0.55
    if "Specular IOR Level" in bsdf.inputs:
        bsdf.inputs["Specular IOR Level"].default_value = 0.3
    uv = nodes.new("ShaderNodeUVMap")
    uv.location = (-900, 0)
    col = nodes.new("ShaderNodeTexImage")
    col.name = col.label = "FaceDet3D Texture"
    col.image = texture_img
    col.location = (-600, 250)
    det = nodes.new("ShaderNodeTexImage")
    det.name = det.label = "FaceDet3D Detail"
    det.image = detail_img
    det.interpolation = "Linear"
    det.extension = "EXTEND"
    det.location = (-600, -150)
    bump = nodes.new("ShaderNodeBump")
    bump.name = bump.label = "FaceDet3D Bump"
    bump.inputs["Distance"].default_value = strength
    bump.inputs["Strength"].default_value = 1.0
    bump.location = (-300, -150)
    links.new(uv.outputs["UV"], col.inputs["Vector"])
    links.new(uv.outputs["UV"], det.inputs["Vector"])
    links.new(col.outputs["Color"], bsdf.inputs["Base Color"])
    links.new(det.outputs["Color"], bump.inputs["Height"])
    links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    nt.nodes.active = col  # Workbench "Texture" colour uses the active image node
    return mat
