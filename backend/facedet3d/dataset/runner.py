"""Runs a dataset job: in this process, on a local process pool, or on Ray.

The three executors take the same tasks and yield the same ``Result`` objects; only the
driver writes (``store``). Each keeps a bounded number of tasks in flight (two per worker)
so memory stays flat however long the input list. Models load once per worker: the pool's
initializer builds one ``Worker`` per process, on Ray each worker is an actor holding one.
A worker process that dies (a crash, out of memory) is replaced; the photos it held are
tried once more, then recorded as failed, and the run goes on.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass

from facedet3d.dataset.inputs import Task, fingerprint, list_inputs
from facedet3d.dataset.sample import JobOptions, Result, Worker
from facedet3d.dataset.store import FORMAT, Store, label_types

_MAX_ATTEMPTS = 2
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


def run_ray(tasks: list[Task], opts: JobOptions, address: str, workers: int | None, threads: int | None):
    """``address``: "local" starts a private Ray instance with ``workers`` CPUs (tests, one
    machine); "auto" or "ray://host:port" / "host:port" joins a running cluster. One actor
    (1 CPU) per worker; photos must be readable at the same path on every node."""
    import ray

    started = not ray.is_initialized()
    if started:
        if address == "local":
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, logging_level="WARNING",
                     log_to_driver=False)
        else:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    try:
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

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
    finally:
        if started:
            ray.shutdown()


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
            command: str | None = None, threads: int | None = None) -> JobReport:
    """Run (or resume) a dataset job; ``threads`` per worker (default: the cores shared
    out among the workers, or the libraries' default for one in-process worker)."""
    from facedet3d.dataset import card

    inputs = list_inputs(input_path, limit)
    labels = label_types(inputs.tasks)
    job = {"format": FORMAT, "input": str(input_path), "fingerprint": fingerprint(inputs.tasks),
           "n_inputs": len(inputs.tasks), "shard_size": int(shard_size), "options": opts.to_json()}
    store = Store(out, shard_size, inputs.tasks, job, labels)
    store.open(overwrite=overwrite)
    store.commit_ready()  # shards a killed run had fully staged
    todo = store.pending()
    prog = Progress(len(inputs.tasks), len(inputs.tasks) - len(todo), stream=stream)
    cpus = os.cpu_count() or 1
    if threads is None:
        threads = max(1, cpus // max(workers, 1)) if (workers > 1 or ray) else None
    if not todo:
        results, executor = iter(()), "nothing to compute"
    elif ray:
        results, executor = run_ray(todo, opts, ray, workers if workers > 1 or ray == "local" else None, threads), f"ray ({ray})"
    elif workers > 1:
        results, executor = run_pool(todo, opts, workers, threads), "process pool"
    else:
        results, executor = run_serial(todo, opts, threads), "serial"
    t0 = time.monotonic()
    for res in results:
        store.put(res)
        prog.update(res.rows[0]["status"])
        store.commit_if_ready(res.index // shard_size)
    store.commit_ready()
    seconds = time.monotonic() - t0
    table = store.consolidate()
    counts = card.write_card(store, inputs, table, opts, command=command, executor=executor, workers=workers)
    return JobReport(str(out), len(inputs.tasks), prog.n, prog.already, round(seconds, 2),
                     round(prog.n / max(seconds, 1e-9), 3), workers, executor, counts,
                     None if prog.steady_rate() is None else round(prog.steady_rate(), 3))


__all__ = ["run_job", "JobOptions", "JobReport", "asdict"]
