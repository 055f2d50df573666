"""The model and global batch every distributed test trains on, and what they record.

One functional model holds every batch-statistic layer: EvoNormB0/B1/B2, AlphaBatchNormalization
and EvolvedNormAct (the BN+ReLU genome: batch mean and variance) on images, PowerNormalization,
EvoNormB0 and EvolvedNormAct (a genome with a batch mean square) on masked token sequences. Padding is uneven: the first
half of the batch is mostly padding, so replicas hold different numbers of valid tokens, which only
sums and counts (not means of per-replica means) reduce correctly.
"""

import keras
import numpy as np

from keras_norms.layers import AlphaBatchNormalization, EvoNormB0, EvoNormB1, EvoNormB2, PowerNormalization
from keras_norms.search import SEEDS, EvolvedNormAct

GLOBAL_BATCH = 16
VOCABULARY = 20
LENGTH = 6
OUTPUTS = 3


def build_model(synchronized=True):
    sync = {"synchronized": synchronized}
    images = keras.Input((4, 4, 3), name="images")
    tokens = keras.Input((LENGTH,), dtype="int32", name="tokens")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(images)
    x = EvoNormB0(name="evonorm_b0", **sync)(x)
    x = keras.layers.Conv2D(8, 1, name="conv2")(x)
    x = EvoNormB1(name="evonorm_b1", **sync)(x)
    x = EvoNormB2(name="evonorm_b2", **sync)(x)
    x = AlphaBatchNormalization(test_weight=0.3, name="alpha_bn", **sync)(x)
    x = EvolvedNormAct(SEEDS["bn_relu"], name="evolved", **sync)(x)
    a = keras.layers.GlobalAveragePooling2D()(x)
    h = keras.layers.Embedding(VOCABULARY, 8, mask_zero=True, name="embedding")(tokens)
    h = PowerNormalization(groups=2, name="power_norm", **sync)(h)
    h = keras.layers.Dense(8, name="dense")(h)
    h = EvoNormB0(name="evonorm_b0_seq", **sync)(h)
    h = EvolvedNormAct("div(x, sqrt(add(mean_square_batch(x), variance_instance(x))))", name="evolved_seq", **sync)(h)
    b = keras.layers.GlobalAveragePooling1D()(h)
    outputs = keras.layers.Dense(OUTPUTS, name="head")(keras.layers.Concatenate()([a, b]))
    return keras.Model({"images": images, "tokens": tokens}, outputs)


def global_batch(seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCABULARY, (GLOBAL_BATCH, LENGTH)).astype("int32")
    valid = np.where(np.arange(GLOBAL_BATCH) < GLOBAL_BATCH // 2, 1, LENGTH - 1)  # uneven padding
    valid[0] = 2
    tokens[np.arange(LENGTH)[None, :] >= valid[:, None]] = 0
    inputs = {"images": rng.standard_normal((GLOBAL_BATCH, 4, 4, 3)).astype("float32"), "tokens": tokens}
    return inputs, rng.standard_normal((GLOBAL_BATCH, OUTPUTS)).astype("float32")


def shard(inputs, targets, index, count):
    size = GLOBAL_BATCH // count
    part = slice(index * size, (index + 1) * size)
    return {k: v[part] for k, v in inputs.items()}, targets[part]


def state(model):
    """The non-trainable variables by path: the moving statistics and step counters."""
    return {v.path: keras.ops.convert_to_numpy(v.value) for v in model.non_trainable_variables}


def weights(model):
    return {v.path: keras.ops.convert_to_numpy(v.value) for v in model.trainable_variables}
