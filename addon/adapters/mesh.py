"""The face mesh: vertices in metres (Blender Z up), triangles, UV map, smooth shading, and
the FACS shape keys under their ARKit names (built with bulk ``foreach_set``)."""

import bpy
import numpy as np

from . import to_blender

UV_NAME = "UVMap"


def build_mesh(name: str, vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray) -> bpy.types.Mesh:
    """New mesh datablock. vertices (N,3) metres model space; faces (F,3); uv (N,2) per vertex."""
    v = to_blender(vertices).reshape(-1)
    f = np.ascontiguousarray(faces, np.int32)
    nf = len(f)
    me = bpy.data.meshes.new(name)
    try:
        me.vertices.add(len(vertices))
        me.vertices.foreach_set("co", v)
        me.loops.add(nf * 3)
        me.loops.foreach_set("vertex_index", f.reshape(-1))
        me.polygons.add(nf)
        me.polygons.foreach_set("loop_start", np.arange(0, nf * 3, 3, dtype=np.int32))
        me.polygons.foreach_set("loop_total", np.full(nf, 3, np.int32))
        me.polygons.foreach_set("use_smooth", np.ones(nf, bool))
        layer = me.uv_layers.new(name=UV_NAME)
        layer.data.foreach_set("uv", np.asarray(uv, np.float32)[f.reshape(-1)].reshape(-1))
        me.update(calc_edges=True)
        if me.validate(verbose=False):
            raise ValueError("the face mesh from the backend is invalid (bad triangle indices)")
    except Exception:
        bpy.data.meshes.remove(me)
        raise
    return me


def add_shape_keys(obj: bpy.types.Object, names, blendshapes: np.ndarray) -> None:
    """Basis plus one shape key per name; blendshapes (K,N,3) metres model-space offsets."""
    for _ in add_shape_keys_steps(obj, names, blendshapes, per_step=len(names) + 1):
        pass


def add_shape_keys_steps(obj: bpy.types.Object, names, blendshapes: np.ndarray, per_step: int = 8):
    """``add_shape_keys`` as a step generator (``jobs``): ``per_step`` keys per step (a key
    of the 38k-vertex face is ~5-10 ms)."""
    if len(names) != len(blendshapes):
        raise ValueError(f"{len(names)} blendshape names for {len(blendshapes)} shapes")
    me = obj.data
    basis = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", basis)
    obj.shape_key_add(name="Basis", from_mix=False)
    me.shape_keys.use_relative = True
    for i, (name, delta) in enumerate(zip(names, blendshapes)):
        kb = obj.shape_key_add(name=str(name), from_mix=False)
        kb.slider_min, kb.slider_max = 0.0, 1.0
        kb.value = 0.0
        kb.data.foreach_set("co", basis + to_blender(delta).reshape(-1))
        if (i + 1) % per_step == 0 and i + 1 < len(names):
            yield f"building the face: shape keys {i + 1}/{len(names)}"
