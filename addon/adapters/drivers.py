"""AU properties drive the shape keys: value(shape k) = min(1, sum_a AU_a * W[a, k]), times
the side multiplier (``side_left``/``side_right``) for the lateral ``_L``/``_R`` keys, one driver per shape key with a simple expression (evaluated
without Python, so it works with auto-run scripts off). Animation is keyed on the AU
properties; exports bake the driven values (see ``animation.bake_shape_keys``)."""

import bpy
import numpy as np

from ..properties import AU_IDS, au_prop


def _prop_variable(drv, obj, var_name: str, prop: str) -> str:
    """A driver variable reading ``obj.facedet3d.<prop>``; returns its name."""
    var = drv.variables.new()
    var.name = var_name
    var.type = "SINGLE_PROP"
    var.targets[0].id_type = "OBJECT"
    var.targets[0].id = obj
    var.targets[0].data_path = f"facedet3d.{prop}"
    return var_name


def add_au_drivers(obj: bpy.types.Object, names, au_to_blendshape: np.ndarray) -> int:
    """Drivers on ``obj``'s shape keys from ``obj.facedet3d.auNN``; returns how many."""
    w = np.asarray(au_to_blendshape, np.float64)
    if w.shape != (len(AU_IDS), len(names)):
        raise ValueError(f"au_to_blendshape must be ({len(AU_IDS)}, {len(names)}), got {w.shape}")
    key = obj.data.shape_keys
    count = 0
    for k, name in enumerate(names):
        rows = np.flatnonzero(np.abs(w[:, k]) > 1e-6)
        if len(rows) == 0:
            continue
        fc = key.key_blocks[str(name)].driver_add("value")
        drv = fc.driver
        drv.type = "SCRIPTED"
        terms = []
        for a in rows:
            name_a = _prop_variable(drv, obj, f"au{AU_IDS[a]}", au_prop(AU_IDS[a]))
            terms.append(name_a if abs(w[a, k] - 1.0) < 1e-9 else f"{w[a, k]:.6g}*{name_a}")
        expr = f"min(1.0, {' + '.join(terms)})"
        side = "left" if str(name).endswith("_L") else "right" if str(name).endswith("_R") else ""
        if side:  # lateral keys follow the side multiplier (contempt: one side)
            expr = f"{expr} * {_prop_variable(drv, obj, f'side_{side}', f'side_{side}')}"
        drv.expression = expr
        for mod in list(fc.modifiers):  # driver_add puts a Generator modifier on it
            fc.modifiers.remove(mod)
        count += 1
    return count
