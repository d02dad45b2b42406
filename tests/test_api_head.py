"""The head parts travel through the one typed interface (api/types.py, shared with the
add-on): FaceData.head is HeadParts built from the FaceAsset's head.npz, it survives the wire
format (nested dataclasses' arrays under dotted names) exactly, and the add-on reads no
FaceAsset file itself."""

from pathlib import Path

import numpy as np
import pytest

from facedet3d.api import adapter as adapter_mod
from facedet3d.api import types as T

ADDON = Path(__file__).resolve().parents[1] / "addon"


def test_face_data_carries_the_head(fitted_dir):
    from facedet3d.fit import faceasset

    face = adapter_mod.BackendAdapter().face_data(str(fitted_dir))
    head = faceasset.read(fitted_dir).head
    assert isinstance(face.head, T.HeadParts)
    assert list(face.head.parts) == [str(n) for n in head["part_names"]]
    for name, part in face.head.parts.items():
        assert isinstance(part, T.HeadPart)
        np.testing.assert_array_equal(part.vertices, head[f"{name}_vertices"])
        assert part.blendshapes.shape == (len(face.names),) + part.vertices.shape
        assert part.material.shape == (len(part.faces),) and part.material.max() < len(part.materials)
        assert (len(part.centre) == 3) == name.startswith("eye_")
        assert set(part.merged) <= set(T.PART_TAGS)
    assert face.head.parts["teeth_lower"].merged == ["tongue"] and face.head.parts["teeth_upper"].merged == []
    assert set(face.head.parts) | {"face", "tongue"} == set(T.PART_TAGS)
    np.testing.assert_array_equal(face.head.mouth_seam, head["mouth_seam_bfm"])

    back = T.decode(T.encode(face), T.FaceData)  # the HTTP server's wire format
    assert isinstance(back.head, T.HeadParts) and isinstance(back.camera, T.CameraSpec)
    assert back.timings_ms == face.timings_ms and back.names == face.names
    np.testing.assert_array_equal(back.vertices, face.vertices)
    for name, part in face.head.parts.items():
        got = back.head.parts[name]
        for f in ("vertices", "faces", "uv", "face_uv", "blendshapes", "colour", "material"):
            a, b = getattr(part, f), getattr(got, f)
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        assert (got.materials, got.centre, got.merged) == (part.materials, part.centre, part.merged)
    np.testing.assert_array_equal(back.head.face_hidden, face.head.face_hidden)


def test_face_data_without_head_and_with_a_stale_head(fitted_dir):
    from facedet3d.fit import faceasset

    asset = faceasset.read(fitted_dir)
    names = [str(n) for n in asset.rig["names"]]
    assert adapter_mod.head_parts(None, names) is None
    back = T.decode(T.encode(T.FaceData(
        "s", "", np.zeros((1, 3), np.float32), np.zeros((1, 3), np.int32), np.zeros((1, 2), np.float32),
        np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.float32), np.zeros((0, 1, 3), np.float32), [],
        np.zeros((17, 0), np.float32), np.zeros(17, np.float32),
        T.CameraSpec(np.eye(3).tolist(), 1.0, [0.0, 0.0], [1, 1]))), T.FaceData)
    assert back.head is None
    with pytest.raises(ValueError, match="fit the photo again"):
        adapter_mod.head_parts(asset.head, names[::-1])


def test_addon_reads_no_asset_file():
    """The bpy/torch wall: the add-on gets the parts from FaceData, never np.load's an asset."""
    for path in ADDON.rglob("*.py"):
        text = path.read_text()
        assert "head.npz" not in text, path
        own = {  # job files the add-on's own parent process wrote for this one child, arrays only
            "dataset_render.py": "np.load(args.spec, allow_pickle=False)",  # dataset/blender.py's spec
            "offload_child.py": 'np.load(path, mmap_mode="r", allow_pickle=False)',  # the live maps
        }
        if path.name in own:
            assert text.count("np.load(") == 1 and own[path.name] in text, path
            continue
        assert "np.load(" not in text, path
