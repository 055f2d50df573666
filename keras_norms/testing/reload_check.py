"""Loads a `.keras` file in this (fresh) process and checks its outputs against saved ones.

Usage: `python -m keras_norms.testing.reload_check MODEL.keras DATA.npz`, where DATA holds `x`
and `expected`. Exits non-zero, with the difference, unless the outputs are identical. Only
`import keras_norms` registers the layers here, exactly as in a user's new session.
"""

import sys

import keras
import numpy as np

import keras_norms  # noqa: F401  (registers the layers with Keras' serialization)


def main(model_path, data_path):
    model = keras.saving.load_model(model_path, safe_mode=True)
    data = np.load(data_path)
    outputs = keras.ops.convert_to_numpy(model(data["x"], training=False))
    np.testing.assert_array_equal(outputs, data["expected"])


if __name__ == "__main__":
    main(*sys.argv[1:])
