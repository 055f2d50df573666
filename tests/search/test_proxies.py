"""The search's proxy task (scikit-learn's digits) and its three proxy networks.

The task: shapes, stratified and disjoint splits, the same task for the same seed, training
statistics standardized, the enlargement against `keras.ops.image.resize`. The proxies: they
build with a plain activation and with BN+ReLU as `norm_layer`, call it where documented,
return logits, stay tiny, and one learns the task in a short fit. Bad arguments raise.
"""

import keras
import numpy as np
import pytest

from keras_norms.search import proxies
from keras_norms.search.proxies import PROXIES, ShiftedDepthwiseConv2D, digits_task

# load_digits: 1,797 images, all different (checked: no two are equal), ~180 per class.
NUM_IMAGES = 1797
# Accuracy of the ResNet proxy with BN+ReLU after LEARNING_STEPS steps of SGD: 0.87 to 0.96 on
# jax, tensorflow and torch over seeds (chance is 0.1); the threshold leaves a wide margin.
LEARNING_STEPS = 150
LEARNING_THRESHOLD = 0.7


def relu():
    return keras.layers.Activation("relu")


def bn_relu():
    return keras.Sequential([keras.layers.BatchNormalization(), keras.layers.ReLU()])


class Counter:
    """A `norm_layer` that counts its calls and keeps the layers it made."""

    def __init__(self, factory):
        self.factory = factory
        self.layers = []

    def __call__(self):
        layer = self.factory()
        self.layers.append(layer)
        return layer


def all_layers(layer):
    """`layer` and the layers nested in it (the Sequential ones a norm_layer may return)."""
    yield layer
    for sublayer in getattr(layer, "layers", []):
        yield from all_layers(sublayer)


def expected_norm_calls(name, blocks):
    # resnet: two per block and the final one; the others: the stem, the head, two per block,
    # one in the first stage's blocks (no expansion).
    return 2 * sum(blocks) + 1 if name == "resnet" else 2 * sum(blocks) - blocks[0] + 2


@pytest.fixture(scope="module")
def task():
    return digits_task()


# --- the task ----------------------------------------------------------------------------------


def test_task_shapes_and_splits(task):
    splits = [(task.x_train, task.y_train), (task.x_val, task.y_val), (task.x_holdout, task.y_holdout)]
    assert task.input_shape == (16, 16, 1)
    assert task.num_classes == 10
    assert sum(len(x) for x, _ in splits) == NUM_IMAGES
    for x, y in splits:
        assert x.dtype == np.float32 and x.shape[1:] == (16, 16, 1) and x.shape[0] == y.shape[0]
        assert np.issubdtype(y.dtype, np.integer)
        # Stratified: every class in every split, in about the same proportion.
        counts = np.bincount(y, minlength=10)
        np.testing.assert_allclose(counts / len(y), 0.1, atol=0.01)
    np.testing.assert_allclose([len(task.x_val), len(task.x_holdout)], 0.2 * NUM_IMAGES, atol=10)


def test_splits_share_no_image(task):
    rows = [set(map(bytes, x.reshape(len(x), -1))) for x in (task.x_train, task.x_val, task.x_holdout)]
    assert sum(len(r) for r in rows) == NUM_IMAGES
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])


def test_same_seed_same_task_other_seed_other_split(task):
    again, other = digits_task(seed=0), digits_task(seed=1)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_holdout", "y_holdout"):
        np.testing.assert_array_equal(getattr(again, field), getattr(task, field))
    assert not np.array_equal(other.y_val, task.y_val)


def test_standardized_with_training_statistics(task):
    assert abs(float(task.x_train.mean())) < 1e-5
    assert abs(float(task.x_train.std()) - 1.0) < 1e-5
    # The other splits, standardized with the training statistics, are close to it.
    for x in (task.x_val, task.x_holdout):
        assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1.0) < 0.1


def test_enlargement_is_keras_bilinear_resize():
    small, large = digits_task(image_size=8, seed=3), digits_task(image_size=20, seed=3)
    assert small.input_shape == (8, 8, 1) and large.input_shape == (20, 20, 1)
    np.testing.assert_array_equal(small.y_train, large.y_train)
    resized = keras.ops.convert_to_numpy(
        keras.ops.image.resize(small.x_train, (20, 20), interpolation="bilinear", antialias=False)
    ).astype("float64")
    # Standardization is affine, which bilinear interpolation commutes with: standardize again.
    resized = (resized - resized.mean()) / resized.std()
    np.testing.assert_allclose(resized, large.x_train, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"image_size": 7}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"validation_fraction": 0.0}, "validation_fraction"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"holdout_fraction": 1.5}, "holdout_fraction"),
        ({"holdout_fraction": float("nan")}, "holdout_fraction"),
        ({"validation_fraction": 0.6, "holdout_fraction": 0.4}, "validation_fraction \\+ holdout_fraction"),
        ({"validation_fraction": 0.001}, "validation_fraction"),
    ],
)
def test_task_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        digits_task(**kwargs)


# --- the proxies -------------------------------------------------------------------------------


def test_proxies_table():
    assert PROXIES == {"resnet": proxies.resnet, "mobilenet": proxies.mobilenet, "efficientnet": proxies.efficientnet}


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_proxy_with_bn_relu_gives_logits(name, rng):
    counter = Counter(bn_relu)
    model = PROXIES[name](counter, input_shape=(16, 16, 1), num_classes=7)
    assert len(counter.layers) == expected_norm_calls(name, (1, 1, 1)) >= 2
    # Every norm_layer() is a distinct layer of the model, and the only batch-dependent ones.
    assert len({id(layer) for layer in counter.layers}) == len(counter.layers)
    batch_norms = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(batch_norms) == len(counter.layers)
    assert 5_000 < model.count_params() < 30_000
    x = rng.normal(size=(5, 16, 16, 1)).astype("float32")
    logits = model.predict(x, verbose=0)  # compiled: faster than an eager call on jax
    assert logits.shape == (5, 7) and np.all(np.isfinite(logits))


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_proxy_with_relu_and_more_blocks(name):
    # Width 16, as above: on jax, building weights of new shapes compiles their initializers.
    width, blocks = 16, (2, 1, 1, 1)
    counter = Counter(relu)
    model = PROXIES[name](counter, input_shape=(12, 12, 3), num_classes=3, width=width, blocks=blocks)
    assert model.output_shape == (None, 3)
    assert len(counter.layers) == expected_norm_calls(name, blocks)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in all_layers(model))
    # Channel groups that divide the width divide every normalized tensor's channels.
    for layer in counter.layers:
        assert layer.input.shape[-1] % width == 0


def test_stage_channels_double_every_second_stage():
    assert [proxies.stage_channels(8, stage) for stage in range(5)] == [8, 8, 16, 16, 32]
    assert [proxies.stage_stride(stage) for stage in range(3)] == [1, 2, 2]


def test_proxy_learns_digits(task, rng):
    keras.utils.set_random_seed(int(rng.integers(2**31)))
    model = proxies.resnet(bn_relu, input_shape=task.input_shape, num_classes=task.num_classes)
    schedule = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=LEARNING_STEPS)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    order = np.concatenate([rng.permutation(len(task.x_train)) for _ in range(10)])[: LEARNING_STEPS * 64]
    model.fit(task.x_train[order], task.y_train[order], batch_size=64, epochs=1, verbose=0, shuffle=False)
    logits = model.predict(task.x_val, batch_size=256, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == task.y_val))
    assert accuracy > LEARNING_THRESHOLD, accuracy


@pytest.mark.parametrize(
    "kernel_size, strides, shape", [(3, 1, (2, 8, 8, 4)), (3, 2, (2, 8, 8, 4)), (5, 2, (2, 7, 9, 3))]
)
def test_shifted_depthwise_is_keras_depthwise(kernel_size, strides, shape, rng):
    x = rng.normal(size=shape).astype("float32")
    shifted = ShiftedDepthwiseConv2D(kernel_size, strides=strides, use_bias=True, bias_initializer="random_normal")
    expected = keras.layers.DepthwiseConv2D(kernel_size, strides=strides, padding="same", use_bias=True)
    outputs = keras.ops.convert_to_numpy(shifted(x))
    expected.build(shape)
    for target, source in zip(expected.weights, shifted.weights):
        target.assign(keras.ops.convert_to_numpy(source.value))
    np.testing.assert_allclose(outputs, keras.ops.convert_to_numpy(expected(x)), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, argument",
    [
        ({"width": 0}, ValueError, "width"),
        ({"num_classes": 1}, ValueError, "num_classes"),
        ({"input_shape": (16, 16)}, ValueError, "input_shape"),
        ({"input_shape": (16, 0, 1)}, ValueError, "input_shape"),
        ({"blocks": ()}, ValueError, "blocks"),
        ({"blocks": (1, 0)}, ValueError, "blocks"),
        ({"norm_layer": keras.layers.ReLU()}, TypeError, "norm_layer"),
        ({"width": 2.5}, TypeError, "width"),
    ],
)
@pytest.mark.parametrize("name", sorted(PROXIES))
def test_proxy_bad_arguments(name, kwargs, error, argument):
    arguments = {"norm_layer": relu, "input_shape": (16, 16, 1), "num_classes": 10, **kwargs}
    norm_layer = arguments.pop("norm_layer")
    with pytest.raises(error, match=f"`{argument}`.*Received: {argument}="):
        PROXIES[name](norm_layer, **arguments)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("mobilenet", {"expansion": 0}),
        ("efficientnet", {"expansion": 0}),
        ("efficientnet", {"se_ratio": 0.0}),
        ("efficientnet", {"se_ratio": 1.5}),
    ],
)
def test_block_bad_arguments(name, kwargs):
    (argument,) = kwargs
    with pytest.raises(ValueError, match=f"`{argument}`.*Received: {argument}="):
        PROXIES[name](relu, input_shape=(16, 16, 1), num_classes=10, **kwargs)
