"""Add-on preferences: how to reach the backend when it is not importable in-process."""

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

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "backend_mode")
        if self.backend_mode in {"AUTO", "PYTHON"}:
            col.prop(self, "python_path")
        if self.backend_mode == "ADDRESS":
            col.prop(self, "server_port")
            col.prop(self, "server_token")


def get(context=None):
    """The preferences, or None when the add-on runs unregistered (batch/tests by path)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


classes = (FACEDET3D_AP_preferences,)


def backend_client(context=None):
    """The backend client for the current preferences (see ``client.get_client``)."""
    from . import client

    p = get(context)
    if p is None:
        return client.get_client("AUTO")
    return client.get_client(p.backend_mode, bpy.path.abspath(p.python_path) if p.python_path else "",
                             p.server_port, p.server_token)
