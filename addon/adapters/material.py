"""The face material: the photo texture (8-bit sRGB) as base colour through the UV map, and
the detail image (Non-Color, metres) through a Bump node for the fine detail the ~1 mm mesh
cannot carry (Distance = detail strength, so heights stay in metres).

Cavity term. A bump only tilts normals: a fold rendered that way is a light/dark relief, while
a real fold is mostly a dark line (occlusion and shadow in the crease; measured, the bump alone
gives 5-17 % of the darkening real folds show, docs/detail_real_change.md §7). The photo's own
texture already carries the shading of the photo's own detail D(I), which the estimator read
as depth at ``DETAIL_METRES_PER_LOG_UNIT`` (1 mm per unit of log luminance). So the base
colour is multiplied by exp(k (d - d_rest) / METRES_PER_LOG_UNIT): d the current detail,
d_rest the map the face was built with (the "rest" image: DetP's prediction at the photo's
own AUs, which the live path returns there, or the photo's D(I)), k = cavity x detail
strength. A fold the expression deepens by 0.2 mm darkens by exp(-0.2) = 0.82, as dark as
the photo would have had to be for the estimator to read that depth; a fold the photo had
and the expression smooths brightens back.
The exponent is clamped to +-``DETAIL_CAVITY_CLAMP`` (0.5x .. 2x). At the photo's own expression
the term is exactly 1, so the face looks as the photo did. The clamped exponent is also written
to the view-layer AOV ``CAVITY_PASS`` (log units), so the neural pass darkens its frame by the
same factor (``addon/neural.py``, ``facedet3d.neural.passes``).
"""

from contextlib import contextmanager

import bpy
import numpy as np

from .._api.types import CAVITY_PASS, DETAIL_CAVITY_CLAMP, DETAIL_METRES_PER_LOG_UNIT

CAVITY = "FaceDet3D Cavity"  # the Math node whose value is k / METRES_PER_LOG_UNIT
CAVITY_MIX = "FaceDet3D Cavity Mix"
REST = "FaceDet3D Detail Rest"
CAVITY_AOV = "FaceDet3D Cavity AOV"  # AOV Output node: the clamped exponent, for the neural pass


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
                   strength: float = 1.0, rest_img: bpy.types.Image | None = None,
                   cavity: float = 1.0) -> bpy.types.Material:
    """rest_img: the map at the photo's own expression (Non-Color metres); without it there is
    no cavity term (the base colour is the texture as is)."""
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
    links.new(det.outputs["Color"], bump.inputs["Height"])
    links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    if rest_img is None:
        links.new(col.outputs["Color"], bsdf.inputs["Base Color"])
    else:
        _add_cavity(nt, uv, col, det, rest_img, bsdf)
        set_cavity(mat, strength, cavity)
    nt.nodes.active = col  # Workbench "Texture" colour uses the active image node
    return mat


def _add_cavity(nt, uv, col, det, rest_img, bsdf) -> None:
    nodes, links = nt.nodes, nt.links
    rest = nodes.new("ShaderNodeTexImage")
    rest.name = rest.label = REST
    rest.image = rest_img
    rest.interpolation = "Linear"
    rest.extension = "EXTEND"
    rest.location = (-600, -450)
    links.new(uv.outputs["UV"], rest.inputs["Vector"])
    sub = nodes.new("ShaderNodeMath")
    sub.operation = "SUBTRACT"
    sub.location = (-300, -450)
    links.new(det.outputs["Color"], sub.inputs[0])
    links.new(rest.outputs["Color"], sub.inputs[1])
    k = nodes.new("ShaderNodeMath")
    k.name = k.label = CAVITY
    k.operation = "MULTIPLY"
    k.location = (-120, -450)
    links.new(sub.outputs[0], k.inputs[0])
    clamp = nodes.new("ShaderNodeClamp")
    clamp.inputs["Min"].default_value = -DETAIL_CAVITY_CLAMP
    clamp.inputs["Max"].default_value = DETAIL_CAVITY_CLAMP
    clamp.location = (60, -450)
    links.new(k.outputs[0], clamp.inputs["Value"])
    exp = nodes.new("ShaderNodeMath")
    exp.operation = "EXPONENT"
    exp.location = (240, -450)
    links.new(clamp.outputs[0], exp.inputs[0])
    aov = nodes.new("ShaderNodeOutputAOV")
    aov.name = aov.label = CAVITY_AOV
    aov.aov_name = CAVITY_PASS
    aov.location = (240, -600)
    links.new(clamp.outputs[0], aov.inputs["Value"])
    mix = nodes.new("ShaderNodeMix")
    mix.name = mix.label = CAVITY_MIX
    mix.data_type = "RGBA"
    mix.blend_type = "MULTIPLY"
    mix.inputs[0].default_value = 1.0  # factor
    mix.location = (-250, 250)
    links.new(col.outputs["Color"], _rgba_in(mix, "A"))
    links.new(exp.outputs[0], _rgba_in(mix, "B"))
    links.new(_rgba_out(mix), bsdf.inputs["Base Color"])


def _rgba_in(mix, name):
    """The Mix node has one socket per data type under the same name: the colour one."""
    return next(s for s in mix.inputs if s.name == name and s.type == "RGBA")


def _rgba_out(mix):
    return next(s for s in mix.outputs if s.type == "RGBA")


def set_cavity(mat, strength: float, cavity: float) -> None:
    """k = cavity x detail strength, per METRES_PER_LOG_UNIT (no-op without a cavity term);
    the face's ``detail_cavity`` and ``detail_strength`` properties hold the two."""
    node = mat.node_tree.nodes.get(CAVITY) if mat and mat.node_tree else None
    if node is not None:
        node.inputs[1].default_value = float(strength) * float(cavity) / DETAIL_METRES_PER_LOG_UNIT


def has_cavity_pass(mat) -> bool:
    """Whether ``mat`` writes the cavity AOV (faces built before it do not)."""
    return bool(mat and mat.node_tree and mat.node_tree.nodes.get(CAVITY_AOV) is not None)


@contextmanager
def plain_base_color(mat):
    """The texture straight into Base Color for the duration (exporters only follow an image
    node linked directly to the BSDF, so FBX/glTF get the photo texture; the cavity is a
    render-time effect of the live detail)."""
    nt = mat.node_tree if mat is not None else None
    mix = nt.nodes.get(CAVITY_MIX) if nt is not None else None
    if mix is None:
        yield
        return
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    col = nt.nodes["FaceDet3D Texture"]
    link = nt.links.new(col.outputs["Color"], bsdf.inputs["Base Color"])
    try:
        yield
    finally:
        nt.links.remove(link)
        nt.links.new(_rgba_out(mix), bsdf.inputs["Base Color"])
