"""The search's executors: results, parallelism, and the three failures ("error", "crashed",
"timeout"), after each of which the executor goes on.

One process pool and one local Ray pool (2 workers each) are shared by the module's tests
(module-scoped, parametrized fixture: pytest runs every test on one pool, then on the other).
"""

import concurrent.futures
import os
import time

import keras
import pytest

import keras_norms
from keras_norms.search.executors import (
    Executor,
    ProcessExecutor,
    RayExecutor,
    SerialExecutor,
    WorkerFailure,
    make_executor,
)
from tests.search import executor_tasks as tasks

TIMEOUT = 3.0  # seconds; the tasks that must finish take well under a second


@pytest.fixture(scope="module", params=["process", "ray"])
def pool(request):
    started = time.monotonic()
    if request.param == "process":
        executor = ProcessExecutor(workers=2, timeout=TIMEOUT)
    else:
        executor = RayExecutor(workers=2, timeout=TIMEOUT)
    serving(executor)  # both workers ready before the tests start
    print(f"\n{request.param}: 2 workers ready in {time.monotonic() - started:.1f} s")
    yield executor
    executor.shutdown()
    executor.shutdown()  # idempotent


def serving(pool, limit=180):
    """The pids of the two workers, once two tasks submitted together run in two processes (a busy
    worker's second task would wait in the queue, while the time limit counts only running tasks)."""
    end = time.monotonic() + limit
    while True:
        pids = {f.result(timeout=limit) for f in [pool.submit(tasks.pid, 0.3) for _ in range(2)]}
        if len(pids) == 2 or time.monotonic() > end:
            return pids


def failure_of(future):
    with pytest.raises(WorkerFailure) as info:
        future.result(timeout=120)
    return info.value


def still_works(pool):
    assert [f.result(timeout=120) for f in [pool.submit(tasks.square, i) for i in range(3)]] == [0, 1, 4]


def test_results_come_back_in_parallel_on_two_workers(pool, tmp_path):
    futures = [pool.submit(tasks.rendezvous, str(tmp_path), 2, limit=60) for _ in range(2)]
    pids = [f.result(timeout=120) for f in futures]
    assert len(set(pids)) == 2 and os.getpid() not in pids
    # More tasks than workers queue, and every result comes back to its own future.
    futures = {pool.submit(tasks.square, i): i for i in range(7)}
    done = {futures[f]: f.result() for f in concurrent.futures.as_completed(futures, timeout=120)}
    assert done == {i: i * i for i in range(7)}
    assert pool.submit(tasks.square, x=5).result(timeout=120) == 25


def test_a_raising_task_is_an_error_and_the_worker_goes_on(pool):
    failure = failure_of(pool.submit(tasks.fail, "no such layer: frobnicate"))
    assert failure.reason == "error"
    assert "ValueError" in failure.detail and "no such layer: frobnicate" in failure.detail
    still_works(pool)


def test_a_killed_worker_is_a_crash_and_is_replaced(pool):
    before = serving(pool)
    failure = failure_of(pool.submit(tasks.kill_self))
    assert failure.reason == "crashed", failure.detail
    still_works(pool)  # on the other worker, while the replacement starts
    after = serving(pool)
    assert len(after) == 2 and len(after & before) == 1


def test_a_task_past_the_timeout_is_killed_and_the_executor_goes_on(pool):
    slow = pool.submit(tasks.sleep, 60)
    quick = pool.submit(tasks.square, 3)
    assert quick.result(timeout=120) == 9  # the other worker serves meanwhile
    failure = failure_of(slow)
    assert failure.reason == "timeout" and "3 s" in failure.detail
    done, _ = concurrent.futures.wait([pool.submit(tasks.sleep, 0.1)], timeout=120, return_when="FIRST_COMPLETED")
    assert [f.result() for f in done] == [0.1]
    still_works(pool)


def test_workers_run_the_parents_backend_and_import_keras_norms(pool):
    seen = [f.result(timeout=120) for f in [pool.submit(tasks.environment) for _ in range(2)]]
    for worker in seen:
        assert worker["KERAS_BACKEND"] == worker["backend"] == keras.backend.backend()
        assert worker["keras_norms"] == os.path.dirname(keras_norms.__file__)
        assert worker["pid"] != os.getpid()


def test_serial_executor_runs_in_order_in_this_process():
    order = []
    with make_executor("serial", workers=4, timeout=10) as serial:
        assert isinstance(serial, SerialExecutor) and isinstance(serial, Executor) and serial.workers == 1
        futures = [serial.submit(lambda i=i: order.append(i) or i * i) for i in range(4)]
        assert all(f.done() for f in futures) and order == [0, 1, 2, 3]
        assert [f.result() for f in futures] == [0, 1, 4, 9]
        failure = failure_of(serial.submit(tasks.fail, "boom"))
        assert failure.reason == "error" and "ValueError: boom" in failure.detail
        assert serial.submit(os.getpid).result() == os.getpid()
    with pytest.raises(RuntimeError, match="shutdown"):
        serial.submit(tasks.square, 2)


def test_make_executor_validates_its_arguments():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        make_executor("thread")
    with pytest.raises(ValueError, match="`workers`"):
        make_executor("process", workers=0)
    with pytest.raises(ValueError, match="`address`"):
        make_executor("process", address="auto")
    with pytest.raises(ValueError, match="`timeout`"):
        ProcessExecutor(workers=1, timeout=-1)
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    with pytest.raises(ValueError, match="`backend`|backend="):
        make_executor("serial", backend=other)
    with pytest.raises(ValueError, match="`reason`"):
        WorkerFailure("lost")
    failure = WorkerFailure("timeout", "ran past 3 s")
    assert str(failure) == "timeout: ran past 3 s" and failure.args == ("timeout", "ran past 3 s")


def test_shutdown_cancels_the_queued_tasks():
    pool = ProcessExecutor(workers=1)
    futures = [pool.submit(tasks.square, i) for i in range(3)]
    pool.shutdown()  # before the worker has imported Keras: nothing ran
    done, not_done = concurrent.futures.wait(futures, timeout=60)
    assert not not_done and all(f.cancelled() for f in futures)
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(tasks.square, 2)


def test_workers_that_cannot_start_stop_the_pool_with_the_reason():
    pool = ProcessExecutor(workers=1, backend="no_such_backend")  # each worker dies importing Keras
    try:
        failure = failure_of(pool.submit(tasks.square, 2))
        assert failure.reason == "crashed" and "could not start" in failure.detail
        with pytest.raises(RuntimeError, match="could not start"):
            pool.submit(tasks.square, 2)
    finally:
        pool.shutdown()
