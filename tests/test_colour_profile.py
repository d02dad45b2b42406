"""Embedded ICC profiles are applied (``fit.colour_profile`` through ``photo.load_photo``).

The test profile is an Adobe RGB (1998) matrix/TRC profile written here byte by byte (ICC v2),
so the check does not lean on a profile file from anywhere: its primaries are wider than
sRGB's, so sRGB's pure red is (219, 0, 0) in it (the ratio of the two spaces' red primaries),
and a viewer shows a stored (219, 0, 0) as sRGB (255, 0, 0)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from facedet3d.fit.colour_profile import to_srgb
from facedet3d.fit.photo import load_photo


def _s15(v: float) -> bytes:
    return struct.pack(">i", int(round(v * 65536)))


def _adobe_rgb_icc(name: str = "Adobe-like test RGB") -> bytes:
    """A minimal ICC v2 display profile: Adobe RGB (1998) primaries adapted to D50, gamma 563/256."""
    xyz = lambda x, y, z: b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)  # noqa: E731
    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 563) + b"\0\0"
    asc = name.encode() + b"\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(asc)) + asc + b"\0" * 8 + b"\0\0\0" + b"\0" * 67
    tags = [(b"desc", desc), (b"cprt", b"text" + b"\0" * 4 + b"none\0"), (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
            (b"rXYZ", xyz(0.60974, 0.31111, 0.01947)), (b"gXYZ", xyz(0.20528, 0.62567, 0.06087)),
            (b"bXYZ", xyz(0.14919, 0.06322, 0.74457)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntr" + b"RGB " + b"XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0) + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
              + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def _patches() -> np.ndarray:
    """Stored values: Adobe RGB's (219, 0, 0) (sRGB red), a mid grey, a skin tone."""
    a = np.zeros((48, 96, 3), np.uint8)
    a[:, :32] = (219, 0, 0)
    a[:, 32:64] = (128, 128, 128)
    a[:, 64:] = (190, 140, 115)
    return a


def test_the_test_profile_is_a_valid_wide_gamut_profile():
    prof = ImageCms.ImageCmsProfile(io.BytesIO(_adobe_rgb_icc()))
    assert prof.profile.xcolor_space.strip() == "RGB"
    assert "Adobe-like" in prof.profile.profile_description


@pytest.mark.parametrize("ext,kwargs,tol", [("png", {}, 2), ("jpg", {"quality": 100, "subsampling": 0}, 4)])
def test_wide_gamut_photo_is_converted_to_srgb(tmp_path, ext, kwargs, tol):
    path = tmp_path / f"adobe.{ext}"
    Image.fromarray(_patches()).save(path, icc_profile=_adobe_rgb_icc(), **kwargs)
    p = load_photo(path)  # the JPEG goes through the OpenCV fast path, the PNG through Pillow
    assert p.colour == "converted to sRGB from 'Adobe-like test RGB'" and p.colour_warning is None
    red, grey, skin = (p.rgb[20:28, c:c + 8].reshape(-1, 3).mean(0) for c in (12, 44, 76))
    assert np.abs(red - (255, 0, 0)).max() <= tol, red  # read as sRGB it would be (219, 0, 0)
    assert np.abs(grey - 128).max() <= tol, grey  # same white point and tone curve: grey stays grey
    # a skin tone: what the two spaces' published D65 matrices say, independently of LittleCMS
    assert np.abs(skin - _adobe_to_srgb((190, 140, 115))).max() <= tol + 1, (skin, _adobe_to_srgb((190, 140, 115)))
    assert skin[0] > 190 + 10  # wider primaries: the stored value understates the red


def _adobe_to_srgb(v) -> np.ndarray:
    """Adobe RGB (1998) 8-bit -> sRGB 8-bit through XYZ (D65 matrices, gamma 563/256)."""
    lin = (np.asarray(v, float) / 255) ** (563 / 256)
    adobe_to_xyz = np.array([[0.5767, 0.1856, 0.1882], [0.2973, 0.6274, 0.0753], [0.0270, 0.0707, 0.9911]])
    xyz_to_srgb = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
    s = np.clip(xyz_to_srgb @ adobe_to_xyz @ lin, 0, 1)
    return 255 * np.where(s <= 0.0031308, 12.92 * s, 1.055 * s ** (1 / 2.4) - 0.055)


def test_srgb_profile_and_no_profile_decode_alike(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(_patches()).save(tmp_path / "tagged.png", icc_profile=srgb)
    Image.fromarray(_patches()).save(tmp_path / "plain.png")
    tagged, plain = load_photo(tmp_path / "tagged.png"), load_photo(tmp_path / "plain.png")
    assert tagged.colour == plain.colour == "sRGB"
    np.testing.assert_array_equal(tagged.rgb, plain.rgb)


def test_unreadable_profile_keeps_the_values_and_says_so(tmp_path):
    Image.fromarray(_patches()).save(tmp_path / "bad.png", icc_profile=b"not a colour profile at all")
    p = load_photo(tmp_path / "bad.png")
    np.testing.assert_array_equal(p.rgb, _patches())
    assert p.colour_warning and p.colour_warning.startswith("sRGB assumed: the embedded colour profile is unreadable")
    assert "\n" not in p.colour_warning


def test_grey_profile_is_not_applied():
    grey = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # a non-RGB space
    rgb = _patches()
    out, note = to_srgb(rgb, grey)
    assert out is rgb and note.endswith("not applied")
