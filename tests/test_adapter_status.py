"""No silent fallbacks in the add-on's backend: a DetP that fails to load is reported in the
status (with the reason) and detail requests fail with that one line instead of returning the
photo's own map; the load is retried, so a fixed installation recovers."""

import numpy as np
import pytest

from facedet3d.api import adapter as adapter_mod
from facedet3d.api import types as T
from facedet3d.errors import FaceDet3DError


@pytest.fixture()
def broken_detp(monkeypatch):
    import facedet3d.detail.infer as infer

    state = {"broken": True}
    real = infer.shared_predictor

    def fake(backend="auto"):
        if state["broken"]:
            raise FileNotFoundError("detp.safetensors: no such file")
        return real(backend)

    fake.cache_clear = lambda: None
    monkeypatch.setattr(infer, "shared_predictor", fake)
    monkeypatch.setattr(adapter_mod, "RETRY_DETP_S", 0.0)
    return state


def test_detp_failure_is_visible_and_detail_fails(broken_detp, fitted_dir):
    ad = adapter_mod.BackendAdapter()
    st = ad.status()
    assert st.detail_source == "unavailable"
    assert "detail network unavailable" in st.detail_error and "detp.safetensors" in st.detail_error
    face = ad.face_data(str(fitted_dir))
    assert face.detail_source == "unavailable"
    req = T.DetailRequest(face.subject_id, face.asset_dir, np.zeros((1, 17), np.float32))
    with pytest.raises(FaceDet3DError, match="detail network unavailable"):
        ad.detail(req)
    broken_detp["broken"] = False  # fixed: the next request loads it (no restart, no cached failure)
    res = ad.detail(req)
    assert res.source == "detp" and res.maps.shape == (1, 256, 256)
    assert ad.status().detail_source == "detp" and ad.status().detail_error == ""


def test_detail_request_sides_and_age_checked(fitted_dir):
    ad = adapter_mod.BackendAdapter()
    face = ad.face_data(str(fitted_dir))
    aus = np.zeros((2, 17), np.float32)
    aus[:, T.AU_IDS.index(12)] = 0.6
    aus[:, T.AU_IDS.index(14)] = 0.8
    both = ad.detail(T.DetailRequest(face.subject_id, face.asset_dir, aus[:1])).maps[0]
    one = ad.detail(T.DetailRequest(face.subject_id, face.asset_dir, aus[:1], sides=np.array([[1.0, 0.0]]))).maps[0]
    assert np.abs(both - one).max() > 1e-6  # the side multipliers reach the network's alpha_e
    from facedet3d.errors import BadRequest

    with pytest.raises(BadRequest, match="sides"):
        ad.detail(T.DetailRequest(face.subject_id, face.asset_dir, aus, sides=np.ones((3, 2))))
    with pytest.raises(BadRequest, match="age"):
        ad.detail(T.DetailRequest(face.subject_id, face.asset_dir, aus[:1], age=-3))
    with pytest.warns(UserWarning, match="clamped"):
        ad.detail(T.DetailRequest(face.subject_id, face.asset_dir, aus[:1] * 2))


def test_fit_writes_meta_once_with_photo_path(tmp_path, photos):
    import json

    ad = adapter_mod.BackendAdapter()
    face = ad.fit(T.FitCall(photo=str(photos["JianzhuGuo"]), out_dir=str(tmp_path / "a")))
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["photo_path"] == str(photos["JianzhuGuo"].resolve()) and meta["photo"] == "JianzhuGuo.jpg"
    assert meta["timings_ms"]["write"] > 0  # written once, last, with the time the rest took
    assert face.blendshapes.shape[0] == 53 and face.asset_dir == str((tmp_path / "a").resolve())
