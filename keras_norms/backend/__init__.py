"""The single dispatch point for per-backend fast paths.

An op in `keras_norms.ops` is the reference: plain Keras ops, differentiated by the backend. A fast
path computes the same thing faster or in less memory (fused statistics, a hand-written gradient
that recomputes instead of storing), for one backend or for all. Layers ask `get(name)` for it
and fall back to the reference when it returns None: fast paths off, no fast path for the current
backend, or an input the fast path does not cover (the layer decides, e.g. masks).

Turn every fast path off with `set_fast_paths(False)`, the `fast_paths(False)` context, or the
environment variable `KERAS_NORMS_FAST_PATHS=0` (read at import). The switch is read when a layer
is called, so a function compiled before switching keeps the path it was traced with.

Every fast path is tested against its reference (tests/backend): outputs and all gradients within
1e-5, in float32 and under mixed precision.
"""

import contextlib
import os
from collections.abc import Callable

from keras import backend as keras_backend

_BACKENDS = ("jax", "tensorflow", "torch")
# (name, backend) -> the fast path; (name, backend) -> a predicate that vetoes it (e.g. under torch.compile).
_registry: dict[tuple[str, str], Callable] = {}
_conditions: dict[tuple[str, str], Callable[[], bool]] = {}
_enabled = os.environ.get("KERAS_NORMS_FAST_PATHS", "1").strip().lower() not in ("0", "false", "off", "no")


def register(name, backends=_BACKENDS, unless=None):
    """Decorator: `function` is the fast path `name` on `backends`.

    `unless`: an optional `{backend: predicate}`; where the predicate returns True at call time,
    the layer takes the reference instead (e.g. torch while `torch.compile` traces, whose own
    fusion and rematerialization beat a custom autograd Function).
    """

    def decorate(function):
        for backend in backends:
            _registry[(name, backend)] = function
            if unless and backend in unless:
                _conditions[(name, backend)] = unless[backend]
        return function

    return decorate


def fast_paths_enabled():
    return _enabled


def set_fast_paths(enabled):
    """Turns every fast path on or off (for debugging and for comparing with the references)."""
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be True or False. Received: enabled={enabled!r}")
    _enabled = enabled


@contextlib.contextmanager
def fast_paths(enabled):
    """`with keras_norms.backend.fast_paths(False): ...` runs the references inside."""
    previous = _enabled
    set_fast_paths(enabled)
    try:
        yield
    finally:
        set_fast_paths(previous)


def get(name):
    """The fast path `name` for the current backend, or None (off, or none for this backend)."""
    if not _enabled:
        return None
    _register_all()
    key = (name, keras_backend.backend())
    condition = _conditions.get(key)
    if condition is not None and condition():
        return None
    return _registry.get(key)


def available(name):
    """The backends that have a fast path `name`."""
    _register_all()
    return [backend for backend in _BACKENDS if (name, backend) in _registry]


def _register_all():
    from keras_norms.backend import fused, torch_native  # noqa: F401  (their decorators register)


def torch_compiling():
    """True while `torch.compile` traces (an `unless` predicate for torch)."""
    import torch

    return torch.compiler.is_compiling()
