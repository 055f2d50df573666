"""The single dispatch point for per-backend fast paths.

An op in `keras_norms.ops` is the reference: plain Keras ops, differentiated by the backend. A fast
path computes the same thing faster or in less memory (fused statistics, a hand-written gradient
that recomputes instead of storing), for one backend or for all, with the reference's arguments
and results. The choice is made inside the op (`with_fast_path`): it takes the fast path when one
is on for the current backend and covers the arguments (no mask, one replica, ...), and the
reference otherwise; layers call the op and never see which ran. Fast paths register here with
`register(name)`; `get(name)` raises for a name that none registers.

Turn every fast path off with `set_fast_paths(False)`, the `fast_paths(False)` context, or the
environment variable `KERAS_NORMS_FAST_PATHS=0` (read at import). The switch is read when a layer
is called, so a function compiled before switching keeps the path it was traced with.

Every fast path is tested against its reference (tests/backend): outputs and all gradients within
1e-5, in float32 and under mixed precision.
"""

import contextlib
import functools
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
    """The fast path `name` for the current backend, or None (off, or none for this backend).

    Raises ValueError for a name no backend registers (a misspelling must not fall back silently).
    """
    _register_all()
    if not any(registered == name for registered, _ in _registry):
        known = sorted({registered for registered, _ in _registry})
        raise ValueError(f"No fast path is named {name!r}. Known names: {known}")
    if not _enabled:
        return None
    key = (name, keras_backend.backend())
    condition = _conditions.get(key)
    if condition is not None and condition():
        return None
    return _registry.get(key)


def available(name):
    """The backends that have a fast path `name` (an empty list for an unknown name)."""
    _register_all()
    return [backend for backend in _BACKENDS if (name, backend) in _registry]


def with_fast_path(name, applicable=None):
    """Decorator for a reference op of `keras_norms.ops`: the op takes the fast path `name` when one
    is on for the current backend and `applicable(*args, **kwargs)` is true, the reference otherwise.

    The fast path takes the same arguments and returns the same results as the reference, so a
    layer calls one function and never sees which ran. The undecorated reference stays reachable
    as `op.reference` (for tests and benchmarks).
    """

    def decorate(reference):
        @functools.wraps(reference)
        def op(*args, **kwargs):
            fast = get(name)
            if fast is not None and (applicable is None or applicable(*args, **kwargs)):
                return fast(*args, **kwargs)
            return reference(*args, **kwargs)

        # Function attributes, for tests and benchmarks (mypy does not model them).
        op.reference = reference  # type: ignore[attr-defined]
        op.fast_path_name = name  # type: ignore[attr-defined]
        return op

    return decorate


def _register_all():
    from keras_norms.backend import fused, torch_native  # noqa: F401  (their decorators register)


def torch_compiling():
    """True while `torch.compile` traces (an `unless` predicate for torch)."""
    import torch

    return torch.compiler.is_compiling()
