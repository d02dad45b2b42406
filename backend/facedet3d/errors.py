"""User-facing errors: each carries one line that says what was wrong and what to do.

The CLI prints ``str(error)`` and exits non-zero; it shows a traceback only with --debug.
"""


class FaceDet3DError(Exception):
    """Base class. ``str(e)`` is a single line meant for the user."""

    exit_code = 1


class AssetsMissing(FaceDet3DError):
    """A face-model file is not in the cache (and no mirror provides it)."""

    exit_code = 3


class AssetCorrupt(FaceDet3DError):
    """A face-model file exists but fails its checksum or cannot be parsed."""

    exit_code = 3


class BadImage(FaceDet3DError):
    """The input is unreadable, not an image, empty or otherwise unusable."""

    exit_code = 2


class NoFace(FaceDet3DError):
    """No face was found, or the requested face (--face N / --box) does not exist."""

    exit_code = 4


class FaceTooSmall(FaceDet3DError):
    """A face was found but is too small to fit reliably."""

    exit_code = 4


class BadRequest(FaceDet3DError):
    """A request that cannot be served as asked: bad AUs, unknown preset or subject, bad size."""

    exit_code = 2
