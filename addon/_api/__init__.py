"""The backend's typed interface (``types``) and AU vocabulary (``expressions``), one definition.

In the built extension, ``build_addon.py`` copies ``backend/facedet3d/api/{types,expressions}.py``
into this folder. In a repository checkout they are not here: this package then reads them from
the backend folder beside the add-on (pure numpy; importing them pulls in no torch).
"""

import os

_HERE = os.path.dirname(os.path.abspath(__file__))
if not os.path.isfile(os.path.join(_HERE, "types.py")):
    _SRC = os.path.normpath(os.path.join(_HERE, "..", "..", "backend", "facedet3d", "api"))
    if not os.path.isfile(os.path.join(_SRC, "types.py")):
        raise ImportError(f"FaceDet3D add-on: its API files are missing (neither {_HERE} nor {_SRC} holds "
                          "types.py); reinstall the extension built by build_addon.py")
    __path__.append(_SRC)  # noqa: F821 - a package's __path__
