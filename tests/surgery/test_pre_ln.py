"""convert_pre_ln: Pre-LN to Pre-RMSNorm and Pre-CRMSNorm, exactly (../shared/specs/normalization.md §3).

Tolerance: logits within 1e-4 of the largest original logit (float32), as the issue asks; measured
about 1e-6.
"""

import os
import sys

import keras
import numpy as np
import pytest

from keras_norms.layers import CRMSNormalization
from keras_norms.layers import RMSNormalization
from keras_norms.surgery import convert_pre_ln

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

from pre_ln_transformer import build_pre_ln_transformer  # noqa: E402
from pre_ln_transformer import inputs_for  # noqa: E402


@pytest.mark.parametrize("to, norm_cls, stream_width", [("rms", RMSNormalization, 8), ("crms", CRMSNormalization, 7)])
def test_converted_model_gives_the_same_logits(to, norm_cls, stream_width, rng):
    model = build_pre_ln_transformer(width=8, heads=2, blocks=2, mlp_width=16, seed=int(rng.integers(1000)))
    inputs = inputs_for(model, 3, seed=int(rng.integers(1000)))
    expected = keras.ops.convert_to_numpy(model(inputs))
    converted, report = convert_pre_ln(model, to=to)
    got = keras.ops.convert_to_numpy(converted(inputs))
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())
    assert report["layer_norms"] == 5
    assert report["folded_into"] == ["block0_attention", "block0_fc1", "block1_attention", "block1_fc1", "head"]
    assert len(report["recentered"]) == 6
    norms = [l for l in converted.layers if isinstance(l, keras.layers.LayerNormalization)]
    assert not norms and sum(type(l) is norm_cls for l in converted.layers) == 5
    table = keras.ops.convert_to_numpy(converted.get_layer("token_embedding").embeddings.value)
    assert table.shape[1] == stream_width
    if to == "rms":  # every writer of the stream is zero-mean
        np.testing.assert_allclose(table.mean(axis=1), 0, atol=1e-6)
    # The original is untouched.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(inputs)), expected)


def test_training_the_converted_model_works(rng):
    model = build_pre_ln_transformer()
    converted, _ = convert_pre_ln(model, to="crms")
    converted.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    inputs = inputs_for(model, 4)
    history = converted.fit(inputs, rng.integers(0, 11, (4, 8)), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_refuses_models_that_are_not_pre_ln():
    inputs = keras.Input((4, 6))
    x = keras.layers.Dense(6, name="writer")(inputs)
    h = keras.layers.LayerNormalization(name="ln")(x)
    y = keras.layers.Add()([x, keras.layers.Dense(6)(h)])
    side = keras.layers.Dense(6, name="side_reader")(y)  # reads the stream without a norm
    model = keras.Model(inputs, keras.layers.Add()([y, side]))
    with pytest.raises(ValueError, match="side_reader"):
        convert_pre_ln(model)
    with pytest.raises(ValueError, match="to"):
        convert_pre_ln(build_pre_ln_transformer(), to="ln")
    with pytest.raises(ValueError, match="no LayerNormalization"):
        convert_pre_ln(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
