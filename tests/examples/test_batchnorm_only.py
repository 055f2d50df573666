"""The BatchNorm-only example: its smoke run, and the random-subset arm's gradient masks."""

import math
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import batchnorm_only  # noqa: E402


def test_batchnorm_only_smoke(tmp_path):
    results = batchnorm_only.main(["--smoke", "--out", str(tmp_path)])
    # ResNet-20: 784 BN channels, gamma and beta each; the random arm trains as many.
    assert results["batchnorm_only"]["trainable"] == 1568
    assert results["random_subset"]["trainable"] == 1568
    assert results["all"]["trainable"] == results["all"]["total"] > 200_000
    for arm in batchnorm_only.ARMS:
        assert math.isfinite(results[arm]["train_loss"]), arm
        assert 0.0 <= results[arm]["test_accuracy"] <= 1.0, arm
    assert results["chance"]["test_accuracy"] == 0.1
    assert (tmp_path / "batchnorm_only.png").stat().st_size > 0


def test_masked_sgd_updates_only_the_chosen_entries(rng):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(3)])
    before = [np.array(keras.ops.convert_to_numpy(w)) for w in model.trainable_weights]
    masks = batchnorm_only.random_masks(model, 7, seed=3)
    assert sum(int(m.sum()) for m in masks.values()) == 7
    model.compile(batchnorm_only.MaskedSGD(masks, learning_rate=0.1, momentum=0.9), "mse")
    x, y = rng.standard_normal((32, 5)).astype("float32"), rng.standard_normal((32, 3)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    changed = 0
    for weight, start in zip(model.trainable_weights, before):
        moved = np.array(keras.ops.convert_to_numpy(weight)) != start
        mask = masks[weight.path].astype(bool)
        assert not moved[~mask].any(), weight.path  # masked entries never move
        changed += int(moved.sum())
    assert changed == 7
