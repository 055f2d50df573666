"""Fused kernels: Triton for torch on CUDA, Pallas for JAX on GPU and TPU.

Each kernel computes one op of `keras_norms.ops` with the op's arguments and results, forward and
backward in one or two passes over memory, keeping for the backward only the input and the
per-sample (or per-channel) statistics. They register with `keras_norms.backend.register_kernel`
and an op takes one where it `applies` (a CUDA tensor; a GPU or TPU JAX backend), so a layer
never sees which ran; `keras_norms.backend.set_kernel_mode("interpret")` runs them on any device
through the interpreters (Triton's, Pallas' `interpret=True`), which is how the test suite checks
them on a CPU.

- `triton_norms`: torch, imported only where Triton is installed (it comes with torch's CUDA
  builds on Linux).
- `pallas_norms`: JAX (`jax.experimental.pallas`, part of jax).
- TensorFlow has no kernels: XLA (`jit_compile=True`) is its accelerated path.
"""

import importlib.util

# The ops of `keras_norms.ops` that have a kernel on torch (Triton) and on JAX (Pallas).
OPS = (
    "rms_normalization",
    "crms_normalization",
    "evonorm_b0",
    "evonorm_b1",
    "evonorm_b2",
    "evonorm_s",
    "frn",
    "power_normalization",
)

_registered: set[str] = set()


def register_kernels(backend: str) -> None:
    """Imports the kernel module of `backend` once; its decorators register the kernels."""
    if backend in _registered:
        return
    _registered.add(backend)
    if backend == "torch" and importlib.util.find_spec("triton") is not None:
        from keras_norms.kernels import triton_norms  # noqa: F401
    elif backend == "jax":
        from keras_norms.kernels import pallas_norms  # noqa: F401
