"""Head parts (rig/parts.py, rig/eyes.py, rig/head.py): the generic transfer is cached, the
head meets the face exactly in every shape, the jaw carries the lower teeth, eyes stay
behind the lids at AU45 and the teeth stay out of the lips at every AU and preset."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def parts():
    from facedet3d.rig.parts import load_parts

    return load_parts()


@pytest.fixture(scope="module")
def rig():
    from facedet3d.rig.transfer import load_rig

    return load_rig()


@pytest.fixture(scope="module")
def subject(bfm, rig, parts):
    """A subject 6 % larger than the BFM mean with some identity, and its head.npz arrays."""
    from facedet3d.rig.head import subject_head

    rng = np.random.default_rng(3)
    shape = rng.normal(0, 1, bfm.shape_basis.shape[1]).astype(np.float32) * 2e3
    v = bfm.vertices(shape, None).astype(np.float64) * 1.06
    tex = np.full((256, 256, 3), (200, 150, 120), np.uint8)
    mask = np.full((256, 256), 255, np.uint8)
    return v, subject_head(v, rig, tex, mask, bfm.uv, parts)


def _lid_skin(verts, faces, hidden, centre, radius):
    keep = np.ones(len(faces), bool)
    keep[hidden] = False
    f = faces[keep]
    near = np.linalg.norm(verts - centre, axis=1) < radius
    f = f[near[f].all(1)]
    ids, inv = np.unique(f, return_inverse=True)
    return ids, inv.reshape(-1, 3)


def test_parts_cover_the_53_shapes(parts, rig, bfm):
    from facedet3d.rig.parts import PART_NAMES

    assert list(parts["names"]) == list(rig.names)
    for n in PART_NAMES:
        v, d = parts[f"{n}_vertices"], parts[f"{n}_deltas"]
        assert d.shape == (53,) + v.shape and np.isfinite(d).all()
        assert parts[f"{n}_faces"].max() < len(v)
    jaw = list(rig.names).index("jawOpen")
    lower = -parts["teeth_lower_deltas"][jaw][:, 1]
    upper = -parts["teeth_upper_deltas"][jaw][:, 1]
    lip = -rig.deltas[jaw][bfm.landmarks[61:64], 1].mean()
    assert np.percentile(lower, 90) > 8_000  # um: the lower jaw drops more than 8 mm
    # the upper teeth stay on the skull (only the lips' clearance may push them, backwards)
    assert np.abs(upper).max() < 1.0 and lip < 4_000


def _slit_chains(verts, slit):
    ends = int(np.argmin(verts[slit, 0])), int(np.argmax(verts[slit, 0]))
    a, b = min(ends), max(ends)
    arcs = slit[a + 1:b], np.r_[slit[b + 1:], slit[:a]]
    return sorted(arcs, key=lambda arc: -verts[arc, 1].mean())  # upper, lower


def test_lips_part_at_the_slit_in_jaw_open(bfm, rig, parts):
    """jawOpen: each lip's inner skin moves with its own lip. The upper edge of the mouth
    slit drops like the upper lip's outer rim (ICT's upper lip drops ~2.5 mm), not with the
    jaw (it hung 13 mm at jawOpen 1 when the interior was stretched between both rims), and
    the lower edge goes with the lower lip (30 mm)."""
    from facedet3d.rig.geometry import lip_sides, rims, side_labels

    mean = bfm.mean.astype(np.float64)
    jaw = rig.deltas[list(rig.names).index("jawOpen")]
    slit = parts["mouth_seam_bfm"]
    up, lo = _slit_chains(mean, slit)
    inside = rig.openings["mouth"]
    rim_up, rim_lo = rims(mean, bfm.faces, inside, side_labels(mean, mean[bfm.landmarks]))
    centre = lambda ids: ids[np.abs(mean[ids, 0]) < 5_000]  # noqa: E731
    for edge, rim in ((up, rim_up), (lo, rim_lo)):
        d_edge, d_rim = jaw[centre(edge), 1].mean(), jaw[centre(rim), 1].mean()
        assert abs(d_edge - d_rim) < 1_000, (d_edge, d_rim)  # um
    assert jaw[centre(up), 1].mean() > -4_000 and jaw[centre(lo), 1].mean() < -25_000
    # every interior vertex is on one lip: the slit's upper chain on the upper, lower on lower
    side, part = lip_sides(mean, bfm.faces, inside, slit, 3_000.0)
    inner = np.flatnonzero(inside)
    on = dict(zip(inner, side))
    assert all(on[v] > 0 for v in up if v in on) and all(on[v] < 0 for v in lo if v in on)
    assert part.min() == 0.0 and (part == 1.0).mean() > 0.5


def test_open_mouth_shows_the_teeth(bfm, rig, parts):
    """AU25+26, AU26 and surprise: the upper incisors show under the upper lip's edge (the
    slit's upper chain) and stay where they are at rest; the lower incisors drop with the
    jaw. Lower teeth are not required to show (the lower lip covers them, as in people)."""
    from facedet3d.rig import facs

    names = [str(n) for n in rig.names]
    mean = bfm.mean.astype(np.float64)
    up, lo = _slit_chains(mean, parts["mouth_seam_bfm"])
    up = up[np.abs(mean[up, 0]) < 3_000]

    def incisors(name):
        f = parts[f"{name}_faces"][parts[f"{name}_material"] == 0]
        ids = np.unique(f)
        return ids[np.abs(parts[f"{name}_vertices"][ids, 0]) < 3_000]

    iu, il = incisors("teeth_upper"), incisors("teeth_lower")
    for items, preset in ((["25=1", "26=1"], None), (["26=1"], None), (None, "surprise")):
        aus, sides = facs.target_aus(items, preset)
        w = facs.blendshape_weights(aus, names, sides).astype(np.float32)
        lip_edge = (mean[up, 1] + np.tensordot(w, rig.deltas[:, up, 1], axes=1)).mean()
        tu = parts["teeth_upper_vertices"] + np.tensordot(w, parts["teeth_upper_deltas"], axes=1)
        tl = parts["teeth_lower_vertices"] + np.tensordot(w, parts["teeth_lower_deltas"], axes=1)
        shown = lip_edge - tu[iu, 1].min()
        assert shown > 1_500, (items, preset, shown)  # um of upper incisor below the lip
        assert np.abs(tu[iu] - parts["teeth_upper_vertices"][iu]).max() < 200  # um: incisors stay
        assert (parts["teeth_lower_vertices"][il, 1] - tl[il, 1]).mean() > 10_000  # jaw drop


def test_head_meets_face_exactly_in_every_shape(bfm, rig, subject):
    from facedet3d.rig import seam

    v, head = subject
    m = 1e-6
    for name in ("head", "mouth"):
        ids = head[f"{name}_seam_bfm"]
        hv = head[f"{name}_vertices"]
        copies = np.arange(len(hv) - len(ids), len(hv))
        np.testing.assert_allclose(hv[copies], v[ids] * m, atol=1e-7)
        face_d = rig.subject_deltas(v)[:, ids] * m
        np.testing.assert_allclose(head[f"{name}_blendshapes"][:, copies], face_d, atol=1e-7)
        # the copies form one border loop of the part: the part is closed against the face
        loops = seam.boundary_loops(head[f"{name}_faces"])
        assert any(set(lp) == set(copies) for lp in loops)
    # the face's own outer border has no other neighbour: every border vertex is copied
    outer = max(seam.boundary_loops(bfm.faces), key=len)
    assert set(outer) == set(head["head_seam_bfm"])


def test_head_does_not_overlap_face(bfm, parts):
    from facedet3d.rig.geometry import project_to_mesh

    v = parts["head_vertices"].astype(np.float64)
    n_seam = len(parts["head_seam_bfm"])
    body = v[:-n_seam]
    _, _, cp, dist = project_to_mesh(body, bfm.mean.astype(np.float64), bfm.faces)
    # no head vertex lies on the face (closer than 0.3 mm) except along the seam strip
    near_seam = np.min(np.linalg.norm(body[:, None] - v[-n_seam:][None, ::7], axis=2), axis=1) < 8_000
    assert (dist[~near_seam] > 300).all()


def test_eyes_stay_behind_lids_at_au45(bfm, rig, parts):
    from facedet3d.rig import eyes, facs

    names = [str(n) for n in rig.names]
    mean = bfm.mean.astype(np.float64)
    for side in ("L", "R"):
        c = parts[f"eye_{side}_centre"]
        ids, f = _lid_skin(mean, bfm.faces, parts["face_hidden"], c, 26_000)
        for au45 in (0.0, 0.25, 0.5, 0.75, 1.0):
            aus = np.zeros(len(facs.AU_IDS))
            aus[facs.AU_IDS.index(45)] = au45
            w = facs.blendshape_weights(aus, names)
            skin = mean[ids] + np.tensordot(w, rig.deltas[:, ids], axes=1)
            eye = parts[f"eye_{side}_vertices"] + np.tensordot(w, parts[f"eye_{side}_deltas"], axes=1)
            assert eyes.poke_depth(eye.astype(np.float64), skin, f) - eyes.CLEAR_UM < 0, (side, au45)


def test_lips_never_intersect_teeth(bfm, rig, parts):
    """Every single AU at 0.5 and 1 and every preset: no tooth/gum point in front of the lip
    skin or inside the lips (poke_depth with inner=True, less its clearance margin)."""
    from facedet3d.rig import eyes, facs

    names = [str(n) for n in rig.names]
    mean = bfm.mean.astype(np.float64)
    ids, f = _lid_skin(mean, bfm.faces, parts["face_hidden"], mean[parts["mouth_seam_bfm"]].mean(0), 45_000)
    cases = []
    for k, au in enumerate(facs.AU_IDS):
        for val in (0.5, 1.0):
            a = np.zeros(len(facs.AU_IDS))
            a[k] = val
            cases.append((f"AU{au}={val}", facs.blendshape_weights(a, names)))
    for p in facs.PRESETS:
        cases.append((p, facs.blendshape_weights(facs.preset_aus(p), names)))
    worst = {}
    for label, w in cases:
        skin = mean[ids] + np.tensordot(w, rig.deltas[:, ids], axes=1)
        for part in ("teeth_upper", "teeth_lower"):
            t = parts[f"{part}_vertices"] + np.tensordot(w, parts[f"{part}_deltas"], axes=1)
            worst[(label, part)] = eyes.poke_depth(t.astype(np.float64), skin, f, inner=True) - eyes.CLEAR_UM
    bad = {k: round(v) for k, v in worst.items() if v >= 0}
    assert not bad, bad


def test_colours_from_the_texture(bfm, rig, parts):
    from facedet3d.rig.head import iris_colour, subject_head

    tex = np.full((256, 256, 3), (210, 160, 130), np.uint8)
    mask = np.full((256, 256), 255, np.uint8)
    # paint the eye openings' texels: bright sclera, a blue iris ring, a black pupil
    s = 256
    for key in ("eye_l", "eye_r"):
        ids = np.flatnonzero(rig.openings[key])
        uv = bfm.uv[ids]
        x = np.clip((uv[:, 0] * s).astype(int), 0, s - 1)
        y = np.clip(((1 - uv[:, 1]) * s).astype(int), 0, s - 1)
        c = np.array([x.mean(), y.mean()])
        r = np.hypot(x - c[0], y - c[1])
        for xi, yi, ri in zip(x, y, r):
            tex[yi, xi] = (20, 20, 20) if ri < 0.15 * r.max() else (60, 110, 190) if ri < 0.6 * r.max() else (240, 240, 235)
    iris = iris_colour(tex, mask, bfm.uv, rig.openings)
    assert iris[2] > iris[0] + 60  # blue
    head = subject_head(bfm.mean, rig, tex, mask, bfm.uv, parts)
    skin = head["head_colour"][: -len(head["head_seam_bfm"])].astype(float)
    assert np.abs(np.median(skin, 0) - (210, 160, 130)).max() < 3
    eye = head["eye_L_colour"][head["eye_L_material"].size and np.unique(head["eye_L_faces"][head["eye_L_material"] == 1])]
    assert (np.abs(eye.astype(float) - iris).max(1) < 2).mean() > 0.5


def test_parts_map_into_the_face_texture(bfm, rig, subject):
    """Every part has a place in the face's UV layout (its render UV map in Blender, read
    by UV passes): the eyes land on the photo's eyes, the mouth parts between the lips."""
    _, head = subject
    for name, key in (("eye_L", "eye_l"), ("eye_R", "eye_r"), ("teeth_upper", "mouth"), ("mouth", "mouth")):
        fuv = head[f"{name}_face_uv"]
        assert fuv.shape == (len(head[f"{name}_vertices"]), 2) and (fuv >= 0).all() and (fuv <= 1).all()
        region = bfm.uv[rig.openings[key]]
        lo, hi = region.min(0) - 1e-6, region.max(0) + 1e-6
        assert ((fuv >= lo) & (fuv <= hi)).all(), name


def test_shape_fields_give_the_subject_spline(bfm, rig, parts):
    """The per-coefficient fields (the fit's fast path) place every part where the subject's
    own spline does: the spline is linear in its data and a neutral subject is linear in
    its BFM shape coefficients."""
    from facedet3d.rig.head import subject_head

    shape = np.random.default_rng(5).normal(0, 1, bfm.shape_basis.shape[1]).astype(np.float32) * 1e5
    v = bfm.vertices(shape, None).astype(np.float64)
    tex = np.full((256, 256, 3), (200, 150, 120), np.uint8)
    mask = np.full((256, 256), 255, np.uint8)
    slow = subject_head(v, rig, tex, mask, bfm.uv, parts)
    fast = subject_head(v, rig, tex, mask, bfm.uv, parts, shape_coeffs=shape)
    moved = max(float(np.abs(slow[f"{n}_vertices"] - parts[f"{n}_vertices"] * 1e-6).max()) for n in ("head", "mouth"))
    assert moved > 1e-3  # the subject differs from the mean by millimetres
    for k in slow:
        if k.endswith("_vertices") or k.endswith("_centre"):
            np.testing.assert_allclose(fast[k], slow[k], atol=1e-8)  # metres


def test_mouth_inside_darkens_with_depth(subject):
    """The mouth's inside parts are in shade behind the lips: the teeth and the socket's
    deepest vertices are much darker than those at the front (the front incisors keep the
    full tooth colour)."""
    from facedet3d.rig.head import TEETH_RGB

    _, head = subject
    for name in ("teeth_upper", "teeth_lower", "mouth"):
        z = head[f"{name}_vertices"][:, 2]
        lum = head[f"{name}_colour"].astype(float).mean(1)
        front, back = lum[z >= np.percentile(z, 98)], lum[z <= np.percentile(z, 5)]
        assert back.mean() < 0.5 * front.mean(), name
    z = head["teeth_upper_vertices"][:, 2]
    tooth = head["teeth_upper_material"]
    ids = np.unique(head["teeth_upper_faces"][tooth == 0])
    front = ids[z[ids] >= np.percentile(z[ids], 99)]
    assert np.abs(head["teeth_upper_colour"][front].astype(float) - TEETH_RGB).max() < 15


def test_mouth_socket_does_not_spike(bfm, rig, parts):
    """The open mouth's socket stretches smoothly: no socket or seam-strip triangle's longest
    edge grows more than 4x (AU25 + AU26, jawOpen 1). Each socket vertex near the lips takes
    the motion of the lips' slit on its own side (palate: upper lip; floor: lower); by the
    nearest slit copy alone (the slit is 1 mm tall at rest) some floor vertices stayed up
    with the upper lip: triangles stretched 4.7x into spikes across the open mouth."""
    from facedet3d.rig import facs

    names = [str(n) for n in rig.names]
    v0, f = parts["mouth_vertices"], parts["mouth_faces"]

    def longest(v):
        return np.max([np.linalg.norm(v[f[:, i]] - v[f[:, (i + 1) % 3]], axis=1) for i in range(3)], 0)

    aus, sides = facs.target_aus(["25=1", "26=1"], None)
    for w in (facs.blendshape_weights(aus, names, sides), np.eye(len(names))[names.index("jawOpen")]):
        v1 = v0 + np.tensordot(np.asarray(w, np.float32), parts["mouth_deltas"], axes=1)
        ratio = longest(v1) / np.maximum(longest(v0), 1.0)
        assert ratio.max() < 4.0, ratio.max()


def test_zip_loops_meets_at_the_anchors():
    """Two mouth-like loops whose upper halves hold different shares of their length (a
    flat slit; a socket rim arched above, flat below): by arc length alone the strip
    reaches the left corners at different places, joining one lip to the other there;
    anchored at the corners (least / largest x) the corners are joined to each other."""
    from facedet3d.rig.seam import zip_loops

    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    a = np.c_[20 * np.cos(t), 2 * np.sin(t), 0 * t]  # a flat slit, starting at the right corner
    b = np.c_[18 * np.cos(t), np.where(t < np.pi, 15.0, 2.0) * np.sin(t), 0 * t - 5]
    b = np.roll(b, 7, axis=0)  # B starts elsewhere
    left = (int(a[:, 0].argmin()), len(a) + int(b[:, 0].argmin()))
    anchors = sorted([(int(a[:, 0].argmin()), int(b[:, 0].argmin())), (int(a[:, 0].argmax()), int(b[:, 0].argmax()))])
    for anch, joined in ((None, False), (anchors, True)):
        tris = zip_loops(a, b, anch)
        assert len(tris) == len(a) + len(b)  # one triangle per loop edge
        assert any(left[0] in tri and left[1] in tri for tri in tris.tolist()) == joined


def test_head_face_uv_reads_skin_not_hair(bfm, rig, parts):
    """The head's render UVs (what the neural pass reads on the scalp and neck) point at the
    face border's skin texels only: with the upper border painted as dark hair, no head
    vertex samples it (it did: the nearest border texel, hair included)."""
    from facedet3d.rig.head import _sample_texture, subject_head

    s = 256
    tex = np.full((s, s, 3), (205, 150, 125), np.uint8)
    seam = parts["head_seam_bfm"]
    top = seam[bfm.mean[seam, 1] > np.median(bfm.mean[seam, 1])]  # the upper half of the border
    uv = bfm.uv[top]
    x = np.clip((uv[:, 0] * s).astype(int), 0, s - 1)
    y = np.clip(((1 - uv[:, 1]) * s).astype(int), 0, s - 1)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            tex[np.clip(y + dy, 0, s - 1), np.clip(x + dx, 0, s - 1)] = (30, 25, 20)
    mask = np.full((s, s), 255, np.uint8)
    head = subject_head(bfm.mean, rig, tex, mask, bfm.uv, parts)
    seen = _sample_texture(tex, head["head_face_uv"])
    assert (seen.mean(1) < 100).mean() < 0.01  # hardly any head vertex on hair texels


def _painted(bfm, vertex_rgb, size=256):
    """A face texture (size², sRGB uint8) painted from per-vertex colours, all observed."""
    from facedet3d.fit.texture import uv_layout

    lay = uv_layout(size)
    tex = np.clip(lay.to_image(lay.sample(np.asarray(vertex_rgb, np.float32)), fill=0.0), 0, 255).astype(np.uint8)
    return tex, (lay.chart * 255).astype(np.uint8)


def test_head_skin_continues_the_face_lighting(bfm, rig, parts):
    """A face lit from above (brighter where its normals face up) gives a head whose
    upward-facing skin (scalp) is brighter than its downward-facing skin (under the jaw),
    in the face's chroma; the old head was one flat tone away from the seam."""
    from facedet3d.rig.head import subject_head
    from facedet3d.rig.head_skin import outward_normals

    albedo = np.array([200.0, 150.0, 125.0])
    n = outward_normals(bfm.mean.astype(np.float64), bfm.faces)
    tex, mask = _painted(bfm, albedo[None] * (1.0 + 0.2 * n[:, 1:2]))
    head = subject_head(bfm.mean, rig, tex, mask, bfm.uv, parts)
    v = head["head_vertices"].astype(np.float64)
    hn = outward_normals(v, head["head_faces"])
    col = head["head_colour"].astype(np.float64)
    up, down = col[hn[:, 1] > 0.7].mean(0), col[hn[:, 1] < -0.7].mean(0)
    assert (up - down).min() > 0.15 * albedo.min()  # the light gradient continues onto the head
    ratio = up / up.sum()
    assert np.abs(ratio - albedo / albedo.sum()).max() < 0.02  # the skin's chroma, not a tint


def test_head_skin_has_no_streaks(bfm, rig, parts):
    """Texel noise at the face's border does not streak onto the head: head vertices 5-20 mm
    from the seam vary far less than the border (the old nearest-border copy carried it)."""
    from scipy.spatial import cKDTree

    from facedet3d.rig.head import subject_head

    rng = np.random.default_rng(5)
    tex = np.clip(np.array([200, 150, 125]) + rng.uniform(-40, 40, (256, 256, 1)), 0, 255).astype(np.uint8)
    mask = np.full((256, 256), 255, np.uint8)
    head = subject_head(bfm.mean, rig, tex, mask, bfm.uv, parts)
    v = head["head_vertices"].astype(np.float64)
    seam = v[-len(head["head_seam_bfm"]):]
    d = cKDTree(seam).query(v)[0] * 1e3  # mm
    near = (d > 5) & (d < 20)
    col = head["head_colour"].astype(np.float64)
    assert col[near].std(0).max() < 0.25 * 40 / np.sqrt(3)


def test_head_takes_the_photo_where_it_sees_skin(bfm, rig, parts):
    """With the photo and its camera, head vertices the photo sees facing it (the neck's
    front) take the photo's skin colour; those facing away keep the face's model; a photo
    that is not skin there (background) changes nothing."""
    from facedet3d.rig.head import subject_head
    from facedet3d.rig.head_skin import outward_normals

    tex = np.full((256, 256, 3), (200, 150, 125), np.uint8)
    mask = np.full((256, 256), 255, np.uint8)
    base = subject_head(bfm.mean, rig, tex, mask, bfm.uv, parts)
    allv = np.r_[bfm.mean, parts["head_vertices"]].astype(np.float64)
    lo, hi = allv.min(0), allv.max(0)
    k = 480.0 / float((hi - lo)[:2].max())  # pixels per BFM unit, frontal orthographic camera
    proj = np.array([[k, 0, 0, 16 - k * lo[0]], [0, -k, 0, 16 + k * hi[1]], [0, 0, k, 0]])
    skin = np.full((512, 512, 3), (175, 128, 105), np.uint8)  # the same skin, in shade
    head = subject_head(bfm.mean, rig, tex, mask, bfm.uv, parts, photo=skin, projection=proj)
    n = outward_normals(head["head_vertices"].astype(np.float64), head["head_faces"])
    col, col0 = head["head_colour"].astype(float), base["head_colour"].astype(float)
    front, back = n[:, 2] > 0.8, n[:, 2] < -0.5
    assert front.sum() > 50 and back.sum() > 50
    assert np.median(np.abs(col[front] - (175, 128, 105)).max(1)) < 8
    assert np.percentile(np.abs(col[back] - col0[back]).max(1), 90) <= 1  # (the blend softens the silhouette)
    sky = np.full((512, 512, 3), (90, 140, 220), np.uint8)
    head = subject_head(bfm.mean, rig, tex, mask, bfm.uv, parts, photo=sky, projection=proj)
    assert np.abs(head["head_colour"].astype(float) - col0).max() < 1
