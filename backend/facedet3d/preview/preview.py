"""Software previews of the mesh for people (no Blender needed): shaded and textured
renders from the photo's viewpoint, and mesh files (OBJ/PLY).

Image space as in ``fit``: x right, y down, pixels, z toward the camera.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facedet3d.geometry import raster

# Light direction in camera space (x right, y up, z toward the viewer): upper left, in front.
_LIGHT = np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])


def shade(verts_img: np.ndarray, faces: np.ndarray, height: int, width: int,
          light: np.ndarray = _LIGHT) -> tuple[np.ndarray, np.ndarray, raster.Raster]:
    """Lambert + ambient shading of the mesh: returns (H,W) float32 shading in [0,1],
    (H,W) bool coverage and the raster (for further interpolation)."""
    ras = raster.rasterize(verts_img.astype(np.float32), faces, height, width)
    inside = ras.tri_id >= 0
    # camera-frame normals: image y is down, flip it so the light's y is up
    n = raster.vertex_normals(verts_img * np.array([1.0, -1.0, 1.0]), faces)
    n_pix = raster.interpolate(ras, n.astype(np.float32))
    norm = np.linalg.norm(n_pix, axis=-1, keepdims=True)
    n_pix = n_pix / np.maximum(norm, 1e-8)
    # faces are CCW seen from +Z in model space; after the y flip they stay outward
    lam = np.clip(n_pix @ light.astype(np.float32), 0.0, 1.0)
    return (0.18 + 0.82 * lam).astype(np.float32) * inside, inside, ras


def render(verts_img: np.ndarray, faces: np.ndarray, height: int, width: int, texture: np.ndarray | None = None,
           uv: np.ndarray | None = None, background: int = 40) -> np.ndarray:
    """(H,W,3) uint8 RGB: grey clay shading, or the UV ``texture`` (sRGB) modulated by a
    soft version of the shading when ``texture`` and ``uv`` are given."""
    s, inside, ras = shade(verts_img, faces, height, width)
    out = np.full((height, width, 3), background, np.float32)
    if texture is None:
        col = np.array([205.0, 200.0, 190.0], np.float32) * s[..., None]
    else:
        tuv = raster.interpolate(ras, uv.astype(np.float32))
        S = texture.shape[0]
        mx = (tuv[..., 0] * S - 0.5).astype(np.float32)
        my = ((1.0 - tuv[..., 1]) * S - 0.5).astype(np.float32)
        tex = cv2.remap(texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        col = tex * (0.55 + 0.45 * s[..., None])
    out[inside] = col[inside]
    return np.clip(out, 0, 255).astype(np.uint8)


def view_transform(projection: np.ndarray, box, side: int, margin: float = 0.12):
    """A square crop of ``side`` pixels around the face box, as a function mapping model-space
    BFM-unit vertices to crop pixels (the photo's camera, cropped and scaled)."""
    x1, y1, x2, y2 = map(float, box)
    half = max(x2 - x1, y2 - y1) * (0.5 + margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    s = side / (2 * half)
    proj = np.asarray(projection, np.float64)

    def to_crop(v_units: np.ndarray) -> np.ndarray:
        p = v_units.astype(np.float64) @ proj[:, :3].T + proj[:, 3]
        return np.stack([(p[:, 0] - (cx - half)) * s, (p[:, 1] - (cy - half)) * s, p[:, 2] * s], 1)

    return to_crop


def write_mesh(path: str | Path, vertices_m: np.ndarray, faces: np.ndarray, uv: np.ndarray | None = None) -> None:
    """OBJ (with UVs when given) or binary PLY, vertices in metres, written atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    f1 = faces.astype(np.int64) + 1
    if path.suffix.lower() == ".obj":
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write("# FaceDet3D posed mesh, metres, +Y up\n")
            np.savetxt(fh, vertices_m, fmt="v %.6f %.6f %.6f")
            if uv is not None:
                np.savetxt(fh, uv, fmt="vt %.6f %.6f")
                np.savetxt(fh, np.repeat(f1, 2, axis=1), fmt="f %d/%d %d/%d %d/%d")
            else:
                np.savetxt(fh, f1, fmt="f %d %d %d")
    elif path.suffix.lower() == ".ply":
        header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(vertices_m)}\n"
                  "property float x\nproperty float y\nproperty float z\n"
                  f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
        face_rec = np.zeros(len(faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
        face_rec["n"], face_rec["i"] = 3, faces
        with open(tmp, "wb") as fh:
            fh.write(header.encode("ascii"))
            fh.write(vertices_m.astype("<f4").tobytes())
            fh.write(face_rec.tobytes())
    else:
        raise ValueError(f"unsupported mesh format {path.suffix}")
    tmp.replace(path)
