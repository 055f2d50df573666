"""A compiled model saved on one backend loads on the others, by the path docs/guides/backends.md gives.

A `.keras` file of a compiled model names its optimizer's class; on PyTorch that is a torch-only
class (`keras.src.backend.torch.optimizers.torch_adam.Adam`), which cannot train in a JAX or
TensorFlow process (and importing torch after TensorFlow can crash the process on some versions).
The guide's two ways out are checked here, from the current backend to each other one, each in a
fresh process: `compile=False` and a new `compile`, or `custom_objects` mapping the recorded class
name to Keras' backend-neutral optimizer, which keeps the optimizer state.

Tolerance: predictions of the loaded model 1e-5 (float32 on two backends).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_norms import layers

BACKENDS = ("jax", "tensorflow", "torch")

LOADER = r"""
import json, sys
import keras  # first: with torch, TensorFlow must not be imported before it
import numpy as np
import keras_norms  # noqa: F401  (registers the layers)

path, x, expected = sys.argv[1], np.load(sys.argv[2]), np.load(sys.argv[3])
# Way 1: without the optimizer, compiled again.
model = keras.saving.load_model(path, compile=False)
max_difference = float(np.abs(model.predict(x, verbose=0) - expected).max())
model.compile(keras.optimizers.Adam(), "mse")
model.fit(x, expected, verbose=0)
# Way 2: the optimizer state kept, under Keras' backend-neutral class.
model = keras.saving.load_model(path, custom_objects={"Adam": keras.optimizers.Adam})
loaded_iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
model.fit(x, expected, verbose=0)
print(json.dumps({"max_difference": max_difference, "loaded_iterations": loaded_iterations,
                  "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations))}))
"""


@pytest.mark.parametrize("target", [b for b in BACKENDS if b != keras.backend.backend()])
def test_compiled_model_loads_on_another_backend(target, tmp_path, rng):
    model = keras.Sequential(
        [keras.Input((5, 8)), layers.RMSNormalization(), layers.PowerNormalization(groups=2), keras.layers.Dense(2)]
    )
    model.compile(keras.optimizers.Adam(), "mse")
    x = rng.standard_normal((4, 5, 8)).astype("float32")
    model.fit(x, rng.standard_normal((4, 5, 2)), batch_size=2, verbose=0)  # 2 optimizer steps
    path = str(tmp_path / "model.keras")
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", model.predict(x, verbose=0))
    env = {**os.environ, "KERAS_BACKEND": target, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", LOADER, path, str(tmp_path / "x.npy"), str(tmp_path / "expected.npy")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["max_difference"] < 1e-5
    assert report["loaded_iterations"] == 2
    assert report["iterations"] == 3
