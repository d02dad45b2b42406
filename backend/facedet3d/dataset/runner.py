"""Runs a dataset job: in this process, on a local process pool, or on Ray.

The three executors take the same tasks and yield the same ``Result`` objects; only the
driver writes (``store``). Each keeps a bounded number of tasks in flight (two per worker)
so memory stays flat however long the input list. Models load once per worker: the pool's
initializer builds one ``Worker`` per process, on Ray each worker is an actor holding one.
A worker process that dies (a crash, out of memory) is replaced; the photos it held are
tried once more, then recorded as failed, and the run goes on.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import asdict, dataclass

from facedet3d.dataset.inputs import Task, fingerprint, list_inputs
from facedet3d.dataset.sample import JobOptions, Result, Worker, finish_result
from facedet3d.dataset.store import FORMAT, Store, label_types

_MAX_ATTEMPTS = 2
BLENDER_RENDERERS = ("cycles", "eevee")
_DIED = "worker process died while processing this photo (crash or out of memory), twice"

_WORKER: Worker | None = None  # one per pool process


def _init_pool_worker(opts: JobOptions, threads: int | None) -> None:
    global _WORKER
    _WORKER = Worker(opts, threads)


def _pool_process(task: Task) -> Result:
    return _WORKER.process(task)


def _died(task: Task) -> Result:
    return Result(task.index, task.key, rows=[{"key": task.key, "index": task.index, "kind": "photo", "path": task.path,
                                               "relpath": task.relpath, "labels": task.labels, "status": "failed",
                                               "reason": _DIED}])


def run_serial(tasks: list[Task], opts: JobOptions, threads: int | None = None):
    w = Worker(opts, threads)
    for t in tasks:
        yield w.process(t)


def run_pool(tasks: list[Task], opts: JobOptions, workers: int, threads: int | None):
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")  # no fork of a process that may hold torch/ONNX threads

    def new_pool():
        return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_pool_worker, initargs=(opts, threads))

    queue = list(reversed(tasks))
    attempts: dict[int, int] = {}
    pool = new_pool()
    inflight = {}
    try:
        while queue or inflight:
            while queue and len(inflight) < 2 * workers:
                t = queue.pop()
                inflight[pool.submit(_pool_process, t)] = t
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                t = inflight.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    broken = True
                    attempts[t.index] = attempts.get(t.index, 0) + 1
                    if attempts[t.index] >= _MAX_ATTEMPTS:
                        yield _died(t)
                    else:
                        queue.append(t)
            if broken:
                for fut, t in list(inflight.items()):  # the whole pool went down with it
                    attempts[t.index] = attempts.get(t.index, 0) + 1
                    if attempts[t.index] >= _MAX_ATTEMPTS:
                        yield _died(t)
                    else:
                        queue.append(t)
                inflight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def ray_session(address: str, workers: int | None):
    """Ray for the job: "local" starts a private instance with ``workers`` CPUs (tests, one
    machine); "auto" or "ray://host:port" / "host:port" joins a running cluster. Shut down
    at the end only when this job started it."""
    import ray

    started = not ray.is_initialized()
    if started:
        if address == "local":
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, logging_level="WARNING",
                     log_to_driver=False)
        else:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def run_ray(tasks: list[Task], opts: JobOptions, workers: int | None, threads: int | None):
    """One fit actor (1 CPU) per worker, in a running ``ray_session``; photos must be
    readable at the same path on every node. With a Blender renderer half the CPUs hold fit
    actors and the Blender tasks (``RenderStage``) get the other half."""
    import ray

    n = fit_actors(workers or max(1, int(ray.cluster_resources().get("CPU", 1))), opts.renderer)

    @ray.remote(num_cpus=1)
    class RayWorker:
        def __init__(self, o, th):
            self.w = Worker(o, th)

        def process(self, task):
            return self.w.process(task)

    actors = [RayWorker.remote(opts, threads) for _ in range(n)]
    queue = list(reversed(tasks))
    attempts: dict[int, int] = {}
    inflight = {}  # ObjectRef -> (task, actor index)
    load = [0] * n
    while queue or inflight:
        while queue and min(load) < 2:
            a = load.index(min(load))
            t = queue.pop()
            inflight[actors[a].process.remote(t)] = (t, a)
            load[a] += 1
        ready, _ = ray.wait(list(inflight), num_returns=1)
        for ref in ready:
            t, a = inflight.pop(ref)
            load[a] -= 1
            try:
                yield ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                attempts[t.index] = attempts.get(t.index, 0) + 1
                if attempts[t.index] >= _MAX_ATTEMPTS:
                    yield _died(t)
                else:
                    queue.append(t)
                ray.kill(actors[a], no_restart=True)
                actors[a] = RayWorker.remote(opts, threads)


def fit_actors(cpus: int, renderer: str) -> int:
    """Fit actors on Ray: one per CPU; half of them with a Blender renderer (its render
    tasks, 1 CPU each, use the rest: a Blender frame costs more than a fit)."""
    return max(1, cpus // 2) if renderer in BLENDER_RENDERERS else cpus


class RenderStage:
    """Blender synthesis as tasks of their own: a photo's ``Pending`` targets go to
    ``blender.render_pending`` in the driver (serial), in a thread that waits on its
    Blender process (local pool: ``slots`` at a time), or as a Ray task (1 CPU each).
    ``submit`` returns a ``concurrent.futures.Future`` of [(row, members)]."""

    def __init__(self, cfg, jpeg_quality: int, kind: str, slots: int):
        from concurrent.futures import ThreadPoolExecutor

        self.cfg, self.q, self.kind, self.slots = cfg, jpeg_quality, kind, max(1, slots)
        self.pool = ThreadPoolExecutor(self.slots) if kind == "pool" else None
        self.remote = None
        if kind == "ray":
            import ray

            from facedet3d.dataset.blender import render_pending

            self.remote = ray.remote(num_cpus=1, max_retries=1)(render_pending)

    def submit(self, pending):
        from concurrent.futures import Future

        from facedet3d.dataset.blender import render_pending

        if self.remote is not None:
            return self.remote.remote(pending, self.cfg, self.q).future()
        if self.pool is not None:
            return self.pool.submit(render_pending, pending, self.cfg, self.q)
        fut = Future()
        fut.set_result(render_pending(pending, self.cfg, self.q))
        return fut

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _render_failed(res: Result, exc: BaseException, engine: str) -> list:
    from facedet3d.dataset.sample import _one_line

    return [({**t["row"], "status": "failed", "reason": f"{engine} render task failed: {_one_line(exc)}",
              "renderer": engine}, []) for t in res.pending.targets]


class Progress:
    """One line on stderr at most every ``every`` seconds: done/total, rate, ETA."""

    def __init__(self, total: int, already: int, every: float = 2.0, stream=None):
        self.total, self.already, self.every = total, already, every
        self.stream = stream or sys.stderr
        self.t0 = self.last = time.monotonic()
        self.t_first = self.t_last = None  # first and latest result (steady-state rate)
        self.n = 0
        self.counts = {"ok": 0, "failed": 0, "filtered": 0}

    def update(self, status: str, force: bool = False) -> None:
        self.n += 1
        self.counts[status] = self.counts.get(status, 0) + 1
        now = time.monotonic()
        self.t_first = self.t_first or now
        self.t_last = now
        if force or now - self.last >= self.every or self.already + self.n == self.total:
            self.last = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def rate(self) -> float:
        """Photos per second: from the first result on once there are a few (model loading
        and worker start-up are not what the remaining photos will cost)."""
        if self.n >= 3:
            return (self.n - 1) / max(self.t_last - self.t_first, 1e-9)
        return self.n / max(time.monotonic() - self.t0, 1e-9)

    def steady_rate(self) -> float | None:
        return (self.n - 1) / max(self.t_last - self.t_first, 1e-9) if self.n >= 2 else None

    def line(self) -> str:
        done = self.already + self.n
        rate = self.rate()
        left = self.total - done
        eta = left / rate if rate > 0 else float("inf")
        eta_s = "--" if eta == float("inf") else (f"{eta:.0f} s" if eta < 120 else f"{eta / 60:.1f} min")
        c = self.counts
        return (f"dataset: {done}/{self.total} photos ({c['ok']} ok, {c['failed']} failed, {c['filtered']} filtered"
                f"{f', {self.already} from an earlier run' if self.already else ''}) {rate:.2f} photos/s, ETA {eta_s}")


@dataclass
class JobReport:
    out: str
    inputs: int
    computed: int
    resumed: int
    seconds: float
    photos_per_s: float
    workers: int
    executor: str
    counts: dict
    steady_photos_per_s: float | None  # from the first result to the last (start-up excluded)


def run_job(input_path: str, out: str, opts: JobOptions, workers: int = 1, ray: str | None = None,
            shard_size: int = 64, limit: int | None = None, overwrite: bool = False, stream=None,
            command: str | None = None, threads: int | None = None, addon: str | None = None,
            blender: str | None = None) -> JobReport:
    """Run (or resume) a dataset job; ``threads`` per worker (default: the cores shared
    out among the workers, or the libraries' default for one in-process worker).
    ``addon``/``blender``: where the Blender renderer's script and Blender are (see
    ``dataset.blender``); checked before anything is written."""
    from facedet3d.dataset import card

    if opts.renderer not in BLENDER_RENDERERS + ("raster",):
        raise ValueError(f"unknown renderer {opts.renderer!r}")
    cpus = os.cpu_count() or 1
    if threads is None:
        threads = max(1, cpus // max(workers, 1)) if (workers > 1 or ray) else None
    cfg = None
    if opts.expressions and opts.renderer in BLENDER_RENDERERS:
        from facedet3d.dataset.blender import BlenderConfig, check_blender, find_script

        cfg = BlenderConfig(opts.renderer, opts.render_samples, str(find_script(addon).parent), blender, threads or 0)
        check_blender(cfg)
    inputs = list_inputs(input_path, limit)
    labels = label_types(inputs.tasks)
    job = {"format": FORMAT, "input": str(input_path), "fingerprint": fingerprint(inputs.tasks),
           "n_inputs": len(inputs.tasks), "shard_size": int(shard_size), "options": opts.to_json()}
    store = Store(out, shard_size, inputs.tasks, job, labels)
    store.open(overwrite=overwrite)
    store.commit_ready()  # shards a killed run had fully staged
    todo = store.pending()
    prog = Progress(len(inputs.tasks), len(inputs.tasks) - len(todo), stream=stream)
    with contextlib.ExitStack() as stack:
        ray_workers = workers if workers > 1 or ray == "local" else None
        if todo and ray:
            ray_cpus = int(stack.enter_context(ray_session(ray, ray_workers)).cluster_resources().get("CPU", 1))
        if not todo:
            results, executor = iter(()), "nothing to compute"
        elif ray:
            results, executor = run_ray(todo, opts, ray_workers, threads), f"ray ({ray})"
        elif workers > 1:
            results, executor = run_pool(todo, opts, workers, threads), "process pool"
        else:
            results, executor = run_serial(todo, opts, threads), "serial"
        stage = None
        if cfg is not None and todo:
            kind = "ray" if ray else ("pool" if workers > 1 else "serial")
            slots = max(1, ray_cpus - fit_actors(ray_workers or ray_cpus, opts.renderer)) if ray else workers
            stage = RenderStage(cfg, opts.jpeg_quality, kind, slots)
            stack.callback(stage.close)
        t0 = time.monotonic()
        for res in _rendered(results, stage):
            store.put(res)
            prog.update(res.rows[0]["status"])
            store.commit_if_ready(res.index // shard_size)
        seconds = time.monotonic() - t0
    store.commit_ready()
    table = store.consolidate()
    counts = card.write_card(store, inputs, table, opts, command=command, executor=executor, workers=workers)
    return JobReport(str(out), len(inputs.tasks), prog.n, prog.already, round(seconds, 2),
                     round(prog.n / max(seconds, 1e-9), 3), workers, executor, counts,
                     None if prog.steady_rate() is None else round(prog.steady_rate(), 3))


def _rendered(results, stage: RenderStage | None):
    """The fit results, each once its Blender targets are rendered. At most two photos per
    render slot wait for Blender, so memory stays bounded."""
    from concurrent.futures import FIRST_COMPLETED, wait

    held = {}  # Future -> Result

    def done(futs):
        for fut in futs:
            res = held.pop(fut)
            try:
                rendered = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost task fails its targets, the run goes on
                rendered = _render_failed(res, exc, stage.cfg.engine)
            yield finish_result(res, rendered)

    for res in results:
        if res.pending is None:
            yield res
            continue
        if stage is None:
            raise RuntimeError("a Blender target without a render stage")
        held[stage.submit(res.pending)] = res
        ready = [f for f in held if f.done()]
        if len(held) - len(ready) >= 2 * stage.slots:
            ready = list(wait(held, return_when=FIRST_COMPLETED).done)
        yield from done(ready)
    while held:
        yield from done(list(wait(held, return_when=FIRST_COMPLETED).done))


__all__ = ["run_job", "JobOptions", "JobReport", "asdict"]
