"""A Pre-LN Transformer built from Keras layers, converted to Pre-RMSNorm and Pre-CRMSNorm.

    python examples/pre_ln_transformer.py            # convert, compare outputs, time LN/RMS/CRMS
    python examples/pre_ln_transformer.py --smoke    # tiny sizes, for CI

The conversion (keras_norms.surgery.convert_pre_ln) gives the same logits; the paper
(Jiang et al., arXiv 2305.14858) claims RMS and CRMS are also faster. This script prints the
largest output difference and the median forward and training-step times of the three models
(compiled as `model.compile` does by default; the models take turns, so load affects all three).
"""

import argparse
import statistics
import time

import keras
import numpy as np

import keras_norms


def build_pre_ln_transformer(
    vocab_size=11, sequence_length=8, width=8, heads=2, blocks=2, mlp_width=16, epsilon=1e-5, seed=0
):
    """A causal Pre-LN Transformer LM: `logits = Dense(LN_f(stream))`, inputs `[tokens, positions]`.

    Each block adds `MHA(LN(x))` and `Dense(gelu(Dense(LN(x))))` to the residual stream. LayerNorm
    affines and biases are random, so the conversion has something to fold.
    """
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    positions = keras.Input((sequence_length,), dtype="int32", name="positions")
    x = keras.layers.Add(name="embed_add")(
        [
            keras.layers.Embedding(vocab_size, width, name="token_embedding")(tokens),
            keras.layers.Embedding(sequence_length, width, name="position_embedding")(positions),
        ]
    )
    for i in range(blocks):
        h = keras.layers.LayerNormalization(epsilon=epsilon, name=f"block{i}_ln1")(x)
        h = keras.layers.MultiHeadAttention(heads, width // heads, name=f"block{i}_attention")(
            h, h, use_causal_mask=True
        )
        x = keras.layers.Add(name=f"block{i}_add1")([x, h])
        h = keras.layers.LayerNormalization(epsilon=epsilon, name=f"block{i}_ln2")(x)
        h = keras.layers.Dense(mlp_width, activation="gelu", name=f"block{i}_fc1")(h)
        h = keras.layers.Dense(width, name=f"block{i}_fc2")(h)
        x = keras.layers.Add(name=f"block{i}_add2")([x, h])
    x = keras.layers.LayerNormalization(epsilon=epsilon, name="final_ln")(x)
    logits = keras.layers.Dense(vocab_size, name="head")(x)
    model = keras.Model([tokens, positions], logits, name="pre_ln_transformer")
    for layer in model.layers:  # random affines and biases
        for variable in layer.weights:
            if variable.name in ("gamma", "beta", "bias"):
                scale = 0.5 if variable.name == "gamma" else 0.2
                base = 1.0 if variable.name == "gamma" else 0.0
                value = base + scale * rng.standard_normal(variable.shape)
                variable.assign(value.astype(variable.dtype))
    return model


def inputs_for(model, batch_size, seed=1):
    sequence_length = model.inputs[0].shape[1]
    vocab_size = model.get_layer("token_embedding").input_dim
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab_size, (batch_size, sequence_length)).astype("int32")
    positions = np.broadcast_to(np.arange(sequence_length, dtype="int32"), tokens.shape).copy()
    return [tokens, positions]


def time_alternating(functions, repeats):
    """Median seconds per call of each function, the functions taking turns within a repetition."""
    for function in functions.values():
        function()  # compile / warm up
    samples = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, few repeats (CI)")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if args.smoke:
        args.width, args.blocks, args.batch_size, args.repeats = 16, 2, 2, 2
    model = build_pre_ln_transformer(
        vocab_size=256,
        sequence_length=64,
        width=args.width,
        heads=4,
        blocks=args.blocks,
        mlp_width=4 * args.width,
    )
    inputs = inputs_for(model, args.batch_size)
    results = compare_and_time(model, inputs, np.zeros(inputs[0].shape, "int32"), args.repeats)
    print(f"\nbackend {keras.backend.backend()}, width {args.width}, {args.blocks} blocks, batch {args.batch_size}")
    print_table(results)
    return results


def compare_and_time(model, inputs, labels, repeats):
    """Converts the Pre-LN `model` to RMS and CRMS; output differences and median step times."""
    reference = keras.ops.convert_to_numpy(model.predict_on_batch(inputs))
    models = {"ln": model}
    for name in ("rms", "crms"):
        models[name] = keras_norms.surgery.convert_pre_ln(model, to=name)[0]
    results = {}
    for name, converted in models.items():  # compare all before timing trains any of them
        output = keras.ops.convert_to_numpy(converted.predict_on_batch(inputs))
        results[name] = {"max_relative_difference": float(np.abs(output - reference).max() / np.abs(reference).max())}
    for converted in models.values():
        converted.compile(keras.optimizers.SGD(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    forward = time_alternating(
        {name: (lambda m=m: keras.ops.convert_to_numpy(m.predict_on_batch(inputs))) for name, m in models.items()},
        repeats,
    )
    train = time_alternating(
        {name: (lambda m=m: m.train_on_batch(inputs, labels)) for name, m in models.items()}, repeats
    )
    for name in models:
        results[name].update(forward_s=forward[name], train_step_s=train[name])
    return results


def print_table(results):
    print(
        "| model | max relative difference to LN | forward (ms) | train step (ms) | forward speed-up | train speed-up |"
    )
    print("|---|---|---|---|---|---|")
    for name, result in results.items():
        print(
            f"| pre-{name} | {result['max_relative_difference']:.1e} | {1e3 * result['forward_s']:.2f} | "
            f"{1e3 * result['train_step_s']:.2f} | {results['ln']['forward_s'] / result['forward_s']:.3f} | "
            f"{results['ln']['train_step_s'] / result['train_step_s']:.3f} |"
        )


if __name__ == "__main__":
    main()
