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

Kernels are fast paths for one device kind: Triton kernels for CUDA tensors on torch, Pallas
kernels for GPU and TPU on JAX (`keras_norms.kernels`). They register with
`register_kernel(name, backends, applies)`, where `applies(*args, **kwargs)` says whether the
arguments live on a device the kernel runs on; an op takes a kernel first when one applies, then
its graph-level fast path, then the reference. The same switch turns kernels off. `kernel_mode`
("auto", default; "interpret", which runs every kernel on any device through Triton's and
Pallas' interpreters, for tests on a CPU; or "off") is set with `set_kernel_mode` or
`KERAS_NORMS_KERNELS`.
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
# (name, backend) -> (the kernel, its `applies` and `supports` predicates).
_kernels: dict[tuple[str, str], tuple[Callable, Callable[..., bool], Callable[..., bool] | None]] = {}
# Names an op offers a fast path or kernel under (`with_fast_path`), whether or not one registers.
_names: set[str] = set()
KERNEL_MODES = ("auto", "interpret", "off")
_kernel_mode = os.environ.get("KERAS_NORMS_KERNELS", "auto").strip().lower() or "auto"
if _kernel_mode not in KERNEL_MODES:
    raise ValueError(f"KERAS_NORMS_KERNELS must be one of {KERNEL_MODES}. Received: {_kernel_mode!r}")


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


def register_kernel(name, backends, applies, supports=None):
    """Decorator: `function` is the kernel `name` on `backends`.

    `supports(*args, **kwargs)`: the arguments the kernel covers (layouts, dtypes, sizes), checked
    in every mode; `applies(*args, **kwargs)`: the arguments live on the device the kernel is
    written for (a CUDA tensor, a TPU backend, ...), checked in "auto" mode only. Where either
    fails, the op takes its fast path or its reference.
    """

    def decorate(function):
        for backend in backends:
            _kernels[(name, backend)] = (function, applies, supports)
        return function

    return decorate


def kernel_mode():
    """ "auto" (kernels run on the devices they are written for), "interpret" or "off"."""
    return _kernel_mode


def set_kernel_mode(mode):
    """Sets `kernel_mode()`; "interpret" runs every kernel through its interpreter on any device
    (slow: for tests on a CPU)."""
    global _kernel_mode
    if mode not in KERNEL_MODES:
        raise ValueError(f"`mode` must be one of {KERNEL_MODES}. Received: mode={mode!r}")
    _kernel_mode = mode


@contextlib.contextmanager
def kernels(mode):
    """`with keras_norms.backend.kernels("interpret"): ...` sets the kernel mode inside the block."""
    previous = _kernel_mode
    set_kernel_mode(mode)
    try:
        yield
    finally:
        set_kernel_mode(previous)


def get_kernel(name, *args, **kwargs):
    """The kernel `name` for the current backend if it runs these arguments, else None."""
    _register_all()
    if not _enabled or _kernel_mode == "off":
        return None
    entry = _kernels.get((name, keras_backend.backend()))
    if entry is None:
        return None
    function, applies, supports = entry
    # The device first: on a CPU in "auto" mode that is all an op call pays.
    if _kernel_mode != "interpret" and not applies(*args, **kwargs):
        return None
    return function if supports is None or supports(*args, **kwargs) else None


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
    known = _names | {registered for registered, _ in (*_registry, *_kernels)}
    if name not in known:
        raise ValueError(f"No fast path is named {name!r}. Known names: {sorted(known)}")
    if not _enabled:
        return None
    key = (name, keras_backend.backend())
    condition = _conditions.get(key)
    if condition is not None and condition():
        return None
    return _registry.get(key)


def available(name):
    """The backends that have a fast path `name`, a kernel excluded (an empty list for an unknown name)."""
    _register_all()
    return [backend for backend in _BACKENDS if (name, backend) in _registry]


def kernels_available(name):
    """The backends that have a kernel `name`, of those whose kernel module is imported: only the
    current backend's is (an empty list for none)."""
    _register_all()
    return [backend for backend in _BACKENDS if (name, backend) in _kernels]


def with_fast_path(name, applicable=None):
    """Decorator for a reference op of `keras_norms.ops`: the op takes the fast path `name` when one
    is on for the current backend and `applicable(*args, **kwargs)` is true, the reference otherwise.

    The fast path takes the same arguments and returns the same results as the reference, so a
    layer calls one function and never sees which ran. The undecorated reference stays reachable
    as `op.reference` (for tests and benchmarks).
    """

    _names.add(name)

    def decorate(reference):
        @functools.wraps(reference)
        def op(*args, **kwargs):
            if applicable is None or applicable(*args, **kwargs):
                fast = get_kernel(name, *args, **kwargs) or get(name)
                if fast is not None:
                    return fast(*args, **kwargs)
            return reference(*args, **kwargs)

        # Function attributes, for tests and benchmarks (mypy does not model them).
        op.reference = reference  # type: ignore[attr-defined]
        op.fast_path_name = name  # type: ignore[attr-defined]
        return op

    return decorate


def _register_all():
    from keras_norms.backend import fused, torch_native  # noqa: F401  (their decorators register)
    from keras_norms.kernels import register_kernels

    register_kernels(keras_backend.backend())


def torch_compiling():
    """True while `torch.compile` traces (an `unless` predicate for torch)."""
    import torch

    return torch.compiler.is_compiling()
