"""Properties: ONE PointerProperty on Object (the face) and ONE on Scene (job settings).

AU intensities are floats in [0, 1], one property per AU (``au01`` ... ``au45``) so they
can be keyframed and read by the shape-key drivers (``facedet3d.au12``).
"""

import bpy

from . import live
from ._api.expressions import AU_IDS, AU_NAMES, PRESETS  # the backend's vocabulary (generated copy)
DETAIL_SIZES = (("256", "256", "DetP output, fastest"), ("1024", "1024", "one super-resolution pass"),
                ("4096", "4096", "two super-resolution passes (slow)"))


def au_prop(au: int) -> str:
    """Property name of an AU (``au12``); drivers use ``facedet3d.au12``."""
    return f"au{au:02d}"


def _detail_changed(self, context):
    live.on_settings_changed(self.id_data)


def _strength_changed(self, context):
    from .adapters import displacement

    displacement.set_strength(self.id_data, self.detail_strength)


def _cavity_changed(self, context):
    from .adapters import material

    material.set_cavity(self.id_data.active_material, self.detail_strength, self.detail_cavity)


def _light_changed(self, context):
    """The Light menu re-aims the sun a face brought (not lights the user added)."""
    from . import build, operators

    face = operators.face_object(context)
    cam = face.facedet3d.camera if face is not None and face.facedet3d.camera else context.scene.camera
    if cam is not None:
        build.restyle_lights(context.scene, cam, self.light)


def _face_annotations():
    ann = {}
    for au in AU_IDS:
        ann[au_prop(au)] = bpy.props.FloatProperty(
            name=f"AU{au}", description=f"AU{au} {AU_NAMES[au]} intensity (0..1)", min=0.0, max=1.0,
            default=0.0, options={"ANIMATABLE"}, update=_detail_changed)
    ann.update(
        # (left, right) multipliers of the lateral shape keys: contempt moves one side only
        side_left=bpy.props.FloatProperty(name="Left side", description="share of the face's left-side shape keys "
                                          "that moves (1 = both sides; contempt sets the other side to 0)",
                                          min=0.0, max=1.0, default=1.0, options={"ANIMATABLE"}, update=_detail_changed),
        side_right=bpy.props.FloatProperty(name="Right side", description="share of the face's right-side shape keys "
                                           "that moves", min=0.0, max=1.0, default=1.0, options={"ANIMATABLE"},
                                           update=_detail_changed),
        is_face=bpy.props.BoolProperty(name="FaceDet3D face", default=False, options=set()),
        subject_id=bpy.props.StringProperty(name="Subject", options=set(), description="backend handle of the fitted face"),
        asset_dir=bpy.props.StringProperty(name="Face asset", subtype="DIR_PATH", options=set(),
                                           description="FaceAsset folder the face was built from"),
        photo=bpy.props.StringProperty(name="Photo", options=set()),
        age=bpy.props.FloatProperty(name="Age", description="subject age in years (0 = unknown)", min=0.0,
                                    max=100.0, default=0.0, update=_detail_changed),
        detail_strength=bpy.props.FloatProperty(
            name="Detail strength", description="scale of the predicted displacement (1 = metres as predicted)",
            min=0.0, soft_max=3.0, default=1.0, update=_strength_changed),
        detail_cavity=bpy.props.FloatProperty(
            name="Cavity", description="darken the texture where the detail goes deeper than the photo's own "
            "(1 = as dark as the photo would be for that depth, 0 = bump only)",
            min=0.0, soft_max=2.0, default=1.0, update=_cavity_changed),
        detail_resolution=bpy.props.EnumProperty(name="Detail resolution", items=DETAIL_SIZES, default="256",
                                                 update=_detail_changed),
        live_update=bpy.props.BoolProperty(name="Live update", default=True, update=_detail_changed,
                                           description="predict the detail map whenever the AUs change"),
        detail_source=bpy.props.StringProperty(name="Detail source", options=set()),
        detail_error=bpy.props.StringProperty(name="Detail error", options=set()),
        neural_status=bpy.props.StringProperty(name="Neural pass", options=set(),
                                               description="the fitted neural pass: quality and whether the "
                                                           "perceptual (VGG16) term trained it"),
        baked_dir=bpy.props.StringProperty(name="Baked details", subtype="DIR_PATH", options=set()),
        camera=bpy.props.PointerProperty(name="Photo camera", type=bpy.types.Object, options=set(),
                                         description="the camera that reproduces the photo's view"),
    )
    return ann


FaceDet3DFace = type("FaceDet3DFace", (bpy.types.PropertyGroup,), {"__annotations__": _face_annotations()})


class FaceDet3DScene(bpy.types.PropertyGroup):
    photo: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH", description="photo of a face to import")
    texture_size: bpy.props.EnumProperty(name="Texture", items=(("512", "512", ""), ("1024", "1024", ""),
                                                                ("2048", "2048", "")), default="1024")
    preset: bpy.props.EnumProperty(name="Preset", items=[(p, p.title(), f"EMFACS {p}") for p in PRESETS])
    # the sun Import Photo adds when the scene has no light (``build.LIGHTS``); changing it
    # re-aims the sun a face brought
    light: bpy.props.EnumProperty(name="Light", default="key", update=_light_changed, items=(
        ("key", "Key light", "a sun 55 degrees above the view: grazing, so wrinkles and relief show"),
        ("front", "Front light", "a broad sun from the camera, as a front-lit photo: the render looks like "
                                 "the photo and an expression shades as in front-lit video")))
    engine: bpy.props.EnumProperty(name="Engine", items=(("BLENDER_EEVEE", "Eevee", ""), ("CYCLES", "Cycles", ""),
                                                         ("BLENDER_WORKBENCH", "Workbench", "")), default="BLENDER_EEVEE")
    output_dir: bpy.props.StringProperty(name="Output", subtype="DIR_PATH", default="//facedet3d_render/")
    passes: bpy.props.BoolProperty(name="Passes (Cycles)", default=False,
                                   description="also write UV, normal, depth and diffuse colour as multilayer EXR")
    neural: bpy.props.BoolProperty(name="Neural pass", default=False,
                                   description="also render every frame through the subject's fitted neural "
                                               "renderer (Cycles passes -> neural/, neural_proxy/); fits it first when needed")
    export_path: bpy.props.StringProperty(name="Export", subtype="FILE_PATH", default="//face.fbx")
    status: bpy.props.StringProperty(name="Status", options=set())
    detail_error: bpy.props.StringProperty(name="Detail network", options=set(),
                                           description="why the backend's detail network is unavailable (empty: ready)")


classes = (FaceDet3DFace, FaceDet3DScene)


def register_extra():
    bpy.types.Object.facedet3d = bpy.props.PointerProperty(type=FaceDet3DFace)
    bpy.types.Scene.facedet3d = bpy.props.PointerProperty(type=FaceDet3DScene)


def unregister_extra():
    del bpy.types.Scene.facedet3d
    del bpy.types.Object.facedet3d


def au_vector(face_obj):
    """(17,) list of the object's current AU values, ``AU_IDS`` order."""
    s = face_obj.facedet3d
    return [getattr(s, au_prop(au)) for au in AU_IDS]


def expression_row(face_obj):
    """(19,) list: the 17 AUs then the (left, right) side multipliers — what a detail map
    depends on."""
    s = face_obj.facedet3d
    return au_vector(face_obj) + [s.side_left, s.side_right]
