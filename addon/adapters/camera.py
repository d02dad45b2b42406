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
    return obj


def set_render_size(scene, image_size, height_px: int) -> None:
    """Render resolution with the photo's aspect, ``height_px`` tall."""
    w, h = image_size
    scene.render.resolution_y = int(height_px)
    scene.render.resolution_x = max(1, int(round(height_px * w / h)))
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
