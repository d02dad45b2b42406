"""One definition of the typed interface and the AU vocabulary (backend/facedet3d/api): the
add-on reads the same files (no hand-maintained duplicates), presets stay one-sided where
EMFACS says so, and AU validation warns or fails as the design promises."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_addon_reads_the_backends_api_in_a_checkout():
    """In the repository the add-on's ``_api`` package resolves to the backend's own files
    (the built zip carries copies of the same two files)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("addon_api_probe", ROOT / "addon" / "_api" / "__init__.py",
                                                  submodule_search_locations=[str(ROOT / "addon" / "_api")])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["addon_api_probe"] = pkg
    try:
        spec.loader.exec_module(pkg)
        import importlib

        types = importlib.import_module("addon_api_probe.types")
        expr = importlib.import_module("addon_api_probe.expressions")
        assert Path(types.__file__).resolve() == (ROOT / "backend/facedet3d/api/types.py").resolve()
        assert Path(expr.__file__).resolve() == (ROOT / "backend/facedet3d/api/expressions.py").resolve()
        assert types.AU_IDS is expr.AU_IDS
    finally:
        for m in [m for m in sys.modules if m.startswith("addon_api_probe")]:
            del sys.modules[m]
    assert not list((ROOT / "addon" / "_api").glob("types.py")), "no copy is committed in addon/_api"


def test_no_hand_maintained_vocabulary():
    """AU ids, presets and the default age are defined once (api/expressions.py)."""
    import re

    hits = []
    for p in list((ROOT / "backend").rglob("*.py")) + list((ROOT / "addon").rglob("*.py")):
        if p.name == "expressions.py" or "_api" in p.parts:
            continue
        text = p.read_text(encoding="utf-8")
        if re.search(r"\(1, 2, 4, 5, 6, 7, 9, 10, 12", text) or re.search(r'"contempt": \{', text) \
                or re.search(r"age[^\n]{0,30}\b35(\.0)?\b", text):
            hits.append(str(p.relative_to(ROOT)))
    assert not hits, f"vocabulary defined again in {hits}"


def test_contempt_is_one_sided_everywhere():
    from facedet3d.api import expressions as X
    from facedet3d.rig import facs

    from facedet3d.detail.data import shape_names

    names = list(shape_names())
    w = facs.preset_weights("contempt", names)
    side = X.CONTEMPT_SIDE
    other = "_R" if side == "_L" else "_L"
    assert w[names.index("mouthSmile" + side)] > 0 and w[names.index("mouthDimple" + side)] > 0
    assert all(w[i] == 0 for i, n in enumerate(names) if n.endswith(other))
    assert X.preset_sides("happy") == (1.0, 1.0)


def test_out_of_range_aus_warn_and_nan_fails():
    import numpy as np

    from facedet3d.api import expressions as X

    with pytest.warns(UserWarning, match="clamped"):
        v = X.normalise_aus({12: 1.5, 6: -0.2})
    assert v[X.AU_IDS.index(12)] == 1.0 and v[X.AU_IDS.index(6)] == 0.0
    with pytest.raises(ValueError, match="NaN"):
        X.normalise_aus({12: float("nan")})
    assert X.resolve_age(0) == X.DEFAULT_AGE_YEARS and X.resolve_age(40) == 40
    with pytest.raises(ValueError):
        X.resolve_age(-1)
    vec, sides = X.target_aus(["12=0.5"], "happy")
    assert vec[X.AU_IDS.index(12)] == np.float32(0.5) and sides == (1.0, 1.0)
