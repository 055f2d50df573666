"""L2Normalize, CosineClassifier and add_class_prototypes (docs/references/layers.md).

Tolerances: outputs 1e-5 (float32 vs float64); unit norms after a constrained step 1e-5.
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.layers import CosineClassifier, L2Normalize, add_class_prototypes
from keras_norms.testing import check_layer
from tests.oracles import catalog_layers as oracle


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x), np.float64)


def test_l2_normalize_matches_oracle_and_keeps_zeros(rng):
    x = rng.standard_normal((4, 5, 6)).astype("float32") * 3
    x[0, 0] = 0.0
    y = to_numpy(L2Normalize(scale=-7.0)(x))
    np.testing.assert_allclose(y, 7.0 * oracle.l2_normalize(x.astype(np.float64)), atol=1e-5)
    assert np.all(y[0, 0] == 0)


@pytest.mark.parametrize("scale", [None, 16.0])
def test_cosine_logits_are_s_cos(scale, rng):
    x = rng.standard_normal((6, 8)).astype("float32")
    head = CosineClassifier(5, scale=scale)
    logits = to_numpy(head(x))
    kernel = to_numpy(head.kernel.value)
    np.testing.assert_allclose(logits, oracle.cosine_logits(x.astype(np.float64), kernel, scale), atol=1e-5)


def test_paper_pipeline_gives_s_times_cosine(rng):
    x = rng.standard_normal((6, 8)).astype("float32")
    head = CosineClassifier(4)
    logits = to_numpy(head(L2Normalize(scale=10.0)(x)))
    kernel = to_numpy(head.kernel.value)
    cosine = oracle.l2_normalize(x.astype(np.float64)) @ oracle.l2_normalize(kernel, axis=0)
    np.testing.assert_allclose(logits, 10.0 * cosine, atol=1e-5)


def test_constraint_mode_gives_unit_columns_and_zero_bias_after_a_step(rng):
    inputs = keras.Input((8,))
    head = CosineClassifier(3, weight_norm="constraint")
    model = keras.Model(inputs, head(L2Normalize(10.0)(inputs)))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(rng.standard_normal((16, 8)), rng.integers(0, 3, 16), epochs=1, verbose=0)
    norms = np.linalg.norm(to_numpy(head.kernel.value), axis=0)
    np.testing.assert_allclose(norms, np.ones(3), atol=1e-5)
    x = rng.standard_normal((4, 8)).astype("float32")
    expected = 10.0 * oracle.l2_normalize(x.astype(np.float64)) @ to_numpy(head.kernel.value)
    np.testing.assert_allclose(to_numpy(model(x)), expected, atol=1e-4)


def test_add_class_prototypes(rng):
    head = CosineClassifier(3, use_bias=True)
    head.build((None, 5))
    normalize = L2Normalize(10.0)
    new_samples = [rng.standard_normal((7, 5)).astype("float32") + 2, rng.standard_normal((4, 5)).astype("float32")]
    embeddings = [to_numpy(normalize(samples)) for samples in new_samples]
    new_head = add_class_prototypes(head, embeddings)
    assert new_head.num_classes == 5
    kernel = to_numpy(new_head.kernel.value)
    for column, emb in zip((3, 4), embeddings):
        mean = emb.mean(axis=0)
        np.testing.assert_allclose(kernel[:, column], mean / np.linalg.norm(mean), atol=1e-6)
    x = rng.standard_normal((3, 5)).astype("float32")
    np.testing.assert_allclose(to_numpy(new_head(x))[:, :3], to_numpy(head(x)), atol=1e-5)
    # A class's own mean embedding is its best match among the prototypes.
    assert int(np.argmax(to_numpy(new_head(embeddings[0].mean(0, keepdims=True).astype("float32"))))) == 3


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: CosineClassifier(0), ValueError, "num_classes"),
        (lambda: CosineClassifier(3, weight_norm="projection"), ValueError, "weight_norm"),
        (lambda: CosineClassifier(3, learnable_scale=True), ValueError, "learnable_scale"),
        (lambda: L2Normalize(scale="10"), TypeError, "scale"),
        (lambda: add_class_prototypes(keras.layers.Dense(3), [np.ones((2, 3))]), TypeError, "head"),
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_prototypes_must_match_the_embedding_size():
    head = CosineClassifier(2)
    head.build((None, 4))
    with pytest.raises(ValueError, match=r"embeddings_by_class\[0\]"):
        add_class_prototypes(head, [np.ones((3, 5))])


def test_registered_by_name():
    assert isinstance(keras_norms.get("l2_normalize"), L2Normalize)
    assert isinstance(keras_norms.get("cosine_classifier", num_classes=3), CosineClassifier)


def test_l2_normalize_checker(tmp_path, rng):
    check_layer(
        L2Normalize,
        {"scale": 4.0, "trainable_scale": True},
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=1,
        seed=int(rng.integers(2**31)),
    )


@pytest.mark.parametrize("weight_norm", ["reparam", "constraint"])
def test_cosine_classifier_checker(weight_norm, tmp_path, rng):
    check_layer(
        CosineClassifier,
        {"num_classes": 5, "scale": 8.0, "learnable_scale": True, "weight_norm": weight_norm},
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=2,
        seed=int(rng.integers(2**31)),
    )
