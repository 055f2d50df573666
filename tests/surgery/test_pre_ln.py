"""convert_pre_ln: Pre-LN to Pre-RMSNorm and Pre-CRMSNorm, exactly (docs/references/derivations.md).

Tolerance: logits within 1e-4 of the largest original logit (float32); measured
about 1e-6.
"""

import os
import sys

import keras
import keras_hub
import numpy as np
import pytest

from keras_norms.keras_internals import nested_layers
from keras_norms.layers import CRMSNormalization, RMSNormalization
from keras_norms.surgery import PreNormDecoderBlock, convert_pre_ln
from tests.oracles.rms import pre_norm_decoder_block

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

from pre_ln_transformer import (
    build_pre_ln_transformer,  # noqa: E402
    inputs_for,  # noqa: E402
)


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
    norms = [layer for layer in converted.layers if isinstance(layer, keras.layers.LayerNormalization)]
    assert not norms and sum(type(layer) is norm_cls for layer in converted.layers) == 5
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


def _gpt2(rng, causal_lm):
    """A small random keras-hub GPT-2 whose LayerNorm affines and biases are not 1 / 0."""
    keras.utils.set_random_seed(int(rng.integers(1000)))
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=13, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=12
    )
    for variable in backbone.weights:
        if variable.name in ("gamma", "beta", "bias"):
            base = 1.0 if variable.name == "gamma" else 0.0
            variable.assign((base + 0.4 * rng.standard_normal(variable.shape)).astype(variable.dtype))
    return keras_hub.models.GPT2CausalLM(backbone=backbone) if causal_lm else backbone


def _gpt2_inputs(rng, batch_size=3, length=10):
    padding_mask = np.ones((batch_size, length), "int32")
    padding_mask[1, 7:] = 0  # right padding
    padding_mask[2, 2:5] = 0  # a gap: real tokens after it must not see it (row 0 always sees token 0)
    return {"token_ids": rng.integers(0, 13, (batch_size, length)).astype("int32"), "padding_mask": padding_mask}


@pytest.mark.parametrize("causal_lm", [False, True], ids=["backbone", "causal_lm"])
@pytest.mark.parametrize("to", ["rms", "crms"])
def test_gpt2_converts_with_the_same_outputs(to, causal_lm, rng):
    model = _gpt2(rng, causal_lm)
    inputs = _gpt2_inputs(rng)
    expected = keras.ops.convert_to_numpy(model(inputs))
    converted, report = convert_pre_ln(model, to=to)
    got = keras.ops.convert_to_numpy(converted(inputs))
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())
    assert report["layer_norms"] == 5 and report["untied"] == causal_lm
    assert report["recentered"] == [
        "token_embedding",
        "position_embedding",
        "transformer_layer_0/self_attention",
        "transformer_layer_0/feedforward_output_dense",
        "transformer_layer_1/self_attention",
        "transformer_layer_1/feedforward_output_dense",
    ]
    last_reader = {(False, "rms"): [], (False, "crms"): ["decompress"]}.get((causal_lm, to), ["lm_head"])
    assert report["folded_into"][4:] == last_reader
    width = 7 if to == "crms" else 8
    table = keras.ops.convert_to_numpy(converted.get_layer("token_embedding").embeddings.value)
    assert table.shape == (13, width)
    assert not [layer for layer in nested_layers(converted) if isinstance(layer, keras.layers.LayerNormalization)]
    if causal_lm:  # untied: the head is its own weight, no longer the (recentered) input table
        head = keras.ops.convert_to_numpy(converted.get_layer("lm_head").kernel.value)
        assert head.shape == (width, 13)
    if to == "rms":
        np.testing.assert_allclose(table.mean(axis=1), 0, atol=1e-6)


def test_converted_gpt2_saves_loads_and_trains(rng, tmp_path):
    model = _gpt2(rng, causal_lm=True)
    converted, _ = convert_pre_ln(model, to="crms")
    inputs = _gpt2_inputs(rng)
    path = str(tmp_path / "gpt2_crms.keras")
    converted.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(inputs)), keras.ops.convert_to_numpy(converted(inputs))
    )
    restored.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = restored.fit(inputs, rng.integers(0, 13, (3, 10)), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_gpt2_conversion_refuses_what_it_cannot_keep_exact():
    model = keras_hub.models.GPT2Backbone(
        vocabulary_size=5, num_layers=1, num_heads=1, hidden_dim=4, intermediate_dim=4, max_sequence_length=4
    )
    with pytest.raises(ValueError, match="to"):
        convert_pre_ln(model, to="layer")
    model.transformer_layers[0].normalize_first = False
    with pytest.raises(ValueError, match="transformer_layer_0"):
        convert_pre_ln(model)


@pytest.mark.parametrize("norm", ["rms", "crms"])
def test_pre_norm_decoder_block_matches_oracle(norm, rng):
    batch_size, length, width, heads, head_dim = 2, 6, 7, 2, 4
    block = PreNormDecoderBlock(
        num_heads=heads, head_dim=head_dim, intermediate_dim=10, activation="relu", norm=norm, epsilon=1e-5
    )
    x = rng.standard_normal((batch_size, length, width)).astype("float32")
    padding_mask = np.ones((batch_size, length), "int32")
    padding_mask[0, 3:] = 0
    padding_mask[1, 1:3] = 0
    block.build(x.shape)
    weights = {}
    for name, dense in [
        ("q", block.attention.query_dense),
        ("k", block.attention.key_dense),
        ("v", block.attention.value_dense),
        ("o", block.attention.output_dense),
        ("1", block.mlp_in),
        ("2", block.mlp_out),
    ]:
        for prefix, variable in (("w", dense.kernel), ("b", dense.bias)):
            value = rng.standard_normal(variable.shape) * (0.5 if prefix == "w" else 0.2)
            variable.assign(value.astype("float32"))
            weights[prefix + name] = value.astype("float32").astype("float64")
    assert weights["wq"].shape == (width, heads, head_dim)
    got = keras.ops.convert_to_numpy(block(x, padding_mask=padding_mask))
    expected = pre_norm_decoder_block(x.astype("float64"), weights, heads, norm, 1e-5, padding_mask)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert block.compute_output_shape(x.shape) == x.shape
    with pytest.raises(ValueError, match="norm"):
        PreNormDecoderBlock(num_heads=2, head_dim=4, intermediate_dim=8, norm="layer")
    with pytest.raises(ValueError, match="head_dim"):
        PreNormDecoderBlock(num_heads=2, head_dim=0, intermediate_dim=8)
