"""Read an ordinary photo robustly into an 8-bit sRGB array, and make small copies of it.

``load_photo(path)`` accepts JPEG, PNG, WebP and TIFF (anything Pillow opens, really) in the
modes people actually meet: RGB, grayscale (``1``, ``L``, ``I;16*``, ``I``, ``F``), alpha
(``RGBA``, ``LA``, ``PA``, palette with transparency), palette (``P``), CMYK (JPEG and TIFF,
Adobe-inverted CMYK JPEGs included) and 16 bits per channel (PNG, TIFF). The EXIF orientation
tag (all 8 values) is applied, so ``Photo.rgb`` is the picture as a viewer shows it.

Decoding paths (chosen from the header, which Pillow reads lazily and cheaply):

* Plain RGB / grayscale JPEG -> ``cv2.imdecode(..., IMREAD_COLOR_RGB)`` on the bytes read with
  Python's ``open()`` (so non-ASCII paths work). libjpeg-turbo writes RGB directly; this is
  about 1.6x faster than Pillow for a 12-megapixel JPEG on this machine (64 ms vs 106 ms).
  OpenCV is lenient with truncated JPEGs (it fills the missing part with grey), so the fast
  path is only taken when the data ends in the JPEG end-of-image marker; anything else goes
  through Pillow, which refuses truncated data.
* 16-bit RGB(A) PNG/TIFF -> ``cv2.imdecode(..., IMREAD_UNCHANGED)`` to get the full 16 bits
  (Pillow keeps only the high byte), then ``round(v / 257)``.
* Everything else -> Pillow, then a per-mode conversion to RGB.

Colour: an embedded RGB ICC profile other than sRGB (Display P3 from phones, Adobe RGB from
cameras, a monitor's own profile) is applied: the pixels are converted to sRGB by LittleCMS
(Pillow's ImageCms), relative colorimetric intent, as browsers and image viewers show them.
Without it a P3 photo's skin reads less saturated than it looks. ``Photo.colour`` says what
was done; an embedded profile that cannot be read or applied leaves the values as sRGB and
says so there (the fit copies it into the FaceAsset's warnings). Grey and CMYK profiles are not
applied (CMYK goes through Pillow's simple conversion, which gives roughly right colours).

Alpha is composited over mid-grey (128, 128, 128), not white: grey is the colour with the least
contrast against every skin tone, so where the fitted mesh's silhouette overshoots a cut-out
portrait, the texture unwrap and the shading-based detail map see the smallest false edge; it
is also what MTCNN's input normalisation ``(x - 127.5) / 128`` maps to zero, so a removed
background looks like "nothing" to the detector. Compositing is a straight blend of sRGB values,
as image viewers do.
"""

from __future__ import annotations

import functools
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from facedet3d.errors import BadImage
from facedet3d.fit import colour_profile

MIN_SIDE = 32
"""Smallest accepted image side in pixels."""

MAX_PIXELS = 120_000_000
"""Largest accepted image (width * height). A 100-megapixel photo is about 300 MB as RGB."""

ALPHA_BACKGROUND = 128
"""sRGB grey level that transparent pixels are composited over (see the module docstring)."""

# Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that. We check the size ourselves
# (before decoding) and refuse with BadImage, so let Pillow accept anything up to our bound.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

_ORIENTATION_TAG = 0x0112
# OpenCV >= 4.10 can have libjpeg-turbo write RGB directly (saves a BGR->RGB pass).
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


@dataclass(frozen=True, eq=False)
class Photo:
    """A decoded photo.

    rgb: (H, W, 3) uint8, sRGB, C-contiguous, EXIF orientation already applied.
    path: the file it came from.
    original_mode: Pillow's mode of the file as stored (e.g. "RGB", "L", "I;16", "CMYK", "P").
    size: (W, H) of ``rgb``, i.e. after orientation (so W and H swap for orientations 5-8).
    colour: what the embedded colour profile did: "sRGB" (none, or sRGB), "converted to sRGB
        from '<profile>'", or a sentence starting "sRGB assumed" when a profile was ignored.
    """

    rgb: np.ndarray
    path: Path
    original_mode: str
    size: tuple[int, int]
    colour: str = "sRGB"

    @property
    def colour_warning(self) -> str | None:
        """The ``colour`` note when an embedded profile was ignored, else None."""
        return self.colour if self.colour.startswith("sRGB assumed") else None

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]


def load_photo(path: str | os.PathLike) -> Photo:
    """Decode the photo at ``path`` into an 8-bit sRGB array, EXIF orientation applied.

    Raises BadImage (one user-facing line) when the file is missing, a directory, empty,
    not an image, truncated or corrupt, smaller than 32 px on a side, or larger than
    MAX_PIXELS.
    """
    path = Path(path)
    data = _read_bytes(path)
    name = path.name

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadImage(f"{name} is not a readable image (unknown format or damaged header); "
                       f"give a JPEG, PNG, WebP or TIFF photo") from None
    except Image.DecompressionBombError as exc:  # > 2 * MAX_PIXELS: Pillow refuses to open
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" ({int(found.group(1)) / 1e6:.0f} MP)" if found else ""
        raise BadImage(f"{name} is too large{size}, above the {MAX_PIXELS // 1_000_000} MP "
                       f"limit; downscale it and try again") from None
    except Exception as exc:
        raise BadImage(f"{name} could not be read as an image ({_short(exc)}); "
                       f"check the file or re-save it as JPEG or PNG") from None

    w, h = im.size
    if w <= 0 or h <= 0 or min(w, h) < MIN_SIDE:
        raise BadImage(f"{name} is only {w}x{h} pixels; use a photo at least "
                       f"{MIN_SIDE} px on each side (a face needs far more)")
    if w * h > MAX_PIXELS:
        raise BadImage(f"{name} is {w}x{h} pixels ({w * h / 1e6:.0f} MP), above the "
                       f"{MAX_PIXELS // 1_000_000} MP limit; downscale it and try again")

    mode = im.mode
    icc = im.info.get("icc_profile")  # from the header: Pillow has not decoded pixels yet
    try:
        rgb, orientation = _decode(im, data)
    except BadImage:
        raise
    except MemoryError:
        raise BadImage(f"{name} ({w}x{h}) does not fit in memory; downscale it and try again") from None
    except Exception as exc:
        raise BadImage(f"{name} is truncated or corrupt ({_short(exc)}); "
                       f"re-export or re-download the photo") from None
    finally:
        im.close()

    rgb, colour = colour_profile.to_srgb(rgb, icc)
    rgb = apply_orientation(rgb, orientation)
    return Photo(rgb=rgb, path=path, original_mode=mode, size=(rgb.shape[1], rgb.shape[0]), colour=colour)


def downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink ``rgb`` (H, W, C) so that its longer side is at most ``max_side`` pixels.

    Returns ``(small, scale)`` with ``scale = small_side / original_side`` (<= 1); a point
    ``p`` in original pixels is at ``p * scale`` in ``small``. Uses cv2.INTER_AREA. When the
    image is already small enough, returns it unchanged (no copy) with scale 1.0.
    """
    if max_side <= 0:
        raise ValueError("max_side must be positive")
    h, w = rgb.shape[:2]
    longest = max(h, w)
    if longest <= max_side:
        return rgb, 1.0
    scale = max_side / longest
    new_w = max(1, int(round(w * scale)))
    new_h = max(1, int(round(h * scale)))
    small = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return small, scale


def apply_orientation(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Return ``rgb`` turned as EXIF orientation ``orientation`` (1..8) says to display it.

    Same result as ``PIL.ImageOps.exif_transpose``; unknown values are treated as 1.
    """
    if orientation == 2:
        out = rgb[:, ::-1]
    elif orientation == 3:
        out = rgb[::-1, ::-1]
    elif orientation == 4:
        out = rgb[::-1]
    elif orientation == 5:  # transpose
        out = rgb.swapaxes(0, 1)
    elif orientation == 6:  # rotate 90 degrees clockwise
        out = rgb.swapaxes(0, 1)[:, ::-1]
    elif orientation == 7:  # transverse
        out = rgb[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:  # rotate 90 degrees counter-clockwise
        out = rgb.swapaxes(0, 1)[::-1]
    else:
        return rgb
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- internals


def _read_bytes(path: Path) -> bytes:
    name = path.name or str(path)
    if not path.exists():
        raise BadImage(f"{path} does not exist; check the path")
    if path.is_dir():
        raise BadImage(f"{path} is a folder, not a photo; give the path of an image file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except PermissionError:
        raise BadImage(f"{name} cannot be read (permission denied); check its permissions") from None
    except OSError as exc:
        raise BadImage(f"{name} cannot be read ({_short(exc)}); check the file") from None
    if not data:
        raise BadImage(f"{name} is empty (0 bytes); give a real photo")
    return data


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:120]


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
        value = int(value)
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


@functools.lru_cache(maxsize=1)
def _opencv_ignores_orientation() -> bool:
    """True when ``cv2.imdecode`` with IMREAD_IGNORE_ORIENTATION returns the stored pixels of a
    JPEG tagged orientation 3 (180°). Some OpenCV builds apply EXIF orientation anyway with
    IMREAD_COLOR_RGB; then every JPEG goes through Pillow, which never turns pixels itself."""
    stored = np.zeros((16, 24, 3), np.uint8)
    stored[:8, :8] = 255  # a white top-left corner
    exif = Image.Exif()
    exif[_ORIENTATION_TAG] = 3
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=95, exif=exif)
    flags = (_IMREAD_RGB if _IMREAD_RGB is not None else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    got = cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), flags)
    return got is not None and got.shape == stored.shape and got[:8, :8].mean() > 200 and got[-8:, -8:].mean() < 50


def _ends_with_eoi(data: bytes) -> bool:
    tail = data[-64:].rstrip(b"\x00\r\n \t")
    return tail.endswith(b"\xff\xd9")


def _decode(im: Image.Image, data: bytes) -> tuple[np.ndarray, int]:
    """Decode to (H, W, 3) uint8 RGB and the EXIF orientation still to be applied to it.

    Pillow >= 11 applies a TIFF's orientation itself while loading (and drops the tag), so the
    orientation is read from the header only on the OpenCV paths and after loading otherwise.
    """
    fmt = im.format
    mode = im.mode
    is16 = _is_16bit(im)  # before anything that may load the image (PNG getexif does)
    buf = np.frombuffer(data, np.uint8)
    w, h = im.size
    sizes = {(h, w), (w, h)}  # TIFF 5..8: Pillow's size is already turned

    # Fast path: ordinary JPEGs, when this OpenCV really leaves the orientation to us (a square
    # photo turned twice would pass the size check below upside down).
    if fmt in ("JPEG", "MPO") and mode in ("RGB", "L") and _ends_with_eoi(data) and _opencv_ignores_orientation():
        if mode == "RGB":
            if _IMREAD_RGB is not None:
                rgb = cv2.imdecode(buf, _IMREAD_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
            else:  # pragma: no cover - older OpenCV
                rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
                if rgb is not None:
                    rgb = cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB)
        else:
            gray = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
            rgb = None if gray is None else cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
        if rgb is not None and rgb.dtype == np.uint8 and rgb.shape[:2] == (h, w):
            return rgb, _orientation(im)
        # otherwise fall through to Pillow, which reports what is wrong

    # 16 bits per channel colour: Pillow keeps only the high byte; OpenCV gives all 16.
    if mode in ("RGB", "RGBA") and fmt in ("PNG", "TIFF") and is16:
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        if (arr is not None and arr.dtype == np.uint16 and arr.ndim == 3
                and arr.shape[2] in (3, 4) and arr.shape[:2] in sizes):
            code = cv2.COLOR_BGR2RGB if arr.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
            arr = cv2.cvtColor(arr, code)
            return _to_rgb8(_scale16(arr)), _orientation(im)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im.load()
    rgb = _pil_to_rgb(im)
    if rgb.shape[:2] != (im.size[1], im.size[0]):
        raise ValueError("decoded to an unexpected size")
    return rgb, _orientation(im)


def _is_16bit(im: Image.Image) -> bool:
    try:
        return ";16" in str(im.tile[0][3])
    except Exception:
        return False


def _scale16(arr: np.ndarray) -> np.ndarray:
    """uint16 (0..65535) -> uint8 (0..255) by rounding v / 257 (65535 -> 255, exact)."""
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _scale_float(arr: np.ndarray, full: float) -> np.ndarray:
    out = np.clip(arr.astype(np.float32) * (255.0 / full) + 0.5, 0, 255)
    return out.astype(np.uint8)


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode == "L":
        return _to_rgb8(np.asarray(im))
    if mode == "1":
        return _to_rgb8(np.asarray(im.convert("L")))
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in im.info
        return _to_rgb8(np.asarray(im.convert("RGBA" if has_alpha else "RGB")))
    if mode in ("RGBA", "LA", "RGBa", "La", "RGBX"):
        if mode in ("RGBa", "La"):
            im = im.convert("RGBA")
        elif mode == "RGBX":
            im = im.convert("RGB")
        return _to_rgb8(np.asarray(im))
    if mode.startswith("I;16"):
        # I;16, I;16B, I;16L, I;16N: unsigned 16-bit grayscale
        arr = np.asarray(im).astype(np.uint16, copy=False)
        return _to_rgb8(_scale16(arr))
    if mode == "I":
        # 32-bit signed; Pillow uses it for >8-bit grayscale. Values within 0..65535 are
        # 16-bit data; anything else is stretched min..max.
        arr = np.asarray(im)
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= 0 and hi <= 65535:
            return _to_rgb8(_scale16(arr.astype(np.uint16)))
        return _to_rgb8(_scale_float(arr.astype(np.float64) - lo, max(hi - lo, 1)))
    if mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float32))
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0.0 and hi <= 1.0:
            return _to_rgb8(_scale_float(arr, 1.0))
        if lo >= 0.0 and hi <= 255.0:
            return _to_rgb8(_scale_float(arr, 255.0))
        return _to_rgb8(_scale_float(arr - lo, max(hi - lo, 1e-12)))
    # CMYK, YCbCr, LAB, HSV, I;16 variants Pillow may add, ...: let Pillow convert.
    if "A" in mode:
        return _to_rgb8(np.asarray(im.convert("RGBA")))
    return np.asarray(im.convert("RGB"))


def _to_rgb8(arr: np.ndarray) -> np.ndarray:
    """(H, W) gray, (H, W, 2) gray+alpha, (H, W, 3) RGB or (H, W, 4) RGBA uint8 -> (H, W, 3)."""
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    c = arr.shape[2]
    if c == 3:
        return np.ascontiguousarray(arr)
    if c == 1:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=2))
    if c == 2:
        color, alpha = np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1]
    elif c == 4:
        color, alpha = arr[:, :, :3], arr[:, :, 3]
    else:
        raise BadImage(f"unsupported channel count {c}; re-save the photo as JPEG or PNG")
    return _composite(color, alpha)


def _composite(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend (H, W, 3) uint8 over ALPHA_BACKGROUND grey with (H, W) uint8 alpha (sRGB values)."""
    if alpha.min() == 255:
        return np.ascontiguousarray(color)
    a = alpha.astype(np.uint16)[:, :, None]
    out = (color.astype(np.uint16) * a + ALPHA_BACKGROUND * (255 - a) + 127) // 255
    return out.astype(np.uint8)
