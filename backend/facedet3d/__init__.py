"""FaceDet3D backend: photo -> fitted BFM face asset -> expression-dependent detail.

This package never imports bpy; the Blender add-on in ``addon/`` reaches it through one
client. Stages live in one module each (assets, bfm, photo, detect, regressor, fit,
raster, texture, detail_input, faceasset, overlay, cli).
"""

__version__ = "0.1.0"

import os as _os

# OpenCV writes/reads EXR (linear displacement maps) only when this is set.
_os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
# Inference thread pools spin-wait after each run by default; on a 2-core machine that
# steals the cores from the numpy/OpenCV stages that follow (unwrap, detail). Passive
# waiting must be chosen before the OpenMP runtime loads, i.e. before torch is imported.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
