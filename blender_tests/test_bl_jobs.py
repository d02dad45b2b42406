"""The modal path: tasks ticked the way the UI's timer ticks them (progress, the main thread
never waits on the backend, Esc/Cancel between steps leaves nothing half-done), and the
server start-up off the main thread."""

from __future__ import annotations

import os
import time

import bpy
import numpy as np

from conftest import PHOTO, FakeDetailClient, mod, use_client


class SlowClient(FakeDetailClient):
    """Fake details; fits through the real (cached) backend after ``fit_delay_s``."""

    def __init__(self, inner, fit_delay_s=0.0, delay_s=0.0, warning=None):
        super().__init__(inner, delay_s=delay_s)
        self.fit_delay_s, self.warning = fit_delay_s, warning

    def fit(self, call):
        time.sleep(self.fit_delay_s)
        face = self.inner.fit(call)
        if self.warning:  # as the backend sends a FaceAsset's meta.warnings
            face.warnings = [*face.warnings, self.warning]
        return face


def _tick_until(task, pred=lambda t: False, budget_s=0.01, limit_s=120.0):
    """Tick as the timer does (every ~10 ms); returns the durations of the ticks that came
    back while a worker was computing."""
    waits, t_end = [], time.monotonic() + limit_s
    while not task.finished and not pred(task):
        t0 = time.perf_counter()
        task.tick(budget_s)
        if task.waiting:
            waits.append(time.perf_counter() - t0)
        time.sleep(0.01)
        assert time.monotonic() < t_end, task.messages
    return waits


def test_import_ticks_with_progress_and_never_waits_on_the_backend(scene, session_client, tmp_path):
    jobs, ops = mod("jobs"), mod("operators")
    warning = "sRGB assumed: the embedded colour profile is unreadable (test)"
    client = SlowClient(session_client, fit_delay_s=0.5, warning=warning)
    steps = ops.import_steps(str(PHOTO), str(PHOTO), str(tmp_path / "asset"), 512, lambda: client)
    task = jobs.Task("Import Photo", steps).start()
    waits = _tick_until(task)
    assert task.state == "done", task.error
    assert len(waits) >= 10 and max(waits) < 0.05  # the fit ran in a worker, ticks came back at once
    assert task.messages[:3] == ["starting the backend", "fitting the photo", "predicting details"]
    assert "building the face" in task.messages and task.result.startswith("Imported")
    assert warning in task.result  # the fit's warnings reach the user in the import's report
    assert mod("operators").face_object(bpy.context) is not None and task not in jobs.active()


def test_cancelled_import_builds_nothing(scene, session_client, tmp_path):
    jobs, ops = mod("jobs"), mod("operators")
    before = len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.images)
    client = SlowClient(session_client, fit_delay_s=0.5)
    task = jobs.Task("Import Photo", ops.import_steps(str(PHOTO), str(PHOTO), str(tmp_path), 512,
                                                      lambda: client)).start()
    _tick_until(task, lambda t: "fitting the photo" in t.messages)
    jobs.cancel_all()  # what the panel's X and Esc do
    _tick_until(task)
    assert task.state == "cancelled"
    assert (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.images)) == before


def test_face_builds_in_short_steps_and_a_cancel_mid_build_leaves_nothing(scene, face_data):
    jobs, build = mod("jobs"), mod("build")
    before = len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.images), len(bpy.data.materials)
    prepared = build.prepare(face_data)  # what Import runs in a worker (head.npz, seam weights)
    task = jobs.Task("Build", build.build_steps(bpy.context, face_data, prepared=prepared)).start()
    _tick_until(task, lambda t: any("shape keys 16" in m for m in t.messages), budget_s=0.0)
    task.cancel()
    _tick_until(task)
    assert task.state == "cancelled"
    assert (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.images), len(bpy.data.materials)) == before
    task, longest, t_all = jobs.Task("Build", build.build_steps(bpy.context, face_data, prepared=prepared)).start(), 0.0, 0.0
    while not task.finished:
        t0 = time.perf_counter()
        task.tick(0.0)  # one step per tick, as a busy timer would
        longest, t_all = max(longest, time.perf_counter() - t0), t_all + time.perf_counter() - t0
    assert task.state == "done", task.error
    obj, cam = task.result
    assert obj.name in bpy.context.scene.objects and len(obj.data.shape_keys.key_blocks) == 54
    assert len(mod("adapters.parts").part_objects(obj)) == 6 and obj.vertex_groups[0].name == "FaceDet3D seam fade"
    print(f"\nface build: {t_all:.2f} s of main-thread work, longest step {longest:.3f} s")
    assert sum("building the face" in m for m in task.messages) >= 10 and longest < t_all / 3


def test_bake_ticks_and_cancel_leaves_the_face_live(face, session_client, tmp_path):
    jobs, bake = mod("jobs"), mod("bake")
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 40
    with mod("live").quiet():
        mod("adapters.animation").keyframe_aus(face, [1, 40], np.stack([np.zeros(17), np.full(17, 0.8)]))
    slow = SlowClient(session_client, delay_s=0.05)
    folder = tmp_path / "details"
    task = jobs.Task("Bake", lambda t: bake.bake_steps(bpy.context, face, lambda: slow, str(folder), task=t)).start()
    _tick_until(task, lambda t: slow.calls >= 1)
    task.cancel()
    _tick_until(task)
    assert task.state == "cancelled" and slow.calls < 5  # the worker stopped between batches
    assert not face.facedet3d.baked_dir and not folder.exists()
    assert mod("adapters.displacement").image(face).source != "SEQUENCE"
    # uncancelled, the same steps finish with progress up to 100 %
    task = jobs.Task("Bake", lambda t: bake.bake_steps(bpy.context, face, lambda: slow, str(folder), task=t)).start()
    _tick_until(task)
    assert task.state == "done" and task.fraction == 1.0 and len(task.result) == 40
    assert any(m.startswith("writing 40/40") for m in task.messages)


def test_render_ticks_one_frame_per_step_and_stops_between_frames(face, tmp_path):
    jobs, render = mod("jobs"), mod("render")
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end, scene.frame_current = 1, 3, 2
    render.configure(scene, "cycles", 1)
    scene.render.resolution_x = scene.render.resolution_y = 16
    task = jobs.Task("Render", render.render_steps(bpy.context, str(tmp_path))).start()
    _tick_until(task, lambda t: any(m.startswith("frame 2") for m in t.messages), budget_s=0.0)
    task.cancel()
    _tick_until(task)
    assert task.state == "cancelled"
    assert sorted(os.listdir(tmp_path / "frames")) == ["0001.png"] and scene.frame_current == 2


def test_render_defaults_are_fast_not_the_scenes_4096(scene):
    render = mod("render")
    scene.cycles.samples = 4096
    scene.cycles.use_adaptive_sampling = False
    render.configure(scene, "cycles")
    assert scene.cycles.samples == render.DEFAULT_SAMPLES["CYCLES"] and scene.cycles.use_adaptive_sampling
    assert scene.cycles.use_denoising == render.has_oidn() and render.has_oidn()
    render.configure(scene, "eevee")
    assert scene.eevee.taa_render_samples == render.DEFAULT_SAMPLES["EEVEE"]
    assert render.fast_engine("llvmpipe (LLVM 19.1.7, 256 bits)") == "CYCLES"
    assert render.fast_engine("NVIDIA GeForce RTX 4090/PCIe/SSE2") == "BLENDER_EEVEE"
    assert render.gl_renderer() == "" or isinstance(render.gl_renderer(), str)


def test_first_detail_request_starts_the_backend_off_the_main_thread(face, session_client):
    live, client_mod = mod("live"), mod("client")
    fake = FakeDetailClient(session_client)
    use_client(None)
    started = []

    def slow_start(*settings):  # what starting a server costs (2-3 s measured)
        time.sleep(1.0)
        started.append(settings)
        return fake

    real = client_mod.get_client
    client_mod.get_client = slow_start
    try:
        t0 = time.perf_counter()
        face.facedet3d.au12 = 0.7
        assert time.perf_counter() - t0 < 0.3  # the slider came back at once
        live.flush()
    finally:
        client_mod.get_client = real
        use_client(session_client)
    assert started and fake.calls == 1
    np.testing.assert_allclose(mod("adapters.displacement").get_pixels(mod("adapters.displacement").image(face)),
                               FakeDetailClient.expected(mod("properties").au_vector(face), 256)[0], atol=1e-9)


class _Layout:
    """Records what a draw() puts in the UI (no window in the bpy module)."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        def call(*args, **kw):
            self.log.append((name, args, kw))
            return self if name in ("row", "column", "box", "split") else _Props()

        return call


class _Props:
    def __setattr__(self, name, value):
        pass


def test_panel_and_preferences_draw_with_a_running_job(face, session_client, monkeypatch):
    jobs = mod("jobs")
    log = []
    task = jobs.Task("Bake Details", (m for m in ["x"])).start()
    try:
        panel = type("P", (), {"layout": _Layout(log)})()
        mod("panel").FACEDET3D_PT_face.draw(panel, bpy.context)
        labels = [kw.get("text", "") for name, _, kw in log if name == "label"]
        assert "Bake Details" in labels and any("go to" in t or "Save the .blend" in t for t in labels)
        ops = [args[0] for name, args, _ in log if name == "operator"]
        assert "facedet3d.cancel" in ops and ops.count("facedet3d.bake_details") == 2
        prefs = type("Q", (), {"layout": _Layout(log), "backend_mode": "AUTO", "setup_venv": "", "setup_python": ""})()
        mod("preferences").FACEDET3D_AP_preferences.draw(prefs, bpy.context)
        assert "facedet3d.setup_backend" in [args[0] for name, args, _ in log if name == "operator"]
    finally:
        task.cancel()
        task.tick()


def test_check_backend_runs_as_a_task_and_shows_failures(scene, session_client):
    assert bpy.ops.facedet3d.backend_status() == {"FINISHED"}
    assert scene.facedet3d.status.startswith("in-process")
    client_mod = mod("client")

    class Down:
        mode = "server"

        def status(self):
            raise client_mod.BackendUnavailable("backend server at http://127.0.0.1:9 is not reachable")

        def close(self):
            pass

    use_client(Down())
    import pytest

    with pytest.raises(RuntimeError, match="not reachable"):
        bpy.ops.facedet3d.backend_status()
    assert scene.facedet3d.status.startswith("unavailable: backend server")


def test_import_adds_the_light_the_sidebar_chose(scene, session_client, tmp_path):
    from mathutils import Vector

    jobs, ops = mod("jobs"), mod("operators")
    scene.facedet3d.light = "front"
    task = jobs.Task("Import Photo", ops.import_steps(str(PHOTO), str(PHOTO), str(tmp_path / "asset"), 512,
                                                     session_client)).start()
    _tick_until(task)
    assert task.state == "done", task.error
    suns = [o for o in scene.objects if o.type == "LIGHT"]
    assert len(suns) == 1 and abs(suns[0].data.energy - mod("build").LIGHTS["front"][2]) < 1e-5
    cam = mod("operators").face_object(bpy.context).facedet3d.camera  # the photo's camera
    view = cam.matrix_world.to_3x3() @ Vector((0, 0, -1))
    assert (suns[0].matrix_world.to_3x3() @ Vector((0, 0, -1))).angle(view) < 1e-3  # shines from the camera
    # the menu re-aims the face's own sun (55 degrees above the view for the key) ...
    scene.facedet3d.light = "key"
    key_dir = suns[0].matrix_world.to_3x3() @ Vector((0, 0, -1))
    assert 50 < np.degrees(key_dir.angle(view)) < 65 and suns[0]["facedet3d_light"] == "key"
    # ... and leaves a light the user added alone
    mine = bpy.data.objects.new("my lamp", bpy.data.lights.new("my lamp", "POINT"))
    scene.collection.objects.link(mine)
    scene.facedet3d.light = "front"
    assert mine.matrix_world == mine.matrix_world.Identity(4)
    assert (suns[0].matrix_world.to_3x3() @ Vector((0, 0, -1))).angle(view) < 1e-3
