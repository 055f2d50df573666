"""A small pre-norm Transformer language model, trained once per normalization layer.

    python examples/transformer_lm.py                          # every norm, on $KERAS_BACKEND
    KERAS_BACKEND=jax python examples/transformer_lm.py --steps 1000
    python examples/transformer_lm.py --norms power_norm layer_norm --smoke

The corpus is the English text of Python's own help topics (`pydoc_data.topics`, about 0.8 MB,
shipped with every CPython), modelled character by character, so nothing is downloaded. Each
norm trains the same causal Transformer from the same seed: token and position embeddings, two
pre-norm blocks (`x + attention(norm(x))`, `x + mlp(norm(x))`), a final norm and a softmax over
characters. The norms compared are Keras' LayerNormalization, our RMSNormalization and
PowerNormalization, and Keras' BatchNormalization, the baseline PowerNorm was designed to beat
in Transformers. It prints the validation cross-entropy (nats per character) of each and, with
`--out DIR`, writes the table, the numbers and a plot of the training curves there.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import (
    Progress,  # noqa: E402
    markdown_table,  # noqa: E402
    progress,  # noqa: E402
    report,  # noqa: E402
)
from keras import layers  # noqa: E402

import keras_norms  # noqa: E402

HEADS = 4


def load_corpus():
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key] for key in sorted(topics))
    characters = sorted(set(text))
    index = {c: i for i, c in enumerate(characters)}
    return np.array([index[c] for c in text], dtype="int32"), len(characters)


def norm_factory(name, warmup_steps):
    return {
        # epsilon 1e-5 as in GPT-2 and the PowerNorm code; Keras' default is 1e-3.
        "layer_norm": lambda **kw: layers.LayerNormalization(epsilon=1e-5, **kw),
        "rms_norm": lambda **kw: keras_norms.layers.RMSNormalization(epsilon=1e-5, **kw),
        # groups = heads and warmup = the learning-rate warmup, as in the authors' NMT runs.
        "power_norm": lambda **kw: keras_norms.layers.PowerNormalization(groups=HEADS, warmup_steps=warmup_steps, **kw),
        "batch_norm": lambda **kw: layers.BatchNormalization(epsilon=1e-5, **kw),
        # LayerNorm that can be switched to a frozen scale (the --remove-layernorm run).
        "fake_layer_norm": lambda **kw: keras_norms.layers.FakeLayerNormalization(epsilon=1e-5, **kw),
    }[name]


NORMS = ("layer_norm", "rms_norm", "power_norm", "batch_norm")


class PositionEmbedding(layers.Layer):
    def __init__(self, length, width, **kwargs):
        super().__init__(**kwargs)
        self.length, self.width = length, width

    def build(self, input_shape):
        self.positions = self.add_weight(
            shape=(self.length, self.width), initializer=keras.initializers.RandomNormal(0.02)
        )

    def call(self, inputs):
        return inputs + self.positions

    def get_config(self):
        return {**super().get_config(), "length": self.length, "width": self.width}


def build_model(norm, vocab, length, width, blocks, warmup_steps):
    make_norm = norm_factory(norm, warmup_steps)
    tokens = keras.Input((length,), dtype="int32")
    x = layers.Embedding(vocab, width)(tokens)
    x = PositionEmbedding(length, width)(x)
    causal = np.tril(np.ones((length, length), bool))[None]
    for i in range(blocks):
        h = make_norm(name=f"block{i}_ln1")(x)
        h = layers.MultiHeadAttention(HEADS, width // HEADS)(h, h, attention_mask=causal)
        x = x + h
        h = make_norm(name=f"block{i}_ln2")(x)
        h = layers.Dense(4 * width, activation="gelu")(h)
        x = x + layers.Dense(width)(h)
    logits = layers.Dense(vocab)(make_norm(name="final_ln")(x))
    return keras.Model(tokens, logits, name=norm)


def batches(corpus, length, batch_size, rng):
    while True:
        starts = rng.integers(0, len(corpus) - length - 1, batch_size)
        window = np.stack([corpus[s : s + length + 1] for s in starts])
        yield window[:, :-1], window[:, 1:]


def compile_model(model, steps, warmup, lr):
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps - warmup, alpha=0.1, warmup_target=lr, warmup_steps=warmup
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def fit(model, corpus, steps, args, rng, callbacks=()):
    history = model.fit(
        batches(corpus, args.length, args.batch_size, rng),
        steps_per_epoch=steps,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=list(callbacks),
    )
    return history.history["loss"][-1]


def validation_loss(model, val_corpus, args, seed):
    # The same validation windows for every model compared.
    rng = np.random.default_rng(seed + 1)
    val_x, val_y = next(batches(val_corpus, args.length, args.val_batches * args.batch_size, rng))
    return model.evaluate(val_x, val_y, batch_size=args.batch_size, verbose=0)


class LossCurve(keras.callbacks.Callback):
    """The running mean training loss that `fit` reports, every `every` steps."""

    def __init__(self, every):
        super().__init__()
        self.every, self.steps, self.losses = every, [], []

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0:
            self.steps.append(batch + 1)
            self.losses.append(float(logs["loss"]))


def train(norm, data, args, callbacks=()):
    train_corpus, val_corpus, vocab = data
    keras.utils.set_random_seed(args.seed)
    model = build_model(norm, vocab, args.length, args.width, args.blocks, args.warmup)
    compile_model(model, args.steps, args.warmup, args.lr)
    rng = np.random.default_rng(args.seed)
    curve = LossCurve(max(1, args.steps // 40))
    start = time.perf_counter()
    train_loss = fit(model, train_corpus, args.steps, args, rng, [curve, *callbacks])
    seconds = time.perf_counter() - start
    val_loss = validation_loss(model, val_corpus, args, args.seed)
    return {
        "val_loss": val_loss,
        "train_loss": train_loss,
        "seconds": seconds,
        "model": model,
        "curve_steps": curve.steps,
        "curve_loss": curve.losses,
    }


def plot(results):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for norm, r in results.items():
        left.plot(r["curve_steps"], r["curve_loss"], label=norm)
    left.set(xlabel="step", ylabel="running mean training loss", title="training")
    left.legend()
    left.grid(alpha=0.3)
    right.bar(list(results), [r["val_loss"] for r in results.values()], color="#1f77b4")
    right.set(ylabel="validation loss (nats/char)", title="validation")
    right.tick_params(axis="x", labelrotation=15)
    fig.tight_layout()
    return fig


def removal_schedule(blocks, start, gap):
    """The paper's order: every ln2 (MLP), then every ln1 (attention), then the final LN."""
    return keras_norms.surgery.LayerNormRemovalSchedule.from_groups(
        [
            ([f"block{i}_ln2" for i in range(blocks)], start, gap),
            ([f"block{i}_ln1" for i in range(blocks)], start + blocks * gap, gap),
            (["final_ln"], start + 2 * blocks * gap, 0),
        ]
    )


def remove_layernorm(data, args):
    """Train with LayerNorm, fine-tune while switching every LN to a frozen scale, export LN-free."""
    train_corpus, val_corpus, _ = data
    trained = train("fake_layer_norm", data, args)
    model = trained["model"]
    gap = max(1, args.removal_steps // (4 * args.blocks + 4))
    schedule = removal_schedule(args.blocks, gap, gap)
    # Fine-tune at a lower, constant rate (the reference fine-tunes GPT-2 at 6e-4 for 300 steps).
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr / 5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    fit(model, train_corpus, args.removal_steps, args, np.random.default_rng(args.seed + 2), [schedule])
    fine_tuned = validation_loss(model, val_corpus, args, args.seed)
    exported, report = keras_norms.surgery.export_without_layernorm(model)
    exported.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return {
        "original": trained["val_loss"],
        "fine_tuned_ln_free": fine_tuned,
        "exported": validation_loss(exported, val_corpus, args, args.seed),
        "removed": len(report["removed"]),
        "sigmas": {
            layer.name: float(keras.ops.convert_to_numpy(layer.sigma.value))
            for layer in model.layers
            if isinstance(layer, keras_norms.layers.FakeLayerNormalization)
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--norms", nargs="+", choices=NORMS, default=list(NORMS))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=40, help="learning-rate and PowerNorm warmup")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--val-batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for transformer_lm.md/.json/.png")
    parser.add_argument("--smoke", action="store_true", help="6 steps, a quick check")
    parser.add_argument(
        "--remove-layernorm",
        action="store_true",
        help="train with LayerNorm, fine-tune it away (arXiv 2507.02559), export LN-free",
    )
    parser.add_argument("--removal-steps", type=int, default=100, help="fine-tuning steps")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup, args.val_batches, args.removal_steps = 6, 2, 1, 12

    corpus, vocab = load_corpus()
    split = int(0.9 * len(corpus))
    data = (corpus[:split], corpus[split:], vocab)
    settings = (
        f"pydoc topics: {len(corpus):,} characters, vocabulary {vocab}; {args.steps} steps of "
        f"{args.batch_size}x{args.length}, width {args.width}, {args.blocks} blocks, seed {args.seed}; "
        f"backend {keras.backend.backend()}"
    )
    print(settings)
    if args.remove_layernorm:
        result = remove_layernorm(data, args)
        print("\n| model | validation loss (nats/char) |\n|---|---|")
        print(f"| original (LayerNorm) | {result['original']:.6f} |")
        print(f"| fine-tuned, every LayerNorm fake ({result['removed']} sites) | {result['fine_tuned_ln_free']:.6f} |")
        print(f"| exported, no LayerNorm layer | {result['exported']:.6f} |")
        print(f"\n|exported - fine-tuned| = {abs(result['exported'] - result['fine_tuned_ln_free']):.1e}")
        return result
    results = {}
    bar = progress(len(args.norms) * args.steps, "training one model per normalization", unit="step")
    for norm in args.norms:
        results[norm] = train(norm, data, args, [Progress(bar, per_step=True)])
        del results[norm]["model"]
    table = markdown_table(
        ["normalization", "validation loss (nats/char)", "mean training loss", "seconds"],
        [[norm, r["val_loss"], r["train_loss"], f"{r['seconds']:.0f}"] for norm, r in results.items()],
    )
    report("transformer_lm", table, results, settings, args.out, plot)
    return results


if __name__ == "__main__":
    main()
