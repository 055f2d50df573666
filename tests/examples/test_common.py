"""The examples' data choice: CIFAR-10 when reachable, the bundled digits otherwise, and said which."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import common  # noqa: E402


def test_auto_falls_back_to_the_digits_and_says_so(monkeypatch):
    monkeypatch.setattr(common, "_cifar10_cached", lambda: False)
    monkeypatch.setattr(common, "_reachable", lambda address, timeout=3.0: False)
    x_train, y_train, x_test, y_test, description = common.load_images("auto")
    assert "digits" in description and "CIFAR-10 unreachable" in description
    assert x_train.shape[1:] == (8, 8, 1) and len(x_train) + len(x_test) == 1797
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    x32 = common.load_images("digits", size=32)[0]
    assert x32.shape[1:] == (32, 32, 3)
    np.testing.assert_array_equal(x32[:, ::4, ::4, 0], x_train[..., 0])  # 4x nearest-neighbour


def test_auto_takes_cifar10_when_reachable(monkeypatch):
    """No download here: keras.datasets' loader is replaced by a stand-in of CIFAR-10's format."""
    import keras

    rng = np.random.default_rng(0)
    fake = (
        (rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, (6, 1))),
        (rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, (4, 1))),
    )
    monkeypatch.setattr(common, "_cifar10_cached", lambda: False)
    monkeypatch.setattr(common, "_reachable", lambda address, timeout=3.0: True)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: fake)
    x_train, y_train, x_test, y_test, description = common.load_images("auto")
    assert description.startswith("CIFAR-10")
    np.testing.assert_allclose(x_train, fake[0][0] / 255.0, rtol=1e-6)
    assert y_train.shape == (6,) and y_test.shape == (4,)


def test_bad_dataset_and_size_raise():
    with pytest.raises(ValueError, match="dataset"):
        common.load_images("imagenet")
    with pytest.raises(ValueError, match="size"):
        common.load_images("digits", size=16)


def test_markdown_table():
    assert common.markdown_table(["a", "b"], [["x", 0.5], ["y", 3]]) == (
        "| a | b |\n|---|---|\n| x | 0.5000 |\n| y | 3 |"
    )
