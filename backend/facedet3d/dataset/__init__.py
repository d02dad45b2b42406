"""``facedet3d dataset``: photo collections -> RGB-D(-N) training data, at scale.

Per photo (the fit only, nothing rendered by Blender): photo-aligned depth (metres from an
assumed pinhole camera, float32), camera-space unit normals, the face mask, the 68
landmarks, the expression reader's 478 landmarks and blendshapes, the photo's AUs, head
pose and a fit-quality score; optionally the photo's fine detail D(Ix) added to depth and
normals, and synthesized targets (other expressions and views, with DetP's predicted
wrinkles) rendered by Blender (Cycles or Eevee, in tasks of their own) or the software
rasteriser (``--renderer``).

Modules: ``inputs`` (what to process), ``camera`` (the output frame and the depth
convention), ``maps`` (depth / normals / mask from the fitted mesh), ``quality`` (fit
score), ``reading`` (the expression reader's fields), ``synth`` (posed targets, raster
RGB), ``blender`` (Blender render tasks), ``sample`` (one photo -> one result, in a
worker), ``store`` (staging, shards, manifest, resume), ``runner`` (serial / process pool /
Ray, and the render stage), ``card`` (OUT/README.md), ``reader`` (PyTorch loading),
``bench`` (throughput).
"""
