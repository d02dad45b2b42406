"""FaceDet3D backend: photo -> fitted BFM face asset -> expression-dependent detail.

This package never imports bpy; the Blender add-on in ``addon/`` reaches it through one
client. Stages live in one module each (assets, bfm, photo, detect, regressor, fit,
raster, texture, detail_input, faceasset, overlay, cli).
"""

__version__ = "0.1.0"

import os as _os

# OpenCV writes/reads EXR (linear displacement maps) only when this is set.
_os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
