"""FaceDet3D for Blender: one photo -> a FACS-driven face with expression-dependent detail.

The only package of the project that imports bpy. It reaches the backend through one client
(``client``): in-process when ``facedet3d`` (and torch) are importable, otherwise a loopback
server started with the Python named in the preferences, or at a given address.

Modules (each with a ``classes`` tuple, registered in order, unregistered in reverse):
preferences, properties, operators, panel. Scene adapters live in ``adapters/``; the
detail pipeline in ``live`` (coalesced updates) and ``bake``; ``batch.py`` is the headless
entry for ``blender --background --python``.
"""

import bpy

from . import live, offload, operators, panel, preferences, properties

_MODULES = (preferences, properties, operators, panel)


def register():
    for mod in _MODULES:
        for cls in mod.classes:
            bpy.utils.register_class(cls)
        if hasattr(mod, "register_extra"):
            mod.register_extra()
    live.register_handlers()


def unregister():
    offload.kill_all()  # a background render or export of this session
    live.unregister_handlers()
    for mod in reversed(_MODULES):
        if hasattr(mod, "unregister_extra"):
            mod.unregister_extra()
        for cls in reversed(mod.classes):
            bpy.utils.unregister_class(cls)
    from . import client

    client.shutdown()
