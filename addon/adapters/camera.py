"""A camera that reproduces the photo: orthographic, oriented by the fitted rotation, scaled
so one photo pixel = 1 / scale_px_per_m metres, the photo centre at the frame centre.

Pixel convention: 0-based pixel centres, y down; the photo spans [-0.5, W-0.5] x [-0.5, H-0.5]."""

import bpy
import numpy as np
from mathutils import Matrix

from . import MODEL_TO_BLENDER

DISTANCE_M = 1.0


def camera_matrix(rotation, scale_px_per_m: float, translation_px, image_size) -> Matrix:
    """4x4 world matrix of the camera (Blender axes: camera looks down its local -Z)."""
    r = np.asarray(rotation, np.float64)  # model -> camera
    s = float(scale_px_per_m)
    w, h = image_size
    tx, ty = translation_px
    centre_cam = np.array([((w - 1) / 2.0 - tx) / s, -((h - 1) / 2.0 - ty) / s, DISTANCE_M])
    pos_model = r.T @ centre_cam
    m = np.eye(4)
    m[:3, :3] = MODEL_TO_BLENDER @ r.T
    m[:3, 3] = MODEL_TO_BLENDER @ pos_model
    return Matrix(m.tolist())


def build_camera(name: str, cam_spec) -> bpy.types.Object:
    """New (unlinked) camera object for an ``api_types.CameraSpec``."""
    data = bpy.data.cameras.new(name)
    data.type = "ORTHO"
    w, h = cam_spec.image_size
    data.ortho_scale = max(w, h) / float(cam_spec.scale_px_per_m)
    data.sensor_fit = "AUTO"
    data.clip_start, data.clip_end = 0.01, 10.0
    obj = bpy.data.objects.new(name, data)
    obj.matrix_world = camera_matrix(cam_spec.rotation, cam_spec.scale_px_per_m, cam_spec.translation_px, (w, h))
    # what a crop camera of the same view needs (``crop_camera``)
    obj[PX_PER_M], obj[IMAGE_SIZE] = float(cam_spec.scale_px_per_m), [int(w), int(h)]
    obj[FACE_BOX] = [float(v) for v in (cam_spec.face_box or (0.0, 0.0, float(w), float(h)))]
    return obj


PX_PER_M, IMAGE_SIZE, FACE_BOX = "facedet3d_px_per_m", "facedet3d_image_size", "facedet3d_face_box"


def crop_camera(scene, name: str, photo_cam: bpy.types.Object, crop, side_px: int) -> bpy.types.Object:
    """An orthographic camera of the photo's view framing the square ``crop`` = [cx, cy,
    half] (photo pixels, 0-based centres, y down) at ``side_px``² pixels, as the neural
    pass's training crops do (``neural.geometry.crop_matrix``: crop pixel j's centre is photo
    x = cx - half + j * 2 half / side). Created and linked into ``scene`` once, then updated."""
    from mathutils import Matrix

    s = float(photo_cam[PX_PER_M])
    w, h = photo_cam[IMAGE_SIZE]
    cx, cy, half = map(float, crop)
    step = 2.0 * half / side_px  # photo pixels per crop pixel
    mx, my = cx - half + (side_px - 1) / 2.0 * step, cy - half + (side_px - 1) / 2.0 * step  # crop centre
    dx, dy = (mx - (w - 1) / 2.0) / s, -(my - (h - 1) / 2.0) / s  # metres in the camera plane
    obj = bpy.data.objects.get(name)
    if obj is None or obj.type != "CAMERA":
        obj = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    data = obj.data
    data.type, data.sensor_fit = "ORTHO", "AUTO"
    data.ortho_scale = 2.0 * half / s
    data.clip_start, data.clip_end = photo_cam.data.clip_start, photo_cam.data.clip_end
    obj.matrix_world = photo_cam.matrix_world @ Matrix.Translation((dx, dy, 0.0))
    if obj.name not in scene.collection.objects:
        scene.collection.objects.link(obj)
    return obj


def set_render_size(scene, image_size, height_px: int) -> None:
    """Render resolution with the photo's aspect, ``height_px`` tall."""
    w, h = image_size
    scene.render.resolution_y = int(height_px)
    scene.render.resolution_x = max(1, int(round(height_px * w / h)))
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0


def frame_face(scene, photo_cam: bpy.types.Object, side_px: int) -> bpy.types.Object:
    """Make a camera of the photo's view that frames the face (``api_types.face_square`` of
    the fitted face box) the scene's camera, rendering ``side_px``² (linked once, reused)."""
    from ..client import T

    cam = crop_camera(scene, f"{photo_cam.name} (face)", photo_cam, T.face_square(photo_cam[FACE_BOX]), side_px)
    scene.camera = cam
    scene.render.resolution_x = scene.render.resolution_y = int(side_px)
    scene.render.resolution_percentage = 100
    return cam
