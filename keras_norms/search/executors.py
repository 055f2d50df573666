"""Where the search's evaluations run: one interface, three executors.

`Executor.submit(fn, *args, **kwargs)` returns a standard `concurrent.futures.Future`, so callers
use `concurrent.futures.wait(..., return_when=FIRST_COMPLETED)` and `as_completed` on any of them:

- `SerialExecutor`: runs each task in this process, at `submit()`; the future is already done when
  it comes back. Deterministic; no time limit can be enforced in-process (it takes no `timeout`).
- `ProcessExecutor`: a pool of `workers` persistent processes, started with the `spawn` method
  (never `fork`: TensorFlow, JAX and PyTorch are not fork-safe). Each imports Keras and its backend
  once, then serves many tasks; a dispatcher thread in this process hands out queued tasks,
  collects results and enforces the time limit. One GPU per worker where there are GPUs.
- `RayExecutor`: a pool of `workers` Ray actors (each imports the backend once) on a local Ray or a
  Ray cluster, at most one task in flight per actor.

Failure semantics, the same for the three (except that a serial task can neither crash apart from
the search nor time out): a future's `result()` returns the task's return value, or raises
`WorkerFailure` with a `reason`:

- `"error"`: the task raised; `detail` is the traceback text. The worker keeps serving.
- `"crashed"`: the worker process died while running the task (a segfault, `os._exit`, SIGKILL,
  the out-of-memory killer); `detail` says how. A fresh worker replaces it.
- `"timeout"`: the task ran past `timeout` seconds (counted from when a worker took it, not while
  it waited in the queue): its worker is killed and replaced.

The executor keeps working after all of these. Tasks must be picklable top-level functions (and
arguments) that the workers can import: the process pool passes this process's `sys.path` to its
workers, the Ray pool passes it as `PYTHONPATH` (see `RayExecutor`). A script that uses the
process pool must guard its entry point with `if __name__ == "__main__":`, as with any `spawn`
pool: each worker imports the script's main module.

>>> with make_executor("process", workers=2, timeout=600) as pool:  # doctest: +SKIP
...     futures = [pool.submit(evaluate, genome, config) for genome in genomes]
...     for future in concurrent.futures.as_completed(futures):
...         try:
...             print(future.result())
...         except WorkerFailure as failure:
...             print(failure.reason, failure.detail[-200:])
"""

from __future__ import annotations

import abc
import atexit
import collections
import concurrent.futures
import contextlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.util
import os
import pickle
import shutil
import signal
import site
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from keras_norms.arguments import check_choice, check_int, check_positive

_log = logging.getLogger(__name__)

REASONS = ("crashed", "timeout", "error")
KINDS = ("serial", "process", "ray")
# The thread-count variables set in each worker (unless set by the user): OpenMP (PyTorch's
# intra-op pool, oneDNN), MKL, OpenBLAS, and TensorFlow's intra- and inter-op pools.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
# Consecutive workers that die (or raise) before they are ready, after which a pool gives up.
_STARTUP_ATTEMPTS = 3
_RAY_MISSING = 'RayExecutor needs Ray: pip install "keras-norms[search]" (or pip install "ray>=2.9").'


class WorkerFailure(Exception):
    """The failure of a task in an executor: `reason` is "crashed" (the worker process died),
    "timeout" (it ran past the executor's time limit) or "error" (the task raised); `detail` says
    more (for "error", the task's traceback text)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        check_choice("reason", reason, REASONS)
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


class Executor(abc.ABC):
    """Runs tasks somewhere and hands back `concurrent.futures.Future`s; a context manager whose
    exit calls `shutdown()`. `workers` is how many tasks run at once."""

    workers: int = 1

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        """Schedules `fn(*args, **kwargs)`; the future's `result()` is its return value, or raises
        `WorkerFailure`."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stops the workers (tasks still queued are cancelled, running ones fail); idempotent."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


class SerialExecutor(Executor):
    """Runs each task in this process, at `submit()`, in submission order: deterministic.

    A task that raises gives a future failing with `WorkerFailure("error", traceback)`;
    `KeyboardInterrupt` and `SystemExit` propagate. There is no time limit (a running task cannot be
    stopped from its own process) and a crash takes the caller down with it.

    >>> with SerialExecutor() as pool:
    ...     pool.submit(pow, 2, 10).result()
    1024
    """

    workers = 1

    def __init__(self) -> None:
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        if self._closed:
            raise RuntimeError("cannot submit to a SerialExecutor after shutdown()")
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        try:
            result = fn(*args, **kwargs)
        except Exception:
            future.set_exception(WorkerFailure("error", traceback.format_exc()))
        else:
            future.set_result(result)
        return future

    def shutdown(self) -> None:
        self._closed = True


# ---------------------------------------------------------------------------------------------
# Worker environments


def _default_backend() -> str | None:
    """The parent's Keras backend if Keras is imported, else `KERAS_BACKEND` (None: Keras' default)."""
    keras = sys.modules.get("keras")
    if keras is not None:
        with contextlib.suppress(Exception):
            return str(keras.backend.backend())
    return os.environ.get("KERAS_BACKEND") or None


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _gpu_count() -> int:
    """GPUs listed by `nvidia-smi -L` (0 without it): no framework is imported in this process."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return 0
    try:
        listing = subprocess.run([executable, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    if listing.returncode != 0:
        return 0
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def _check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise TypeError(f"`env` must be a mapping of str to str. Received: env={env!r}")
    return dict(env)


def _worker_environment(backend: str | None, env: Mapping[str, str], threads: int) -> dict[str, str]:
    """What every worker gets: the backend, no JAX preallocation, `threads` threads per pool (each
    only where neither the user's environment nor `env` sets it), then `env`."""
    variables: dict[str, str] = {}
    if backend is not None:
        variables["KERAS_BACKEND"] = backend
    if "XLA_PYTHON_CLIENT_PREALLOCATE" not in os.environ:
        variables["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    for name in THREAD_VARIABLES:
        if name not in os.environ:
            variables[name] = str(threads)
    variables.update(env)
    return variables


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Sets `variables` in `os.environ` for the duration (a spawned child inherits the environment
    at its start, before it imports anything)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_ENVIRONMENT_LOCK = threading.Lock()


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "no exit status"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def _fail(future: concurrent.futures.Future | None, reason: str, detail: str) -> None:
    if future is not None and not future.done():
        future.set_exception(WorkerFailure(reason, detail))


def _abandon(future: concurrent.futures.Future, failure: tuple[str, str] | None) -> None:
    """A queued task that will not run: cancelled (`failure` None) or failed with `failure`. (A
    cancelled future wakes `concurrent.futures.wait` only once `set_running_or_notify_cancel()`
    is called.)"""
    if failure is not None and future.set_running_or_notify_cancel():
        future.set_exception(WorkerFailure(*failure))
    elif failure is None and future.cancel():
        future.set_running_or_notify_cancel()


# ---------------------------------------------------------------------------------------------
# The process pool


def _process_worker(conn: multiprocessing.connection.Connection) -> None:
    """A process pool worker, running tasks it is sent until its pipe closes. Keras (hence its
    backend) is already imported: unpickling this function imported keras_norms; a failure there
    ends the process before it is ready, with the traceback on its stderr. Ctrl-C is left to the
    parent, which stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import keras

    conn.send(("ready", os.getpid(), keras.backend.backend()))
    while True:
        try:
            task = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            fn, args, kwargs = pickle.loads(task)
            reply = pickle.dumps(("ok", fn(*args, **kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: B036  (a task's SystemExit is its error, not the worker's end)
            reply = pickle.dumps(("error", traceback.format_exc()), protocol=pickle.HIGHEST_PROTOCOL)
        del task
        conn.send_bytes(reply)


class _Slot:
    """One worker's place in a pool; a replacement worker takes the same slot (and device)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Any = None  # multiprocessing's SpawnProcess
        self.conn: multiprocessing.connection.Connection | None = None
        self.state = "stopped"  # "starting", "idle", "busy" or "stopped"
        self.future: concurrent.futures.Future | None = None
        self.deadline: float | None = None
        self.pid: int | None = None


class _ProcessPool:
    """The state of a `ProcessExecutor` and its dispatcher thread (kept apart from the executor so
    that an executor dropped without `shutdown()` is collected and its finalizer stops the pool)."""

    def __init__(self, timeout: float | None, environments: list[dict[str, str]]) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.timeout = timeout
        self.environments = environments
        self.lock = threading.Lock()
        self.queue: collections.deque[tuple[concurrent.futures.Future, bytes]] = collections.deque()
        self.closed = False
        self.broken: str | None = None
        self.startup_failures = 0
        self.dispatched: set[concurrent.futures.Future] = set()  # running tasks' futures (and some done ones)
        self.wake_reader, self.wake_writer = multiprocessing.connection.Pipe(duplex=False)
        self.wake_pending = False
        self.slots = [_Slot(index) for index in range(len(environments))]
        try:
            for slot in self.slots:
                self.start(slot)
        except BaseException:
            self.stop_workers()
            raise
        self.thread = threading.Thread(target=self.run, name="keras-norms-process-executor", daemon=True)
        self.thread.start()

    # Called from any thread.

    def submit(self, future: concurrent.futures.Future, task: bytes) -> None:
        with self.lock:
            if self.broken is not None:
                raise RuntimeError(f"the ProcessExecutor stopped: {self.broken}")
            if self.closed:
                raise RuntimeError("cannot submit to a ProcessExecutor after shutdown()")
            self.queue.append((future, task))
        self.wake()

    def wake(self) -> None:
        with self.lock:
            if self.wake_pending or self.wake_writer.closed:
                return
            self.wake_pending = True
            with contextlib.suppress(OSError):
                self.wake_writer.send_bytes(b"!")

    def close(self) -> None:
        with self.lock:
            already = self.closed
            self.closed = True
        if not already:
            self.wake()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=60)
            if self.thread.is_alive():  # stuck (a send to a hung worker): stop the workers from here
                _log.warning("the ProcessExecutor's dispatcher did not stop; terminating its workers")
                self.stop_workers()
            with self.lock:
                for connection in (self.wake_reader, self.wake_writer):
                    connection.close()

    # The dispatcher thread.

    def start(self, slot: _Slot) -> None:
        parent_end, child_end = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=_process_worker, args=(child_end,), name=f"keras-norms-worker-{slot.index}", daemon=False
        )
        with _ENVIRONMENT_LOCK, _environment(self.environments[slot.index]):
            process.start()
        child_end.close()
        slot.process, slot.conn, slot.pid, slot.state = process, parent_end, process.pid, "starting"

    def run(self) -> None:
        try:
            while not self.closed and self.broken is None:
                self.dispatch()
                self.step()
        except BaseException:
            detail = traceback.format_exc()
            _log.error("the ProcessExecutor's dispatcher failed:\n%s", detail)
            self.broken = f"the dispatcher failed:\n{detail}"
        finally:
            self.finish()

    def dispatch(self) -> None:
        for slot in self.slots:
            while slot.state == "idle":
                with self.lock:
                    if not self.queue:
                        return
                    future, task = self.queue.popleft()
                if not future.set_running_or_notify_cancel():
                    continue  # cancelled while queued
                self.dispatched = {f for f in self.dispatched if not f.done()} | {future}
                assert slot.conn is not None
                try:
                    slot.conn.send_bytes(task)
                except OSError as error:  # the worker died since it was ready
                    _fail(future, "crashed", f"worker (pid {slot.pid}) could not take the task: {error!r}")
                    self.replace(slot)
                    continue
                slot.state, slot.future = "busy", future
                slot.deadline = None if self.timeout is None else time.monotonic() + self.timeout

    def step(self) -> None:
        waitables: list[Any] = [self.wake_reader]
        by_sentinel = {}
        for slot in self.slots:
            if slot.process is not None and slot.conn is not None:
                waitables += [slot.conn, slot.process.sentinel]
                by_sentinel[slot.process.sentinel] = slot
        deadlines = [slot.deadline for slot in self.slots if slot.state == "busy" and slot.deadline is not None]
        wait = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
        ready = multiprocessing.connection.wait(waitables, timeout=wait)
        if self.wake_reader in ready:
            with self.lock:
                while self.wake_reader.poll():
                    self.wake_reader.recv_bytes()
                self.wake_pending = False
        for slot in self.slots:
            if slot.conn is not None and slot.conn in ready:
                self.receive(slot)
        for sentinel, slot in by_sentinel.items():
            if sentinel in ready and slot.process is not None and slot.process.sentinel == sentinel:
                # Read what it sent before dying (a result, then its end), else it died silently.
                while slot.process is not None and slot.process.sentinel == sentinel and slot.conn is not None:
                    if not slot.conn.poll():
                        break
                    self.receive(slot)
                if slot.process is not None and slot.process.sentinel == sentinel:
                    self.died(slot)
        now = time.monotonic()
        for slot in self.slots:
            if slot.state == "busy" and slot.deadline is not None and now >= slot.deadline:
                future, pid = slot.future, slot.pid
                self.replace(slot)
                _fail(future, "timeout", f"ran past the {self.timeout:g} s limit; worker pid {pid} was terminated")

    def receive(self, slot: _Slot) -> None:
        assert slot.conn is not None
        try:
            message = slot.conn.recv()
        except (EOFError, OSError):
            self.died(slot)
            return
        except Exception:  # a result this process cannot unpickle
            if slot.state == "busy":
                _fail(slot.future, "error", f"the task's result could not be unpickled:\n{traceback.format_exc()}")
                slot.state, slot.future, slot.deadline = "idle", None, None
            return
        kind = message[0]
        if kind == "ready":
            slot.state, slot.pid = "idle", message[1]
            self.startup_failures = 0
        elif kind in ("ok", "error") and slot.state == "busy":
            future = slot.future
            slot.state, slot.future, slot.deadline = "idle", None, None
            if future is not None and not future.done():
                if kind == "ok":
                    future.set_result(message[1])
                else:
                    future.set_exception(WorkerFailure("error", message[1]))

    def died(self, slot: _Slot) -> None:
        state, future, pid = slot.state, slot.future, slot.pid
        exitcode = self.stop(slot)
        how = _describe_exit(exitcode)
        if state == "busy":
            _fail(future, "crashed", f"worker (pid {pid}) died with {how} while running the task")
        if state == "starting":
            self.startup_failures += 1
            if self.startup_failures >= _STARTUP_ATTEMPTS:
                self.broken = (
                    f"workers could not start: the last (pid {pid}) died with {how} (its output says why; a "
                    'script that starts workers needs `if __name__ == "__main__":`: each worker imports it)'
                )
                return
        if not self.closed:
            self.start(slot)

    def replace(self, slot: _Slot) -> None:
        self.stop(slot)
        if not self.closed:
            self.start(slot)

    def stop(self, slot: _Slot, grace: float = 2.0) -> int | None:
        """Terminates (then kills) the slot's worker, reaps it and returns its exit code."""
        process, conn = slot.process, slot.conn
        slot.process, slot.conn, slot.state, slot.future, slot.deadline = None, None, "stopped", None, None
        exitcode = None
        if process is not None:
            if process.is_alive():
                process.terminate()
            process.join(grace)
            if process.is_alive():
                process.kill()
                process.join()
            exitcode = process.exitcode
            process.close()
        if conn is not None:
            conn.close()
        return exitcode

    def stop_workers(self) -> None:
        live = [slot.process for slot in self.slots if slot.process is not None]
        for process in live:
            with contextlib.suppress(Exception):
                if process.is_alive():
                    process.terminate()
        end = time.monotonic() + 5.0
        for slot in self.slots:
            if slot.process is not None:
                with contextlib.suppress(Exception):
                    slot.process.join(max(0.0, end - time.monotonic()))
            with contextlib.suppress(Exception):
                self.stop(slot, grace=0.0)

    def finish(self) -> None:
        """On closing (or breaking): cancel the queue, fail the running tasks, stop every worker."""
        if self.broken is not None:
            failure = ("crashed", f"the ProcessExecutor stopped: {self.broken}")
        else:
            failure = ("crashed", "the executor was shut down while the task ran")
        with self.lock:
            queued = list(self.queue)
            self.queue.clear()
        for future, _ in queued:
            _abandon(future, failure if self.broken is not None else None)
        self.stop_workers()
        for running in self.dispatched:
            _fail(running, *failure)


class ProcessExecutor(Executor):
    """A pool of `workers` persistent worker processes on this machine.

    Workers are started with `spawn` and import Keras once. Each worker's environment, set before it
    imports anything:

    - `KERAS_BACKEND=backend` (default: this process's `keras.backend.backend()` if Keras is
      imported, else its `KERAS_BACKEND`);
    - `CUDA_VISIBLE_DEVICES=i % n` for worker `i` when `nvidia-smi -L` lists `n > 0` GPUs and the
      user set `CUDA_VISIBLE_DEVICES` neither in the environment nor in `env`: one device each;
    - `XLA_PYTHON_CLIENT_PREALLOCATE=false` (JAX does not grab most of the GPU's memory);
    - the CPU threads: `OMP_NUM_THREADS`, `MKL_NUM_THREADS`, `OPENBLAS_NUM_THREADS`,
      `TF_NUM_INTRAOP_THREADS` and `TF_NUM_INTEROP_THREADS` = max(1, usable cores // workers), each
      only if the user has not set it, so that the workers together do not oversubscribe the cores
      (PyTorch's and TensorFlow's pools follow them; JAX's XLA CPU pool is left as it is: its thread
      flags change between versions, and XLA aborts on an unknown flag);
    - then `env`, which overrides all of the above.

    Workers inherit this process's `sys.path` and working directory. A worker that dies fails its
    task with `WorkerFailure("crashed")`, a task running past `timeout` seconds has its worker
    terminated and fails with `WorkerFailure("timeout")`; either way a fresh worker takes the slot
    (and its device). Workers are non-daemonic (tasks may start processes of their own); they are
    stopped by `shutdown()`, when the executor is garbage-collected, and at interpreter exit.

    >>> with ProcessExecutor(workers=2, timeout=600) as pool:  # doctest: +SKIP
    ...     futures = [pool.submit(math.factorial, n) for n in range(10)]
    ...     [f.result() for f in futures][-1]
    362880
    """

    def __init__(
        self,
        workers: int = 2,
        timeout: float | None = None,
        backend: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workers = check_int("workers", workers, 1)
        self.timeout = None if timeout is None else check_positive("timeout", timeout)
        extra = _check_env(env)
        self.backend = backend if backend is not None else _default_backend()
        threads = max(1, _cpu_count() // self.workers)
        base = _worker_environment(self.backend, {}, threads)
        gpus = 0 if "CUDA_VISIBLE_DEVICES" in os.environ or "CUDA_VISIBLE_DEVICES" in extra else _gpu_count()
        environments = []
        for index in range(self.workers):
            variables = dict(base)
            if gpus:
                variables["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
            variables.update(extra)
            environments.append(variables)
        self._pool = _ProcessPool(self.timeout, environments)
        # Stops the pool when the executor is collected, and at exit before multiprocessing joins
        # its (non-daemonic) children.
        self._finalizer = multiprocessing.util.Finalize(self, _ProcessPool.close, args=(self._pool,), exitpriority=10)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        task = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._pool.submit(future, task)
        return future

    def shutdown(self) -> None:
        self._finalizer()


# ---------------------------------------------------------------------------------------------
# The Ray pool


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ImportError(_RAY_MISSING) from error
    return ray


class _RayWorker:
    """A Ray actor: imports Keras (hence its backend) once, then runs the tasks it is given."""

    def __init__(self) -> None:
        import keras

        self.backend = keras.backend.backend()

    def ready(self) -> tuple[int, str]:
        return os.getpid(), self.backend

    def run(self, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
        return fn(*args, **kwargs)


def _project_path() -> str:
    """This process's `sys.path` entries that are not the interpreter's own (stdlib, site-packages):
    the directories workers need to import what this process imports from source trees."""
    interpreter = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    with contextlib.suppress(Exception):
        interpreter.update(os.path.realpath(p) for p in site.getsitepackages())
    with contextlib.suppress(Exception):
        interpreter.add(os.path.realpath(site.getusersitepackages()))
    entries = []
    for entry in sys.path:
        path = os.path.realpath(entry or os.getcwd())
        inside = any(path == root or path.startswith(root + os.sep) for root in interpreter)
        if os.path.isdir(path) and not inside and path not in entries:
            entries.append(path)
    return os.pathsep.join(entries)


class _RaySlot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.actor: Any = None
        self.state = "stopped"  # "starting", "idle", "busy" or "stopped"
        self.ref: Any = None  # the pending ready() or run() call
        self.future: concurrent.futures.Future | None = None
        self.deadline: float | None = None
        self.pid: int | None = None


class _RayPool:
    """The state of a `RayExecutor` and its dispatcher thread."""

    _POLL = 0.05  # seconds between looks at the queue while tasks run

    def __init__(self, ray: Any, actor_class: Any, workers: int, timeout: float | None) -> None:
        self.ray = ray
        self.actor_class = actor_class
        self.timeout = timeout
        self.lock = threading.Lock()
        self.wakeup = threading.Event()
        self.queue: collections.deque[tuple[concurrent.futures.Future, tuple]] = collections.deque()
        self.closed = False
        self.broken: str | None = None
        self.startup_failures = 0
        self.dispatched: set[concurrent.futures.Future] = set()  # running tasks' futures (and some done ones)
        self.slots = [_RaySlot(index) for index in range(workers)]
        for slot in self.slots:
            self.start(slot)
        self.thread = threading.Thread(target=self.run, name="keras-norms-ray-executor", daemon=True)
        self.thread.start()

    def submit(self, future: concurrent.futures.Future, task: tuple) -> None:
        with self.lock:
            if self.broken is not None:
                raise RuntimeError(f"the RayExecutor stopped: {self.broken}")
            if self.closed:
                raise RuntimeError("cannot submit to a RayExecutor after shutdown()")
            self.queue.append((future, task))
        self.wakeup.set()

    def close(self) -> None:
        with self.lock:
            self.closed = True
        self.wakeup.set()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=60)

    def start(self, slot: _RaySlot) -> None:
        slot.actor = self.actor_class.remote()
        slot.ref, slot.state, slot.pid = slot.actor.ready.remote(), "starting", None
        slot.future, slot.deadline = None, None

    def stop(self, slot: _RaySlot) -> None:
        actor = slot.actor
        slot.actor, slot.ref, slot.state, slot.future, slot.deadline = None, None, "stopped", None, None
        if actor is not None and self.ray.is_initialized():  # (a Ray call after ray.shutdown() exits the process)
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)

    def replace(self, slot: _RaySlot) -> None:
        self.stop(slot)
        if not self.closed:
            self.start(slot)

    def run(self) -> None:
        try:
            while not self.closed and self.broken is None:
                if not self.ray.is_initialized():
                    self.broken = "Ray was shut down"
                    break
                self.dispatch()
                self.step()
        except BaseException:
            detail = traceback.format_exc()
            if not self.closed and self.ray.is_initialized():
                _log.error("the RayExecutor's dispatcher failed:\n%s", detail)
                self.broken = f"the dispatcher failed:\n{detail}"
        finally:
            self.finish()

    def dispatch(self) -> None:
        for slot in self.slots:
            while slot.state == "idle":
                with self.lock:
                    if not self.queue:
                        return
                    future, (fn, args, kwargs) = self.queue.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                self.dispatched = {f for f in self.dispatched if not f.done()} | {future}
                try:
                    slot.ref = slot.actor.run.remote(fn, args, kwargs)
                except Exception:  # the task could not be serialized
                    _fail(future, "error", traceback.format_exc())
                    continue
                slot.state, slot.future = "busy", future
                slot.deadline = None if self.timeout is None else time.monotonic() + self.timeout

    def step(self) -> None:
        pending = {slot.ref: slot for slot in self.slots if slot.ref is not None}
        deadlines = [slot.deadline for slot in self.slots if slot.state == "busy" and slot.deadline is not None]
        wait = self._POLL if not deadlines else max(0.0, min(self._POLL, min(deadlines) - time.monotonic()))
        if pending:
            ready, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=wait, fetch_local=False)
        else:
            self.wakeup.wait(None if not deadlines else wait)
            ready = []
        self.wakeup.clear()
        for ref in ready:
            self.collect(pending[ref], ref)
        now = time.monotonic()
        for slot in self.slots:
            if slot.state == "busy" and slot.deadline is not None and now >= slot.deadline:
                future, pid = slot.future, slot.pid
                self.replace(slot)
                _fail(future, "timeout", f"ran past the {self.timeout:g} s limit; actor (pid {pid}) was killed")

    def collect(self, slot: _RaySlot, ref: Any) -> None:
        ray = self.ray
        state, future = slot.state, slot.future
        slot.ref = None
        try:
            value = ray.get(ref)
        except ray.exceptions.RayTaskError as error:  # the task raised: the actor goes on
            if state == "starting":
                self.startup_failure(slot, str(error))
            else:
                slot.state, slot.future, slot.deadline = "idle", None, None
                _fail(future, "error", str(error))
            return
        except ray.exceptions.RayError as error:  # the actor (or its node) died
            if state == "starting":
                self.startup_failure(slot, f"actor died while importing Keras: {error}")
            else:
                _fail(future, "crashed", f"actor (pid {slot.pid}) died while running the task: {error}")
                self.replace(slot)
            return
        except Exception:  # a result this process cannot deserialize
            if state == "starting":
                self.startup_failure(slot, traceback.format_exc())
            else:
                slot.state, slot.future, slot.deadline = "idle", None, None
                _fail(future, "error", f"the task's result could not be deserialized:\n{traceback.format_exc()}")
            return
        if state == "starting":
            slot.state, slot.pid = "idle", value[0]
            self.startup_failures = 0
        else:
            slot.state, slot.future, slot.deadline = "idle", None, None
            if future is not None and not future.done():
                future.set_result(value)

    def startup_failure(self, slot: _RaySlot, detail: str) -> None:
        self.stop(slot)
        self.startup_failures += 1
        if self.startup_failures >= _STARTUP_ATTEMPTS:
            self.broken = f"actors could not start: {detail}"
        elif not self.closed:
            self.start(slot)

    def finish(self) -> None:
        if self.broken is not None:
            failure = ("crashed", f"the RayExecutor stopped: {self.broken}")
        else:
            failure = ("crashed", "the executor was shut down while the task ran")
        with self.lock:
            queued = list(self.queue)
            self.queue.clear()
        for future, _ in queued:
            _abandon(future, failure if self.broken is not None else None)
        for slot in self.slots:
            self.stop(slot)
        for running in self.dispatched:
            _fail(running, *failure)


class RayExecutor(Executor):
    """A pool of `workers` Ray actors, each importing Keras once and running one task at a time.

    `address=None` starts a local Ray with `num_cpus = workers * num_cpus` (no dashboard, worker
    logs not forwarded, Ray's logging at ERROR), unless Ray is already initialized in this process,
    which is then used as it is, or `RAY_ADDRESS` names a cluster; `address="auto"` or
    `"ray://head:10001"` joins a running cluster. `shutdown()` kills the actors, and shuts Ray down
    only if this executor started it.

    Each actor reserves `num_cpus` CPUs and, when the cluster has GPUs, `num_gpus` of them (default:
    `min(1, GPUs / workers)`, so one device each when there are enough; Ray sets the actor's
    `CUDA_VISIBLE_DEVICES`). Its environment (`runtime_env={"env_vars": ...}`): `KERAS_BACKEND`
    (as for `ProcessExecutor`), `XLA_PYTHON_CLIENT_PREALLOCATE=false`, the thread variables of
    `ProcessExecutor` at `num_cpus` threads, `PYTHONPATH` = this process's non-interpreter
    `sys.path` entries (the source trees it imports from: the repository, a test directory) before
    the node's own `PYTHONPATH`, then `env`. On a local Ray that lets actors import keras-norms and
    task modules from a source checkout; on a real cluster those paths do not exist on other nodes,
    so install keras-norms and a backend on every node (`pip install "keras-norms[search,jax]"`)
    and make the task functions importable there (a package, or `env={"PYTHONPATH": ...}`).

    A dead actor fails its task with `WorkerFailure("crashed")`; a task past `timeout` seconds gets
    its actor killed (`ray.kill`) and fails with `WorkerFailure("timeout")`; either way a fresh
    actor is started. A task that raises gives `WorkerFailure("error", <Ray's traceback text>)`.

    >>> with RayExecutor(workers=4, timeout=600, address="auto") as pool:  # doctest: +SKIP
    ...     print(pool.submit(math.factorial, 20).result())
    2432902008176640000
    """

    def __init__(
        self,
        workers: int = 2,
        timeout: float | None = None,
        backend: str | None = None,
        address: str | None = None,
        env: Mapping[str, str] | None = None,
        *,
        num_cpus: float = 1.0,
        num_gpus: float | None = None,
    ) -> None:
        self.workers = check_int("workers", workers, 1)
        self.timeout = None if timeout is None else check_positive("timeout", timeout)
        num_cpus = check_positive("num_cpus", num_cpus)
        if address is not None and not isinstance(address, str):
            raise TypeError(f"`address` must be a str or None. Received: address={address!r}")
        extra = _check_env(env)
        ray = _import_ray()
        self.backend = backend if backend is not None else _default_backend()
        self._ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
            if address is None and not os.environ.get("RAY_ADDRESS"):  # else ray.init joins that cluster
                options.update(num_cpus=math.ceil(self.workers * num_cpus), include_dashboard=False)
            ray.init(address=address, **options)
            self._owns_ray = True
        elif address is not None:
            _log.warning("Ray is already initialized in this process: RayExecutor uses it, not address=%r", address)
        try:
            gpus = float(ray.cluster_resources().get("GPU", 0))
            if num_gpus is None:
                num_gpus = min(1.0, gpus / self.workers) if gpus else 0.0
            variables = _worker_environment(self.backend, {}, max(1, int(num_cpus)))
            path = _project_path()
            if path:
                variables["PYTHONPATH"] = path + os.pathsep + "${PYTHONPATH}"
            variables.update(extra)
            actor_class = ray.remote(_RayWorker).options(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                max_restarts=0,
                max_task_retries=0,
                runtime_env={"env_vars": variables},
            )
            self._pool = _RayPool(ray, actor_class, self.workers, self.timeout)
        except BaseException:
            if self._owns_ray:
                ray.shutdown()
            raise
        self._closed = False
        # Stops the pool when the executor is collected, and at exit before Ray's own exit handler
        # (registered when ray was imported) shuts Ray down under a running dispatcher.
        self._finalizer = weakref.finalize(self, _RayPool.close, self._pool)
        self._finalizer.atexit = False
        atexit.register(self._pool.close)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._pool.submit(future, (fn, args, kwargs))
        return future

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finalizer()
        atexit.unregister(self._pool.close)
        if self._owns_ray:
            self._ray.shutdown()


def make_executor(
    kind: str = "serial",
    *,
    workers: int = 1,
    timeout: float | None = None,
    backend: str | None = None,
    address: str | None = None,
) -> Executor:
    """An executor by name: "serial", "process" or "ray" (see the module's docstring).

    For "serial", `workers` and `timeout` are ignored (one task at a time, in this process, with no
    time limit) and `backend`, if given, must be this process's Keras backend. `address` applies to
    "ray" only.

    >>> pool = make_executor("process", workers=2, timeout=900)  # doctest: +SKIP
    """
    check_choice("kind", kind, KINDS)
    workers = check_int("workers", workers, 1)
    if address is not None and kind != "ray":
        raise ValueError(f"`address` applies to kind='ray' only. Received: kind={kind!r}, address={address!r}")
    if kind == "serial":
        current = _default_backend()
        if backend is not None and current is not None and backend != current:
            raise ValueError(
                f"a serial executor runs in this process, whose Keras backend is {current!r}. "
                f"Received: backend={backend!r}"
            )
        return SerialExecutor()
    if kind == "process":
        return ProcessExecutor(workers, timeout=timeout, backend=backend)
    return RayExecutor(workers, timeout=timeout, backend=backend, address=address)
