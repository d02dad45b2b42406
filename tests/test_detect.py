"""facedet3d.fit.detect: MTCNN on the shared photos, mapping to original pixels, select_face."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedet3d.fit.detect import MIN_FACE_PX, Detection, FaceDetector, select_face
from facedet3d.errors import FaceTooSmall, NoFace
from facedet3d.fit.photo import load_photo

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos"
if not PHOTOS.is_dir():
    PHOTOS = Path("/work/shared/photos")


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(device="cpu")


@pytest.fixture(scope="module")
def found(detector) -> dict[str, tuple[tuple[int, int], list[Detection]]]:
    out = {}
    for name in ("emma", "JianzhuGuo", "trump_hillary"):
        p = load_photo(PHOTOS / f"{name}.jpg")
        out[name] = (p.size, detector(p.rgb))
    return out


def _check_detection(d: Detection, size: tuple[int, int], lo: float, hi: float) -> None:
    w, h = size
    assert d.box.shape == (4,) and d.box.dtype == np.float32
    assert d.landmarks5.shape == (5, 2) and d.landmarks5.dtype == np.float32
    assert 0.9 <= d.score <= 1.0
    bw, bh = d.width, d.height
    assert lo <= bw <= hi and lo <= bh <= 1.6 * hi, (bw, bh)
    assert 0.6 < bh / bw < 1.7
    x1, y1, x2, y2 = d.box
    assert -0.1 * bw < x1 and x2 < w + 0.1 * bw and -0.1 * bh < y1 and y2 < h + 0.1 * bh
    # landmarks inside the box; eyes above nose above mouth; left eye left of right eye
    lm = d.landmarks5
    assert (lm[:, 0] > x1).all() and (lm[:, 0] < x2).all()
    assert (lm[:, 1] > y1).all() and (lm[:, 1] < y2).all()
    assert lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]


def _areas(dets):
    return [d.area for d in dets]


def test_jianzhuguo_one_face(found):
    size, dets = found["JianzhuGuo"]
    assert len(dets) == 1
    _check_detection(dets[0], size, 120, 260)
    cx, cy = (dets[0].box[:2] + dets[0].box[2:]) / 2
    assert 180 < cx < 240 and 170 < cy < 250  # face centre in the 413x551 photo


def test_trump_hillary_two_faces_largest_first(found):
    size, dets = found["trump_hillary"]
    assert len(dets) == 2
    for d in dets:
        _check_detection(d, size, 150, 320)
    assert _areas(dets) == sorted(_areas(dets), reverse=True)
    centres_x = sorted(float(d.box[0] + d.box[2]) / 2 for d in dets)
    assert centres_x[0] < 768 < centres_x[1]  # one face in each half


def test_emma_triptych_three_faces(found):
    """emma.jpg is three photos side by side: one face in each third."""
    size, dets = found["emma"]
    assert len(dets) == 3
    for d in dets:
        _check_detection(d, size, 250, 750)
    assert _areas(dets) == sorted(_areas(dets), reverse=True)
    thirds = sorted(int((d.box[0] + d.box[2]) / 2 // (size[0] / 3)) for d in dets)
    assert thirds == [0, 1, 2]


def test_boxes_map_back_to_original_pixels(detector, found):
    """The same photo at 2x: boxes are 2x (detection runs on the same-size small copy)."""
    p = load_photo(PHOTOS / "trump_hillary.jpg")
    big = cv2.resize(p.rgb, (p.size[0] * 2, p.size[1] * 2), interpolation=cv2.INTER_CUBIC)
    dets2 = detector(big)
    _, dets1 = found["trump_hillary"]
    assert len(dets2) == 2
    for a, b in zip(sorted(dets1, key=lambda d: d.box[0]), sorted(dets2, key=lambda d: d.box[0])):
        tol = 0.08 * a.width * 2
        assert np.abs(b.box - 2 * a.box).max() < tol
        assert np.abs(b.landmarks5 - 2 * a.landmarks5).max() < tol


def test_blank_grey_image_has_no_face(detector):
    dets = detector(np.full((480, 640, 3), 128, np.uint8))
    assert dets == []
    with pytest.raises(NoFace) as info:
        select_face(dets, photo_name="grey.png")
    assert str(info.value) == ("no face found in grey.png; try --box LEFT,TOP,WIDTH,HEIGHT "
                               "around the face (pixels)")


def test_tiny_face_is_not_fitted(detector, found):
    """A face shrunk below MIN_FACE_PX gives no detection, or a detection refused as too small;
    a boxed face of that size is refused too."""
    p = load_photo(PHOTOS / "JianzhuGuo.jpg")
    (_, dets) = found["JianzhuGuo"]
    s = (MIN_FACE_PX - 4) / dets[0].width
    small = cv2.resize(p.rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    canvas = np.full((240, 320, 3), 128, np.uint8)
    canvas[100:100 + small.shape[0], 150:150 + small.shape[1]] = small
    tiny = detector(canvas)
    if tiny:
        with pytest.raises(FaceTooSmall, match="px across"):
            select_face(tiny)
    with pytest.raises(FaceTooSmall, match="px across"):
        select_face([], box=(150, 100, MIN_FACE_PX - 4, MIN_FACE_PX - 4), image_size=(320, 240))


def test_small_boxed_face_in_a_group_photo_is_fitted(backend, tmp_path):
    """Issue 9: a 35-45 px face boxed by the user was refused because the overlapping MTCNN
    detection is ~30 px. It is fitted now, with a warning in meta.json, and its landmarks
    land where the full-size fit's do (scaled)."""
    import json

    from facedet3d.fit.pipeline import FitRequest

    p = load_photo(PHOTOS / "JianzhuGuo.jpg")
    full = backend.fit(FitRequest(photo=str(PHOTOS / "JianzhuGuo.jpg")))
    x1, y1, x2, y2 = full.meta.box
    s = 40.0 / (x2 - x1)  # the face box becomes 40 px wide
    small = cv2.resize(p.rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 900, 3), 110, np.uint8)  # a group photo's scale: the face is a small part
    oy, ox = 250, 400
    h, w = min(small.shape[0], 600 - oy), min(small.shape[1], 900 - ox)
    canvas[oy:oy + h, ox:ox + w] = small[:h, :w]
    path = tmp_path / "group.png"
    cv2.imwrite(str(path), canvas[..., ::-1])
    box = (ox + x1 * s - 3, oy + y1 * s - 3, (x2 - x1) * s + 6, (y2 - y1) * s + 6)
    out = backend.fit_to_disk(FitRequest(photo=str(path), box=box), tmp_path / "asset")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["face_px"] < 64 and any("small face" in w for w in meta["warnings"])
    expect = np.asarray(full.meta.landmarks_2d) * s + [ox, oy]
    err = np.linalg.norm(np.asarray(meta["landmarks_2d"]) - expect, axis=1).mean()
    assert err < 0.08 * 40, f"mean landmark error {err:.1f} px on a 40 px face"


def test_rejects_non_rgb_input(detector):
    with pytest.raises(ValueError):
        detector(np.zeros((50, 50), np.uint8))


# ----------------------------------------------------------------------------- select_face


def _det(x1, y1, x2, y2, score=0.99):
    lm = np.tile(np.array([[(x1 + x2) / 2, (y1 + y2) / 2]], np.float32), (5, 1))
    return Detection(box=np.array([x1, y1, x2, y2], np.float32), score=score, landmarks5=lm)


@pytest.fixture()
def three():
    return [_det(100, 100, 300, 320), _det(500, 100, 650, 260), _det(800, 50, 900, 160)]


def test_select_default_and_index(three):
    assert select_face(three) is three[0]
    assert select_face(three, face_index=1) is three[1]
    assert select_face(three, face_index=2) is three[2]
    for bad in (3, -1):
        with pytest.raises(NoFace) as info:
            select_face(three, face_index=bad, photo_name="group.jpg")
        msg = str(info.value)
        assert "3 faces found in group.jpg" in msg and "--face 1..3" in msg and "\n" not in msg


def test_select_index_on_real_photo(found):
    _, dets = found["trump_hillary"]
    assert select_face(dets, 0) is dets[0] and select_face(dets, 1) is dets[1]
    with pytest.raises(NoFace, match="only 2 faces"):
        select_face(dets, 2)


def test_select_by_box_takes_best_overlap(three):
    # overlaps the 2nd face mostly, and the 1st a little
    assert select_face(three, box=(280, 110, 350, 150), image_size=(1000, 600)) is three[1]
    # box ignores face_index
    assert select_face(three, face_index=2, box=(110, 110, 150, 150)) is three[0]
    # a small overlap still counts
    assert select_face(three, box=(890, 150, 100, 100), image_size=(1000, 600)) is three[2]


def test_select_by_box_without_overlap_uses_the_box(three):
    d = select_face(three, box=(320, 350, 120, 140), image_size=(1000, 600))
    assert d.landmarks5 is None and math.isnan(d.score) and d.from_user
    assert np.allclose(d.box, [320, 350, 440, 490]) and d.box.dtype == np.float32
    # with no detections at all the box is the face too
    d = select_face([], box=(10, 20, 100, 100), image_size=(1000, 600))
    assert np.allclose(d.box, [10, 20, 110, 120])
    # partly outside: clipped to the image
    d = select_face([], box=(950, 550, 100, 100), image_size=(1000, 600))
    assert np.allclose(d.box, [950, 550, 1000, 600])


def test_select_by_box_on_real_photo(found):
    _, dets = found["trump_hillary"]
    right = max(dets, key=lambda d: d.box[0])
    x1, y1, x2, y2 = (float(v) for v in right.box)
    assert select_face(dets, box=(x1 + 10, y1 + 10, 60, 60), image_size=(1536, 689)) is right
    user = select_face(dets, box=(650, 450, 200, 200), image_size=(1536, 689))
    assert user.landmarks5 is None


def test_bad_boxes(three):
    for box in [(10, 10, 0, 50), (10, 10, 50, -5)]:
        with pytest.raises(NoFace, match="WIDTH and HEIGHT must be positive"):
            select_face(three, box=box)
    for box in [(1000, 10, 50, 50), (-100, 10, 50, 50), (10, 600, 50, 50)]:
        with pytest.raises(NoFace, match=r"lies outside p.jpg \(1000x600 px\)"):
            select_face(three, box=box, image_size=(1000, 600), photo_name="p.jpg")
    with pytest.raises(NoFace, match="four numbers"):
        select_face(three, box=(1, 2, 3))
    with pytest.raises(NoFace, match="finite"):
        select_face(three, box=(1, 2, float("nan"), 4))


def test_face_too_small():
    with pytest.raises(FaceTooSmall) as info:
        select_face([_det(10, 10, 10 + MIN_FACE_PX - 1, 60)], photo_name="x.jpg")
    assert "x.jpg" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(FaceTooSmall):
        select_face([], box=(10, 10, MIN_FACE_PX - 1, 20), image_size=(100, 100))
    assert select_face([_det(10, 10, 10 + MIN_FACE_PX, 10 + MIN_FACE_PX)]).width == MIN_FACE_PX
