"""Embedded ICC colour profiles -> sRGB pixels (``photo.load_photo``'s last decoding step).

Phones write Display P3, cameras Adobe RGB, and some editors the monitor's own profile; the
values in such a file are not sRGB, and read as sRGB a P3 portrait's skin looks less
saturated than in any viewer. An RGB profile other than sRGB is therefore applied with
LittleCMS (Pillow's ImageCms), relative colorimetric intent (what browsers do: in-gamut colours
exact, out-of-gamut ones clipped; about 0.3 s for a 12-megapixel photo on the 2-core machine,
against the fit's seconds). Grey and CMYK profiles are not applied (a grey image has no
hue to get wrong; CMYK goes through Pillow's simple conversion). A profile that cannot be read
or applied leaves the values as they are and says so in the returned note, which the fit copies
into the FaceAsset's warnings: the photo still loads, and the user can see why its colours may
be off.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image


def to_srgb(rgb: np.ndarray, icc: bytes | None) -> tuple[np.ndarray, str]:
    """(H, W, 3) uint8 decoded values and the file's embedded profile (None: none) ->
    (sRGB uint8 pixels, note). The note is "sRGB", "converted to sRGB from '<name>'",
    "<space> profile '<name>' not applied", or starts with "sRGB assumed" when a profile was
    unusable."""
    if not icc:
        return rgb, "sRGB"
    try:
        transform, name, space = _transform(bytes(icc))
    except Exception as exc:
        return rgb, f"sRGB assumed: the embedded colour profile is unreadable ({_short(exc)})"
    if space != "RGB":
        return rgb, f"{space} profile {name!r} not applied"
    if transform is None:
        return rgb, "sRGB"
    try:
        from PIL import ImageCms

        out = ImageCms.applyTransform(Image.fromarray(np.ascontiguousarray(rgb)), transform)
        return np.ascontiguousarray(np.asarray(out, np.uint8)), f"converted to sRGB from {name!r}"
    except Exception as exc:
        return rgb, f"sRGB assumed: the embedded colour profile {name!r} could not be applied ({_short(exc)})"


@functools.lru_cache(maxsize=8)
def _transform(icc: bytes):
    """(LittleCMS transform to sRGB or None when the profile is sRGB itself, name, space)."""
    from PIL import ImageCms

    prof = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    name = " ".join((prof.profile.profile_description or "").split()) or "unnamed"
    space = prof.profile.xcolor_space.strip()
    if space != "RGB" or "srgb" in name.lower():
        return None, name, space
    srgb = ImageCms.createProfile("sRGB")
    return ImageCms.buildTransform(prof, srgb, "RGB", "RGB",
                                   renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC), name, space


def _short(exc: BaseException) -> str:
    from facedet3d.fit.photo import _short as short  # photo imports this module: import when needed

    return short(exc)
