"""Where units of work run: in this process, a local process pool, or a Ray cluster.

Every long workflow is a sequence of independent units, each seeded on its own (a group of
images to certify, a benchmark cell, a candidate's fine-tuning, an episode's reward). An executor
maps a module-level function over the units and yields the results *in submission order*: the
driver stays the one writer and appends them exactly as a one-process run does, so a sharded
run's files equal a single-process run's (timings aside), and a killed run resumes the same way.

    executor = get_executor(workers=2)             # or get_executor(ray="auto")
    with executor.session(state) as run:           # state: picklable, shipped once per worker
        for result in run.imap(task, units):       # task(state, unit), a module-level function
            write(result)

A worker that dies is replaced and its units are run again (Ray retries tasks itself; the pool
is restarted, at most ``RESTARTS`` times): units are pure functions of their inputs. Workers get
``threads`` torch threads each (default: this machine's cores shared out). Pickle carries
state, units and results only between this process and the workers it started, never a file.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import ProcessPoolExecutor as _Pool
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

import torch

from robustq.utils.errors import RobustqError

RESTARTS = 3
Task = Callable[[Any, Any], Any]


class Executor:
    """In this process: ``task(state, unit)`` one unit after the other."""

    name = "serial"
    workers = 1

    @contextmanager
    def session(self, state: Any) -> Iterator[Session]:
        yield Session(self, state)

    def describe(self) -> dict[str, Any]:
        """Where the units run, for logs and benchmarks. Run records leave it out on purpose:
        the results do not depend on it, and a run may resume on another executor."""
        return {"executor": self.name, "workers": self.workers}

    def _imap(self, session: Session, task: Task, units: list[Any]) -> Iterator[Any]:
        return (task(session.state, u) for u in units)


class Session:
    """An executor bound to one ``state`` (workers keep it between ``imap`` calls)."""

    def __init__(self, executor: Executor, state: Any) -> None:
        self.executor, self.state = executor, state
        self.token = uuid.uuid4().hex

    def imap(self, task: Task, units: Iterable[Any]) -> Iterator[Any]:
        """``task(state, u)`` for every unit, yielded in the order of ``units``."""
        return self.executor._imap(self, task, list(units))


# ----- a local process pool (``--workers N``)
_WORKER_STATE: dict[str, Any] = {}


def _init_worker(threads: int, token: str, blob: bytes) -> None:
    """A new worker: its threads, its watchdog and the session's state (sent once, with the
    process's start, as bytes this process's driver pickled)."""
    torch.set_num_threads(threads)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    _WORKER_STATE[token] = pickle.loads(blob)   # bytes our driver pickled, over our own pipe


def _exit_with_parent(parent: int) -> None:
    """A worker whose driver is gone (killed with -9) stops too, instead of idling forever."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _run_pool_unit(token: str, task: Task, unit: bytes) -> bytes:
    return _to_bytes(task(_WORKER_STATE[token], pickle.loads(unit)))


def _to_bytes(obj: Any) -> bytes:
    """Plain pickle, not multiprocessing's: torch registers reductions there that pass tensor
    storages as shared-memory file descriptors, which failed in spawned workers ('unable to
    resize file ... Invalid argument') and then left the driver blocked for ever writing the
    rest of a worker's start-up message; bytes cross a pipe the same way everywhere."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        raise RobustqError(f"--workers: this work cannot be shipped to worker processes "
                           f"({e}); run it with --workers 1") from None


class PoolExecutor(Executor):
    """``workers`` local processes (spawned, so no thread state is inherited), ``2 * workers``
    units in flight."""

    name = "pool"

    def __init__(self, workers: int, threads: int | None = None) -> None:
        self.workers = workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self._pool: _Pool | None = None
        self._initargs: tuple = ()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "threads_per_worker": self.threads}

    def _executor(self) -> _Pool:
        if self._pool is None:
            self._pool = _Pool(self.workers, multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=self._initargs)
        return self._pool

    def close(self, grace_s: float = 10.0) -> None:
        """Stop the workers. CPython 3.11's pool neither terminates the survivors of a broken
        pool nor always delivers a restarted pool's shutdown sentinel, and then waits for them
        forever (at exit, too), so a worker still alive after ``grace_s`` is terminated: every
        unit it ran has been yielded by then."""
        if self._pool is not None:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for p in processes:
                p.join(timeout=grace_s)
                if p.is_alive():
                    p.terminate()
                    p.join()
            self._pool = None

    @contextmanager
    def session(self, state: Any) -> Iterator[Session]:
        """The pool's processes for ``state``: each unpickles it once, when it starts."""
        self.close()
        session = Session(self, state)
        self._initargs = (self.threads, session.token, _to_bytes(state))
        try:
            yield session
        finally:
            self.close()

    def _imap(self, session: Session, task: Task, units: list[Any]) -> Iterator[Any]:
        def submit(u: Any) -> Future:
            return self._executor().submit(_run_pool_unit, session.token, task, _to_bytes(u))
        results = _ordered(units, submit, 2 * self.workers, self._restart)
        # the workers' own pickles, over the pool's pipes (what multiprocessing unpickles anyway)
        return (pickle.loads(blob) for blob in results)

    def _restart(self) -> None:
        self.close(grace_s=0.0)         # a broken pool: its units are submitted again


def _ordered(units: list[Any], submit: Callable[[Any], Future], window: int,
             restart: Callable[[], None]) -> Iterator[Any]:
    """Results of ``submit(u)`` in the order of ``units``, at most ``window`` in flight; after
    a worker's death the pool is restarted and every unit not yet yielded is submitted again."""
    next_unit, restarts = 0, 0
    flight: deque[Future] = deque()
    while next_unit < len(units) or flight:
        try:
            while next_unit < len(units) and len(flight) < window:
                flight.append(submit(units[next_unit]))
                next_unit += 1
            result = flight[0].result()
        except BrokenProcessPool:
            restarts += 1
            if restarts > RESTARTS:
                raise RobustqError(f"a worker died {restarts} times; giving up (the finished "
                                   "units are kept: rerun to resume)") from None
            next_unit -= len(flight)
            flight.clear()
            restart()
            continue
        flight.popleft()
        yield result


# ----- Ray (optional extra robustq[ray])
class RayExecutor(Executor):
    """Tasks on a Ray cluster (``address``: ``auto``, ``host:port``, or ``local`` to start one
    here); one CPU per task, Ray's task retries for dead workers."""

    name = "ray"

    def __init__(self, address: str, threads: int = 1) -> None:
        try:
            import ray
        except ImportError:
            raise RobustqError("--ray needs the optional extra: pip install 'robustq[ray]'"
                               ) from None
        self.ray, self.threads = ray, threads
        if not ray.is_initialized():
            try:
                ray.init(address=None if address == "local" else address,
                         include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise RobustqError(f"--ray {address}: cannot reach a Ray cluster ({e})") from None
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        self._remote = ray.remote(num_cpus=threads, max_retries=RESTARTS)(_run_ray_unit)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "threads_per_worker": self.threads}

    def _imap(self, session: Session, task: Task, units: list[Any]) -> Iterator[Any]:
        ref = [self.ray.put(session.state)]    # in a list: Ray passes the reference unresolved
        ray = self.ray

        def submit(u: Any) -> Future:
            return self._remote.remote(session.token, ref, task, u, self.threads).future()
        try:
            yield from _ordered(units, submit, 2 * self.workers, lambda: None)
        except ray.exceptions.RayTaskError as e:
            raise e.cause if isinstance(e.cause, RobustqError) else RobustqError(
                f"Ray: a unit failed ({e.cause!r}); the finished units are kept: rerun to "
                "resume") from None
        except ray.exceptions.RayError as e:
            raise RobustqError(f"Ray: a unit failed ({type(e).__name__}); the finished units "
                               "are kept: rerun to resume") from None


def _run_ray_unit(token: str, ref: list, task: Task, unit: Any, threads: int) -> Any:
    """In a Ray worker: the session's state (fetched once per worker process and session)."""
    if token not in _WORKER_STATE:
        import ray
        torch.set_num_threads(threads)
        _WORKER_STATE.clear()       # a Ray worker process outlives sessions: keep one state
        _WORKER_STATE[token] = ray.get(ref[0])
    return task(_WORKER_STATE[token], unit)


SERIAL = Executor()


def get_executor(workers: int = 1, ray: str | None = None) -> Executor:
    """The executor for ``--workers`` / ``--ray`` (validated here: one line naming the option)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise RobustqError(f"--workers must be an integer >= 1, got {workers!r}")
    if ray is not None:
        if workers != 1:
            raise RobustqError("--workers and --ray exclude each other: Ray sizes itself by "
                               "the cluster's CPUs")
        return RayExecutor(ray)
    return SERIAL if workers == 1 else PoolExecutor(workers)
