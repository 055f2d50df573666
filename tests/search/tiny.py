"""A tiny proxy network and task for the search tests: importable, so that worker processes can
unpickle them."""

import os

import keras
import numpy as np

from keras_norms.search.evaluation import EvaluationConfig

# Seconds, not minutes: a few steps of a two-convolution net on 8x8 digits.
CONFIG = EvaluationConfig(
    steps=8, batch_size=32, quality_steps=4, quality_threshold=0.0, stability_steps=3, groups=2, image_size=8
)


def tiny_net(norm_layer, *, input_shape, num_classes, marker=None):
    """Conv -> norm_layer -> Conv -> norm_layer -> pool -> Dense. With `marker`, the first call
    anywhere (whichever process creates the marker file first) kills its own process."""
    if marker is not None:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            os.kill(os.getpid(), 9)
        except FileExistsError:
            pass
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = norm_layer()(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = norm_layer()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


BUILDERS = {"tiny": tiny_net}


def task():
    """Digits at 8x8 as the dict of arrays `evolve` takes."""
    from keras_norms.search import proxies
    from keras_norms.search.evaluation import task_arrays

    return task_arrays(proxies.digits_task(image_size=8))


def history_of(result):
    return [(c.genome, c.status, c.scores, c.parent, c.duplicate_of) for c in result.history]


def finite(scores):
    return scores is not None and all(np.isfinite(scores))
