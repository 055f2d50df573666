"""Kernel tests are per backend: Triton kernels exist for torch, Pallas kernels for JAX.

Each module is collected only under the backend whose kernels it tests (the README's test command
runs the suite once per backend, so every kernel module runs there); TensorFlow has no kernels,
which tests/backend/test_fast_paths.py checks.
"""

import keras

MODULE_BACKENDS = {"test_triton_norms.py": "torch", "test_pallas_norms.py": "jax"}


def pytest_ignore_collect(collection_path, config):
    backend = MODULE_BACKENDS.get(collection_path.name)
    if backend is None:
        return None
    return backend != keras.backend.backend()
