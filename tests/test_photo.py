"""facedet3d.fit.photo: every format/mode decodes to the right 8-bit sRGB, bad input -> BadImage."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2

import numpy as np
import pytest
from PIL import Image, ImageOps

from facedet3d.fit import photo as photo_mod
from facedet3d.errors import BadImage
from facedet3d.fit.photo import Photo, apply_orientation, downscale, load_photo

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos"
if not PHOTOS.is_dir():  # checkout elsewhere: fall back to the absolute shared folder
    PHOTOS = Path("/work/shared/photos")


@pytest.fixture(scope="module")
def face_rgb() -> np.ndarray:
    """A real photo, reduced to 96x128 (W x H) so the tests stay fast."""
    im = Image.open(PHOTOS / "JianzhuGuo.jpg").convert("RGB").resize((96, 128), Image.BILINEAR)
    return np.asarray(im).copy()


def _corner_image(w=64, h=48) -> np.ndarray:
    """Grey image with a red block in the top-left corner and a blue pixel row at the bottom."""
    a = np.full((h, w, 3), 100, np.uint8)
    a[: h // 4, : w // 4] = (255, 0, 0)
    a[-1, :] = (0, 0, 255)
    return a


def _red_corner(rgb: np.ndarray) -> str:
    h, w = rgb.shape[:2]
    corners = {"TL": rgb[2, 2], "TR": rgb[2, w - 3], "BL": rgb[h - 3, 2], "BR": rgb[h - 3, w - 3]}
    red = [k for k, v in corners.items() if v[0] > 200 and v[1] < 60 and v[2] < 60]
    assert len(red) == 1, corners
    return red[0]


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("ext,kwargs,tol", [
    ("png", {}, 0),
    ("tif", {}, 0),
    ("tif", {"compression": "tiff_lzw"}, 0),
    ("webp", {"lossless": True}, 0),
    ("jpg", {"quality": 95}, 8),
    ("webp", {"quality": 95}, 12),
])
def test_rgb_formats_round_trip(tmp_path, face_rgb, ext, kwargs, tol):
    path = tmp_path / f"face.{ext}"
    Image.fromarray(face_rgb).save(path, **kwargs)
    p = load_photo(path)
    assert isinstance(p, Photo)
    assert p.rgb.dtype == np.uint8 and p.rgb.shape == face_rgb.shape
    assert p.rgb.flags["C_CONTIGUOUS"]
    assert p.size == (96, 128) and p.original_mode == "RGB" and p.path == path
    diff = np.abs(p.rgb.astype(int) - face_rgb.astype(int))
    if tol == 0:
        assert diff.max() == 0
    else:
        assert diff.mean() <= tol / 2


def test_jpeg_fast_path_matches_pillow(tmp_path, face_rgb):
    path = tmp_path / "face.jpg"
    Image.fromarray(face_rgb).save(path, quality=90)
    ref = np.asarray(Image.open(path).convert("RGB"))
    got = load_photo(path).rgb
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 2


@pytest.mark.parametrize("ext", ["png", "jpg", "tif"])
def test_grayscale_L(tmp_path, face_rgb, ext):
    gray = np.asarray(Image.fromarray(face_rgb).convert("L"))
    path = tmp_path / f"g.{ext}"
    Image.fromarray(gray).save(path)
    p = load_photo(path)
    assert p.original_mode == "L" and p.rgb.shape == (128, 96, 3)
    assert np.array_equal(p.rgb[..., 0], p.rgb[..., 1]) and np.array_equal(p.rgb[..., 0], p.rgb[..., 2])
    ref = np.asarray(Image.open(path))  # for JPEG: the decoded (lossy) gray values
    assert ext == "jpg" or np.array_equal(ref, gray)
    assert np.abs(p.rgb[..., 0].astype(int) - ref).max() <= (0 if ext != "jpg" else 2)


def test_bilevel_mode_1(tmp_path):
    a = np.zeros((40, 40), bool)
    a[:, 20:] = True
    path = tmp_path / "bw.png"
    Image.fromarray(a).save(path)
    p = load_photo(path)
    assert p.original_mode == "1"
    assert (p.rgb[:, :20] == 0).all() and (p.rgb[:, 20:] == 255).all()


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_grayscale_16bit_is_scaled_not_clipped(tmp_path, ext):
    v8 = np.tile(np.arange(256, dtype=np.uint16), (40, 1))[:, :256]  # (40, 256)
    v16 = (v8 * 257).astype(np.uint16)
    v16[0, 0], v16[0, 1] = 32767, 32768  # mid values round to 127 / 128
    path = tmp_path / f"g16.{ext}"
    Image.fromarray(v16).save(path)
    assert Image.open(path).mode.startswith("I;16")
    p = load_photo(path)
    assert p.original_mode.startswith("I;16")
    want = v8.astype(np.uint8).copy()
    want[0, 0], want[0, 1] = 127, 128
    assert np.array_equal(p.rgb[..., 1], want)
    assert p.rgb.max() == 255  # 65535 -> 255, and values > 255 were not clipped to white
    assert p.rgb[5, 100, 0] == 100


def test_grayscale_mode_I(tmp_path):
    v = (np.tile(np.arange(64, dtype=np.int32), (40, 1)) * 1000).astype(np.int32)  # 0..63000
    path = tmp_path / "i32.tif"
    Image.fromarray(v, mode="I").save(path)
    p = load_photo(path)
    assert p.original_mode == "I"
    want = np.round(v / 257.0).astype(np.uint8)
    assert np.abs(p.rgb[..., 0].astype(int) - want).max() <= 1


@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("alpha", [False, True])
def test_colour_16bit_scaled_with_rounding(tmp_path, ext, alpha):
    rng = np.random.default_rng(0)
    rgb16 = rng.integers(0, 65536, size=(36, 40, 3), dtype=np.uint16)
    rgb16[0, 0] = (65535, 0, 32768)
    arr = rgb16[..., ::-1]  # OpenCV writes BGR
    if alpha:
        arr = np.dstack([arr, np.full((36, 40), 65535, np.uint16)])
    path = tmp_path / f"c16.{ext}"
    assert cv2.imwrite(str(path), np.ascontiguousarray(arr))
    p = load_photo(path)
    want = np.round(rgb16 / 257.0).astype(np.uint8)
    assert np.array_equal(p.rgb, want)  # exact: rounded, not the high byte
    assert tuple(p.rgb[0, 0]) == (255, 0, 128)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_composited_over_mid_grey(tmp_path, mode):
    a = np.zeros((40, 60, 4), np.uint8)
    a[..., :3] = (250, 20, 10)
    a[:, :20, 3] = 255  # opaque
    a[:, 20:40, 3] = 0  # fully transparent (colour must not leak)
    a[:, 40:, 3] = 128  # half
    im = Image.fromarray(a, "RGBA")
    if mode == "LA":
        im = im.convert("LA")
    path = tmp_path / f"alpha_{mode}.png"
    im.save(path)
    p = load_photo(path)
    assert p.original_mode == mode
    bg = photo_mod.ALPHA_BACKGROUND
    assert bg == 128
    assert (p.rgb[:, 20:40] == bg).all()
    if mode == "RGBA":
        assert tuple(p.rgb[0, 0]) == (250, 20, 10)
        assert np.abs(p.rgb[0, 50].astype(int) - [189, 74, 69]).max() <= 1
    else:
        g = np.asarray(im)[0, 0, 0]
        assert p.rgb[0, 0, 0] == g and abs(int(p.rgb[0, 50, 0]) - round((g * 128 + bg * 127) / 255)) <= 1


def test_palette_with_and_without_transparency(tmp_path, face_rgb):
    pal = Image.fromarray(face_rgb).quantize(64)
    path = tmp_path / "p.png"
    pal.save(path)
    p = load_photo(path)
    assert p.original_mode == "P"
    assert np.array_equal(p.rgb, np.asarray(pal.convert("RGB")))

    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = (0, 200, 0, 255)
    pal2 = Image.fromarray(rgba, "RGBA").quantize(4)  # keeps transparency in the palette
    path2 = tmp_path / "p_alpha.png"
    pal2.save(path2)
    p2 = load_photo(path2)
    assert np.abs(p2.rgb[0, 0].astype(int) - [0, 200, 0]).max() <= 2
    assert (p2.rgb[:, 25:] == 128).all()


@pytest.mark.parametrize("ext", ["jpg", "tif"])
def test_cmyk_roughly_right_colours(tmp_path, ext):
    patches = {(0, 0): (220, 30, 30), (0, 1): (30, 200, 40), (1, 0): (30, 40, 210), (1, 1): (240, 240, 240)}
    a = np.zeros((64, 64, 3), np.uint8)
    for (r, c), col in patches.items():
        a[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32] = col
    path = tmp_path / f"cmyk.{ext}"
    Image.fromarray(a).convert("CMYK").save(path)
    assert Image.open(path).mode == "CMYK"
    p = load_photo(path)
    assert p.original_mode == "CMYK"
    for (r, c), col in patches.items():
        got = p.rgb[r * 32 + 16, c * 32 + 16].astype(int)
        assert np.abs(got - col).max() <= 30, (col, got)


# ----------------------------------------------------------------------------- orientation


WHERE_RED = {1: "TL", 2: "TR", 3: "BR", 4: "BL", 5: "TL", 6: "TR", 7: "BR", 8: "BL"}


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "tif"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path, ext, orientation):
    stored = _corner_image()
    im = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.{ext}"
    kwargs = {"quality": 95} if ext in ("jpg", "webp") else {}
    im.save(path, exif=exif, **kwargs)
    assert Image.open(path).getexif().get(0x0112) == orientation
    p = load_photo(path)
    swapped = orientation >= 5
    assert p.size == ((48, 64) if swapped else (64, 48))
    assert p.rgb.shape == (p.size[1], p.size[0], 3)
    assert _red_corner(p.rgb) == WHERE_RED[orientation]
    ref = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.abs(p.rgb.astype(int) - ref.astype(int)).max() <= 3


# The photo as a viewer shows it, for each orientation tag, when the file stores pixels whose
# top-left quadrant is red, top-right green, bottom-left blue, bottom-right white. Written out
# from the EXIF 2.3 specification's table (row 0 / column 0 of the stored image = which side
# of the displayed one), not derived from the code under test.
DISPLAYED_QUADRANTS = {
    1: ("R", "G", "B", "W"), 2: ("G", "R", "W", "B"), 3: ("W", "B", "G", "R"), 4: ("B", "W", "R", "G"),
    5: ("R", "B", "G", "W"), 6: ("B", "R", "W", "G"), 7: ("W", "G", "B", "R"), 8: ("G", "W", "R", "B"),
}
_COLOURS = {"R": (255, 0, 0), "G": (0, 255, 0), "B": (0, 0, 255), "W": (255, 255, 255)}


def _quadrants(rgb):
    h, w = rgb.shape[0] // 2, rgb.shape[1] // 2
    out = []
    for r, c in ((0, 0), (0, 1), (1, 0), (1, 1)):
        q = rgb[r * h + h // 4:r * h + 3 * h // 4, c * w + w // 4:c * w + 3 * w // 4].reshape(-1, 3).mean(0)
        out.append(min(_COLOURS, key=lambda k: np.abs(np.asarray(_COLOURS[k]) - q).sum()))
    return tuple(out)


@pytest.mark.parametrize("square", [True, False])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_square_and_written_out(tmp_path, orientation, square):
    """Issue 9: orientation 8 loaded upside down. A square photo is the hard case: turning it
    twice (decoder + us) keeps its size, so only the pixels tell."""
    h, w = (64, 64) if square else (64, 96)
    stored = np.zeros((h, w, 3), np.uint8)
    for (r, c), k in zip(((0, 0), (0, 1), (1, 0), (1, 1)), "RGBW"):
        stored[r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2] = _COLOURS[k]
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"q{orientation}.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    p = load_photo(path)
    assert _quadrants(p.rgb) == DISPLAYED_QUADRANTS[orientation]
    ref = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))  # an independent implementation
    assert _quadrants(ref) == DISPLAYED_QUADRANTS[orientation]


def test_decoder_that_turns_pixels_itself_is_detected(tmp_path, monkeypatch):
    """If this OpenCV applied EXIF orientation despite IMREAD_IGNORE_ORIENTATION, the fast path
    is not used (else square orientation-8 photos come out upside down)."""
    import cv2

    from facedet3d.fit import photo as photo_mod

    real = cv2.imdecode

    def turning(buf, flags):  # what a misbehaving build does: orientation 3 and 8 applied anyway
        img = real(buf, flags)
        o = Image.open(io.BytesIO(bytes(buf))).getexif().get(0x0112, 1)
        return None if img is None else np.ascontiguousarray({3: img[::-1, ::-1], 8: np.rot90(img)}.get(o, img))

    monkeypatch.setattr(photo_mod.cv2, "imdecode", turning)
    photo_mod._opencv_ignores_orientation.cache_clear()
    try:
        assert not photo_mod._opencv_ignores_orientation()
        stored = np.zeros((64, 64, 3), np.uint8)
        stored[:32, :32] = _COLOURS["R"]
        stored[:32, 32:] = _COLOURS["G"]
        stored[32:, :32] = _COLOURS["B"]
        stored[32:, 32:] = _COLOURS["W"]
        exif = Image.Exif()
        exif[0x0112] = 8
        path = tmp_path / "o8.jpg"
        Image.fromarray(stored).save(path, quality=95, exif=exif)
        assert _quadrants(load_photo(path).rgb) == DISPLAYED_QUADRANTS[8]
    finally:
        photo_mod._opencv_ignores_orientation.cache_clear()


def test_apply_orientation_matches_pillow():
    a = np.random.default_rng(1).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    ops = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
           6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
    assert apply_orientation(a, 1) is a and apply_orientation(a, 0) is a
    for k, op in ops.items():
        assert np.array_equal(apply_orientation(a, k), np.asarray(Image.fromarray(a).transpose(op)))


# ----------------------------------------------------------------------------- paths, size


def test_non_ascii_path(tmp_path, face_rgb):
    d = tmp_path / "фото 照片"
    d.mkdir()
    for name in ["Zoë_顔.jpg", "émigré.png"]:
        path = d / name
        Image.fromarray(face_rgb).save(path)
        p = load_photo(str(path))
        assert p.rgb.shape == (128, 96, 3) and p.path == path


def test_real_photo_and_downscale():
    p = load_photo(PHOTOS / "trump_hillary.jpg")
    assert p.size == (1536, 689)
    small, scale = downscale(p.rgb, 640)
    assert small.shape == (287, 640, 3) and scale == pytest.approx(640 / 1536)
    same, s1 = downscale(small, 640)
    assert same is small and s1 == 1.0
    with pytest.raises(ValueError):
        downscale(small, 0)


def test_large_photo_decodes(tmp_path):
    """A 24-megapixel JPEG decodes (above Pillow's default warning bound of ~89 MP / 2)."""
    big = cv2.resize(_corner_image(), (6000, 4000), interpolation=cv2.INTER_NEAREST)
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
    p = load_photo(path)
    assert p.size == (6000, 4000) and _red_corner(p.rgb) == "TL"


# ----------------------------------------------------------------------------- bad input


def _png_header_only(path: Path, w: int, h: int) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"x") + chunk(b"IEND", b""))


def _bad_inputs(tmp_path: Path, face_rgb: np.ndarray) -> dict[str, tuple[Path, str]]:
    cases = {}
    cases["missing"] = (tmp_path / "nope.jpg", "does not exist")
    (tmp_path / "folder.jpg").mkdir()
    cases["directory"] = (tmp_path / "folder.jpg", "folder")
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.jpg", "empty")
    (tmp_path / "notes.jpg").write_text("this is not a photo\nsecond line\n")
    cases["text"] = (tmp_path / "notes.jpg", "not a readable image")
    Image.fromarray(face_rgb).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    cases["truncated jpeg"] = (tmp_path / "trunc.jpg", "truncated or corrupt")
    Image.fromarray(face_rgb).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) * 2 // 3])
    cases["truncated png"] = (tmp_path / "trunc.png", "truncated or corrupt")
    Image.new("RGB", (10, 10), "white").save(tmp_path / "tiny.png")
    cases["tiny"] = (tmp_path / "tiny.png", "10x10")
    Image.new("RGB", (500, 20), "white").save(tmp_path / "sliver.png")
    cases["sliver"] = (tmp_path / "sliver.png", "500x20")
    _png_header_only(tmp_path / "zero.png", 0, 0)
    cases["zero-sized"] = (tmp_path / "zero.png", "zero.png")
    _png_header_only(tmp_path / "huge.png", 20000, 20000)
    cases["too large"] = (tmp_path / "huge.png", "400 MP), above the 120 MP limit")
    _png_header_only(tmp_path / "large.png", 12000, 11000)  # 132 MP: refused by our check
    cases["too large (ours)"] = (tmp_path / "large.png", "132 MP), above the 120 MP limit")
    return cases


def test_each_bad_input_is_one_line(tmp_path, face_rgb):
    for label, (path, needle) in _bad_inputs(tmp_path, face_rgb).items():
        with pytest.raises(BadImage) as info:
            load_photo(path)
        msg = str(info.value)
        assert "\n" not in msg and 10 < len(msg) < 300, (label, msg)
        assert needle in msg, (label, msg)
        assert path.name in msg, (label, msg)


def test_too_large_bound_is_ours(tmp_path, face_rgb, monkeypatch):
    path = tmp_path / "face.png"
    Image.fromarray(face_rgb).save(path)
    monkeypatch.setattr(photo_mod, "MAX_PIXELS", 96 * 128 - 1)
    with pytest.raises(BadImage, match="limit; downscale it"):
        load_photo(path)
    assert Image.MAX_IMAGE_PIXELS >= 100_000_000  # Pillow accepts 100 MP photos
