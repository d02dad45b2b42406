"""Add-on preferences: how to reach the backend when it is not importable in-process, the
one-click backend set-up, and where files go before the .blend is first saved."""

import os

import bpy

ADDON_ID = __package__  # "facedet3d_addon" from source, "bl_ext.<repo>.facedet3d" installed


class FACEDET3D_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_mode: bpy.props.EnumProperty(
        name="Backend",
        items=(("AUTO", "Automatic", "In-process when facedet3d and torch import here, else start a server with the Python below"),
               ("PYTHON", "Start server", "Start 'facedet3d serve' with the Python interpreter below"),
               ("ADDRESS", "Connect", "Connect to a running 'facedet3d serve' on this computer")),
        default="AUTO")
    python_path: bpy.props.StringProperty(
        name="Backend Python", subtype="FILE_PATH",
        description="Python interpreter that has the facedet3d backend installed (e.g. .venv/bin/python)")
    server_port: bpy.props.IntProperty(name="Port", min=0, max=65535, default=0,
                                       description="Port of a running 'facedet3d serve' on 127.0.0.1")
    server_token: bpy.props.StringProperty(name="Token", subtype="PASSWORD",
                                           description="The token printed by 'facedet3d serve'")
    setup_python: bpy.props.StringProperty(
        name="Python 3.10-3.12", subtype="FILE_PATH",
        description="Python to build the backend's environment from (empty: the newest 3.10-3.12 found)")
    setup_torch: bpy.props.EnumProperty(
        name="Torch", items=(("CPU", "CPU", "CPU-only torch (smaller download)"),
                             ("CUDA", "CUDA", "the package index's torch with CUDA (NVIDIA GPUs)")), default="CPU")
    setup_venv: bpy.props.StringProperty(
        name="Environment folder", subtype="DIR_PATH",
        description="Where Set Up Backend creates the environment (empty: the extension's user folder)")
    setup_wheel: bpy.props.StringProperty(
        name="Backend wheel", subtype="FILE_PATH",
        description="A facedet3d-*.whl to install instead of the one inside the add-on")
    output_folder: bpy.props.StringProperty(
        name="Folder for unsaved files", subtype="DIR_PATH",
        description="Where face files, bakes, renders and exports go while the .blend is not saved yet "
                    "(once saved they go next to the .blend)")

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "backend_mode")
        if self.backend_mode in {"AUTO", "PYTHON"}:
            col.prop(self, "python_path")
        if self.backend_mode == "ADDRESS":
            col.prop(self, "server_port")
            col.prop(self, "server_token")
        col.prop(self, "output_folder")
        from . import setup_backend

        setup_backend.draw(self, self.layout)


def get(context=None):
    """The preferences, or None when the add-on runs unregistered (batch/tests by path)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


classes = (FACEDET3D_AP_preferences,)


def backend_settings(context=None) -> tuple:
    """(mode, python, port, token) for ``client.get_client``, read on the main thread so a
    worker thread can start or connect to the backend with them."""
    p = get(context)
    if p is None:
        return ("AUTO", os.environ.get("FACEDET3D_BACKEND_PYTHON", ""), 0, "")
    return (p.backend_mode, bpy.path.abspath(p.python_path) if p.python_path else "", p.server_port, p.server_token)


def backend_client(context=None):
    """The backend client for the current preferences (see ``client.get_client``). It may
    start a server (seconds): call it from a worker (``jobs.Background``) in the UI."""
    from . import client

    return client.get_client(*backend_settings(context))


def client_factory(context=None):
    """A no-argument callable that returns the client (for worker threads)."""
    from . import client

    settings = backend_settings(context)
    return lambda: client.get_client(*settings)


class NeedsSave(Exception):
    """The .blend is not saved and no folder for unsaved files is set."""


NEEDS_SAVE = ("Save the .blend first: FaceDet3D keeps face files, bakes, renders and exports next to it "
              "(or pick a folder for unsaved files in the add-on preferences)")


def output_base(context=None) -> str:
    """The folder ``//`` means for FaceDet3D's files: beside the saved .blend; before the first
    save the preferences' folder (or $FACEDET3D_OUTPUT_DIR for headless runs), never Blender's
    working directory or the temp folder."""
    if bpy.data.filepath:
        return os.path.dirname(bpy.path.abspath(bpy.data.filepath))
    p = get(context)
    folder = (bpy.path.abspath(p.output_folder) if p is not None and p.output_folder else "") \
        or os.environ.get("FACEDET3D_OUTPUT_DIR", "")
    if not folder:
        raise NeedsSave(NEEDS_SAVE)
    return os.path.abspath(os.path.expanduser(folder))


def resolve(path: str, context=None) -> str:
    """An absolute path for a FaceDet3D setting: ``//x`` is ``output_base()/x``."""
    if path.startswith("//"):
        return os.path.join(output_base(context), path[2:])
    return os.path.abspath(os.path.expanduser(path))
