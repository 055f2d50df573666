"""Top-level task functions for tests/search/test_executors.py: importable, so that process and
Ray workers can unpickle them."""

import os
import signal
import time


def square(x):
    return x * x


def rendezvous(directory, parties, limit=60.0):
    """Leaves this process's pid in `directory` and waits until `parties` different processes have:
    returns only if that many tasks run at the same time in different processes, else raises."""
    open(os.path.join(directory, str(os.getpid())), "w").close()
    end = time.monotonic() + limit
    while len(os.listdir(directory)) < parties:
        if time.monotonic() > end:
            raise TimeoutError(f"only {os.listdir(directory)} of {parties} processes arrived in {limit} s")
        time.sleep(0.01)
    return os.getpid()


def pid(seconds=0.0):
    time.sleep(seconds)
    return os.getpid()


def fail(message):
    raise ValueError(message)


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def environment():
    """What a worker sees: its backend, and where it imports keras_norms from."""
    import keras

    import keras_norms

    return {
        "KERAS_BACKEND": os.environ.get("KERAS_BACKEND"),
        "backend": keras.backend.backend(),
        "keras_norms": os.path.dirname(keras_norms.__file__),
        "pid": os.getpid(),
    }
