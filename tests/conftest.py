"""Shared fixtures: fresh random inputs on every run, with the seed printed to reproduce a failure.

Set KERAS_NORMS_TEST_SEED to replay a run. Keras is imported first: with KERAS_BACKEND=torch,
importing TensorFlow before torch's dynamo segfaults.
"""

import os
import zlib

import keras  # noqa: F401  (first, see above)
import numpy as np
import pytest

SEED = int(os.environ.get("KERAS_NORMS_TEST_SEED", np.random.SeedSequence().entropy % 2**32))


def pytest_report_header(config):
    return f"keras backend: {keras.backend.backend()}; KERAS_NORMS_TEST_SEED={SEED}"


@pytest.fixture
def rng(request):
    """A generator seeded by the run's seed and the test's id: fresh per run, replayable."""
    return np.random.default_rng([SEED, zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture(autouse=True)
def _float32_policy():
    # A test that sets a mixed policy must not leak it into the next one.
    yield
    keras.config.set_dtype_policy("float32")
