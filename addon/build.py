"""FaceData -> the face object, its camera and lighting.

Everything is built into unlinked datablocks first and linked into the scene only when all
of it succeeded; on any error the new datablocks are removed (no half-built objects).
"""

from __future__ import annotations

import bpy
import numpy as np

from . import live
from .adapters import camera as camera_ad, displacement, drivers, material, mesh as mesh_ad, parts as parts_ad
from .properties import AU_IDS, au_prop


def _new_ids():
    """Snapshot of datablock names per collection, to remove what a failed build made."""
    colls = ("objects", "meshes", "materials", "images", "textures", "cameras", "lights", "shape_keys", "actions")
    return {c: set(getattr(bpy.data, c).keys()) for c in colls}


def _remove_new(before) -> None:
    for c in ("objects", "meshes", "materials", "textures", "images", "cameras", "lights", "actions"):
        coll = getattr(bpy.data, c)
        for name in set(coll.keys()) - before[c]:
            coll.remove(coll[name])


def set_aus(obj, aus, quiet: bool = True, sides=(1.0, 1.0)) -> None:
    """Set the AU properties from a (17,) vector and the (left, right) side multipliers
    (contempt: one side), without live requests when quiet."""
    vals = np.clip(np.asarray(aus, np.float64).reshape(-1), 0.0, 1.0)

    def assign():
        for au, v in zip(AU_IDS, vals):
            setattr(obj.facedet3d, au_prop(au), float(v))
        obj.facedet3d.side_left, obj.facedet3d.side_right = (float(s) for s in sides)

    if quiet:
        with live.quiet():
            assign()
    else:
        assign()


def prepare(face) -> dict:
    """The bpy-free part of a build (a worker thread may run it): the seam weights of the
    head parts that ``FaceData.head`` carries (None: an asset fitted before them)."""
    head = face.head  # eyes, teeth, mouth, head
    return {"head": head, "seam": parts_ad.seam_weights(head, face.vertices) if head is not None else None}


def build_face(context, face, detail_map=None, name: str = "", resolution: int = 256,
               render_height: int = 512, light: str = "key"):
    """Build and link the face for an ``api_types.FaceData`` here and now; returns (face
    object, camera). detail_map: (S,S) metres for the initial detail image (default ``face.detail``).
    light: the style of the light added when the scene has none (``LIGHTS``)."""
    gen = build_steps(context, face, detail_map, name, resolution, render_height, light=light)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def build_steps(context, face, detail_map=None, name: str = "", resolution: int = 256,
                render_height: int = 512, prepared: dict | None = None, light: str = "key"):
    """``build_face`` as a step generator (``jobs``): the mesh, its shape keys 8 at a time,
    the drivers and images, each head part, then the link, so the UI is never busy for
    long. ``prepared``: ``prepare(face)``, computed in a worker (else here). On an error or a
    cancel (the generator closed) every datablock it made is removed."""
    scene = context.scene
    name = name or f"Face {face.photo.rsplit('.', 1)[0] or 'FaceDet3D'}"
    before = _new_ids()
    try:
        prepared = prepared if prepared is not None else prepare(face)
        head = prepared["head"]
        me = mesh_ad.build_mesh(name, face.vertices, parts_ad.visible_faces(face.faces, head), face.uv)
        obj = bpy.data.objects.new(name, me)
        yield "building the face: mesh"
        yield from mesh_ad.add_shape_keys_steps(obj, face.names, face.blendshapes)
        s = obj.facedet3d
        with live.quiet():  # no detail requests while building
            s.is_face = True
            s.subject_id, s.asset_dir, s.photo = face.subject_id, face.asset_dir, face.photo
            s.detail_source = face.detail_source
            s.detail_resolution = str(resolution)
        drivers.add_au_drivers(obj, face.names, face.au_to_blendshape)
        set_aus(obj, face.photo_aus)
        yield "building the face: drivers"
        dmap = face.detail if detail_map is None else detail_map
        det_img = displacement.new_detail_image(f"FaceDet3D detail {name}", dmap)
        det_img.use_fake_user = True  # kept while a baked sequence replaces it (Clear Bake)
        yield "building the face: detail image"
        tex_img = material.new_texture_image(f"FaceDet3D texture {name}", face.texture)  # packed: a PNG encode
        yield "building the face: texture"
        # the map the face is built with (the photo's own D(I), or DetP's prediction at the
        # photo's AUs, which the live path returns there): the cavity term darkens the
        # texture only by the change from it, so the photo's expression renders unchanged
        rest_img = displacement.new_detail_image(f"FaceDet3D detail rest {name}", dmap)
        rest_img.use_fake_user = True  # packed on save like the live image (live._on_save_pre)
        mat = material.build_material(f"FaceDet3D {name}", tex_img, det_img, s.detail_strength, rest_img=rest_img,
                                      cavity=s.detail_cavity)
        me.materials.append(mat)
        displacement.add_modifier(obj, det_img, s.detail_strength)
        yield "building the face: material"
        if head is not None:
            parts_ad.pin_seams(obj, prepared["seam"])  # no detail displacement on the seams
            yield "building the face: seams"
        part_objs = (yield from parts_ad.build_parts_steps(obj, head, face.names)) if head is not None else []
        cam = camera_ad.build_camera(f"{name} camera", face.camera)
        light = key_light(f"{name} key", cam, light) if not any(o.type == "LIGHT" for o in scene.objects) else None
        # all built: link
        coll = scene.collection
        coll.objects.link(obj)
        for o in part_objs:
            coll.objects.link(o)
        coll.objects.link(cam)
        if light is not None:
            coll.objects.link(light)
    except BaseException:  # an error, or the task cancelled (GeneratorExit): nothing half-built
        _remove_new(before)
        raise
    scene.camera = obj.facedet3d.camera = cam
    camera_ad.set_render_size(scene, face.camera.image_size, render_height)
    ensure_world(scene)
    scene.view_settings.view_transform = "Standard"  # the photo texture shows as photographed
    view_layer = bpy.context.view_layer
    for o in view_layer.objects:
        o.select_set(False)
    obj.select_set(True)
    view_layer.objects.active = obj
    live.updater(obj).last_aus = None
    return obj, cam


# The sun that a face gets when the scene has no light: (rotation about the camera's x and y
# axes in radians, strength W/m², angular diameter in radians).
# key:   ~55 degrees above and ~20 to the side of the view axis: grazing enough that sub-mm
#        folds (forehead lines, crow's feet, the nasolabial fold) cast visible shading.
# front: a broad light from the camera, as a front-lit photo or video is lit. The photo texture
#        already holds the photo's own shading, so this adds only the change in how the face
#        turns toward the viewer; a render then compares with real frames (a smile's raised
#        cheek does not catch an overhead light that the frames never had). Its strength gives
#        a surface facing the camera the key's light on it (4 x cos 55 degrees).
LIGHTS = {"key": (-0.95, 0.35, 4.0, 0.35), "front": (0.0, 0.0, 2.3, 0.9)}
LIGHT_PROP = "facedet3d_light"  # custom property on the sun a face brought: its style


def key_light(name, cam, style: str = "key"):
    """The face's sun, aimed relative to ``cam`` (``LIGHTS[style]``)."""
    if style not in LIGHTS:
        raise ValueError(f"light {style!r}: choose one of {', '.join(LIGHTS)}")
    obj = bpy.data.objects.new(name, bpy.data.lights.new(name, "SUN"))
    aim_light(obj, cam, style)
    return obj


def aim_light(obj, cam, style: str) -> None:
    """Give the sun ``obj`` the strength, size and direction (relative to ``cam``) of ``style``."""
    from mathutils import Euler

    rx, ry, energy, angle = LIGHTS[style]
    obj.data.energy = energy
    obj.data.angle = angle
    obj.matrix_world = (cam.matrix_world.to_3x3() @ Euler((rx, ry, 0.0)).to_matrix()).to_4x4()
    obj[LIGHT_PROP] = style


def restyle_lights(scene, cam, style: str) -> int:
    """Re-aim every sun a face brought into ``scene`` (``LIGHT_PROP``) as ``style``; lights the
    user added stay as they are. Returns how many."""
    suns = [o for o in scene.objects if o.type == "LIGHT" and LIGHT_PROP in o]
    for o in suns:
        aim_light(o, cam, style)
    return len(suns)


def ensure_world(scene) -> None:
    if scene.world is None:
        scene.world = bpy.data.worlds.new("FaceDet3D world")
    w = scene.world
    if bpy.app.version < (5, 0, 0):
        w.use_nodes = True
    bg = next((n for n in w.node_tree.nodes if n.type == "BACKGROUND"), None)
    if bg is not None:
        bg.inputs["Color"].default_value = (0.6, 0.6, 0.62, 1.0)
        bg.inputs["Strength"].default_value = 0.4  # a low fill, so the key light's grazing shading reads
