"""muP's learning-rate transfer: the best Adam learning rate of a Transformer LM across widths, SP vs muP.

    KERAS_BACKEND=jax python examples/mup_transfer.py     # the stored run: 4 widths x 7 rates x 2
    python examples/mup_transfer.py --smoke --out /tmp/mup    # 2 widths x 2 rates, a few steps

The model is transformer_lm.py's character-level pre-LN Transformer on Python's help topics (the
same corpus and batches; nothing is downloaded): token and position embeddings, two blocks
(`x + attention(ln(x))`, `x + mlp(ln(x))`, 4 heads whose size grows with the width, an MLP of
4 x width), a final LayerNorm and an output head. It is built at each width in two
parametrizations:

- standard (SP): Keras' defaults, `MultiHeadAttention`, a Dense head, plain Adam;
- muP: `MuMultiHeadAttention(attention_mult=sqrt(base head size))`, a zero-initialized `MuReadout`
  head, `set_base_shapes` against the same model at the smallest width (the base, where SP and
  muP coincide but for the head's initialization) and `mu_optimizer(Adam)`.

Each (parametrization, width, learning rate) trains from the same seed on the same batches at a
constant learning rate, and the training loss is averaged over the last 10% of the steps (a run
that diverges counts as inf). muP's claim (Yang et al., "Tensor Programs V", arXiv 2203.03466):
its best learning rate stays put as the width grows, while SP's moves. The example also runs
muP's coordinate check on the same model: the mean |activation| of each layer after a few Adam
steps at each width, which muP keeps flat and SP lets grow.
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import Progress, markdown_table, progress, report  # noqa: E402
from keras import layers  # noqa: E402
from transformer_lm import HEADS, PositionEmbedding, batches, load_corpus, validation_loss  # noqa: E402

from keras_norms.parametrization import (  # noqa: E402
    MuMultiHeadAttention,
    MuReadout,
    coord_check,
    mu_optimizer,
    plot_coord_check,
    set_base_shapes,
)

PARAMETRIZATIONS = ("SP", "muP")
RESULTS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "example_results"))


class Positions(PositionEmbedding):
    """transformer_lm's learned position embedding, with what `set_base_shapes` reads to rescale it.

    `set_base_shapes` finds a variable's initializer in its layer's `<variable name>_initializer`;
    the parent's weight is unnamed ("variable", "variable_1", ...) and its initializer not kept.
    """

    def build(self, input_shape):
        self.positions_initializer = keras.initializers.RandomNormal(0.02)
        self.positions = self.add_weight(
            shape=(self.length, self.width), initializer=self.positions_initializer, name="positions"
        )


def build_model(parametrization, vocab, length, width, blocks, base_width):
    """The LM at `width` in `"SP"` or `"muP"` (muP's attention scale set relative to `base_width`)."""
    mup = parametrization == "muP"
    tokens = keras.Input((length,), dtype="int32")
    x = layers.Embedding(vocab, width, name="embedding")(tokens)
    x = Positions(length, width, name="positions")(x)
    causal = np.tril(np.ones((length, length), bool))[None]
    for i in range(blocks):
        h = layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_ln1")(x)
        if mup:
            # sqrt(base head size) / head size: 1 / sqrt(head size), SP's scale, at the base width.
            attention_mult = math.sqrt(base_width // HEADS)
            attention = MuMultiHeadAttention(HEADS, width // HEADS, attention_mult, name=f"block{i}_attention")
        else:
            attention = layers.MultiHeadAttention(HEADS, width // HEADS, name=f"block{i}_attention")
        x = x + attention(h, h, attention_mask=causal)
        h = layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_ln2")(x)
        h = layers.Dense(4 * width, activation="gelu", name=f"block{i}_mlp_in")(h)
        x = x + layers.Dense(width, name=f"block{i}_mlp_out")(h)
    x = layers.LayerNormalization(epsilon=1e-5, name="final_ln")(x)
    head = MuReadout(vocab, zero_init=True, name="readout") if mup else layers.Dense(vocab, name="readout")
    return keras.Model(tokens, head(x), name=f"{parametrization}_{width}")


def make(parametrization, width, learning_rate, vocab, args):
    """`(model, optimizer)` for one run; under muP, relative to the model at the smallest width."""
    base_width = min(args.widths)
    model = build_model(parametrization, vocab, args.length, width, args.blocks, base_width)
    if parametrization == "SP":
        return model, keras.optimizers.Adam(learning_rate)
    # The base is built after the model, so both parametrizations draw the same initial weights.
    base = build_model("muP", vocab, args.length, base_width, args.blocks, base_width)
    shapes = set_base_shapes(model, base)
    return model, mu_optimizer(keras.optimizers.Adam(learning_rate), shapes)


def loss_function():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def finite_or_inf(value):
    value = float(value)
    return value if math.isfinite(value) else math.inf


def train(parametrization, width, log2_lrs, data, args, callbacks=()):
    """One run per learning rate: the training loss averaged over each tenth of the steps, and the validation loss.

    The runs share one compiled model (a compilation per run would cost more than the small
    widths' training): each starts from the same initial weights, a fresh Adam state and the
    same batches.
    """
    train_corpus, val_corpus, vocab = data
    keras.utils.set_random_seed(args.seed)
    model, optimizer = make(parametrization, width, 2.0 ** log2_lrs[0], vocab, args)
    model.compile(optimizer=optimizer, loss=loss_function())
    initial = model.get_weights()
    runs = []
    for log2_lr in log2_lrs:
        model.set_weights(initial)
        # Adam's state (step count, moments) starts at zero; the learning rate is set after.
        for variable in optimizer.variables:
            variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
        optimizer.learning_rate = 2.0**log2_lr
        # One "epoch" per tenth of the run: Keras' epoch loss is then the mean over that tenth, and
        # the last one is the final training loss. The batches continue from one epoch to the next.
        start = time.perf_counter()
        history = model.fit(
            batches(train_corpus, args.length, args.batch_size, np.random.default_rng(args.seed)),
            steps_per_epoch=args.steps // 10,
            epochs=10,
            shuffle=False,
            verbose=0,
            callbacks=[keras.callbacks.TerminateOnNaN(), *callbacks],
        )
        seconds = time.perf_counter() - start
        curve = [finite_or_inf(loss) for loss in history.history["loss"]]
        diverged = len(curve) < 10 or not math.isfinite(curve[-1])
        val_loss = math.inf if diverged else finite_or_inf(validation_loss(model, val_corpus, args, args.seed))
        runs.append(
            {
                "train_loss": math.inf if diverged else curve[-1],
                "val_loss": val_loss,
                "curve": curve,
                "seconds": seconds,
            }
        )
    return runs


def optimum(log2_lrs, losses):
    """The grid point of least loss and the vertex of the parabola through it and its two neighbours."""
    best = int(np.argmin(losses))
    if not math.isfinite(losses[best]):
        return math.nan, math.nan
    if 0 < best < len(losses) - 1 and all(math.isfinite(v) for v in losses[best - 1 : best + 2]):
        # Equally spaced in log2(lr): vertex = x_best + step * (l- - l+) / (2 (l- - 2 l + l+)).
        left, middle, right = losses[best - 1 : best + 2]
        step = log2_lrs[best + 1] - log2_lrs[best]
        curvature = left - 2 * middle + right
        vertex = log2_lrs[best] + step * (left - right) / (2 * curvature) if curvature > 0 else log2_lrs[best]
        return log2_lrs[best], float(vertex)
    return log2_lrs[best], log2_lrs[best]  # at the edge of the grid: no interpolation


def sweep(data, args):
    log2_lrs = [float(v) for v in args.log2_lrs]
    runs = len(PARAMETRIZATIONS) * len(args.widths) * len(log2_lrs)
    bar = progress(runs * args.steps, f"learning-rate sweep: {runs} runs of {args.steps} steps", unit="step")
    results = {}
    for parametrization in PARAMETRIZATIONS:
        for width in args.widths:
            runs = train(parametrization, width, log2_lrs, data, args, [Progress(bar, per_step=True)])
            train_losses = [run["train_loss"] for run in runs]
            best, vertex = optimum(log2_lrs, train_losses)
            results.setdefault(parametrization, {})[str(width)] = {
                "log2_lr": log2_lrs,
                "train_loss": train_losses,
                "val_loss": [run["val_loss"] for run in runs],
                "curves": [run["curve"] for run in runs],
                "seconds": [run["seconds"] for run in runs],
                "best_log2_lr": best,
                "interpolated_log2_lr": vertex,
            }
    return results


def run_coord_check(data, args):
    train_corpus, _, vocab = data
    x, y = next(batches(train_corpus, args.length, args.batch_size, np.random.default_rng(args.seed + 2)))
    results = {}
    for parametrization in PARAMETRIZATIONS:
        results[parametrization] = coord_check(
            lambda width, p=parametrization: make(p, width, 2.0**args.coord_log2_lr, vocab, args),
            args.coord_widths,
            x,
            y,
            loss_function(),
            steps=args.coord_steps,
            seeds=range(args.coord_seeds),
        )
    return results


def coord_sizes(points, layer, step):
    return {point.width: point.size for point in points if point.layer == layer and point.step == step}


def hidden_layers(blocks):
    """The coordinate check's hidden layers in the table: the last block's attention and MLP outputs."""
    return [f"block{blocks - 1}_attention", f"block{blocks - 1}_mlp_out"]


def coord_table(results, args):
    rows = []
    labels = {"readout": "logits (readout)", **{name: f"hidden ({name})" for name in hidden_layers(args.blocks)}}
    for parametrization, points in results.items():
        for layer, label in labels.items():
            sizes = coord_sizes(points, layer, args.coord_steps)
            growth = sizes[max(sizes)] / sizes[min(sizes)]
            rows.append([parametrization, label, *(f"{sizes[w]:.3g}" for w in sorted(sizes)), f"{growth:.2f}"])
    widths = sorted(args.coord_widths)
    headers = ["", "layer", *(f"width {w}" for w in widths), f"{widths[-1]} / {widths[0]}"]
    return markdown_table(headers, rows)


def transfer_table(results):
    rows = []
    for parametrization, by_width in results.items():
        for width, r in by_width.items():
            best = r["best_log2_lr"]
            lr = f"2^{best:g} = {2.0**best:.3g}" if math.isfinite(best) else "none (all diverged)"
            vertex = f"{r['interpolated_log2_lr']:.2f}"
            rows.append([parametrization, width, lr, vertex, min(r["train_loss"]), min(r["val_loss"])])
    headers = [
        "",
        "width",
        "best learning rate (grid)",
        "log2 of the interpolated optimum",
        "best training loss",
        "best validation loss",
    ]
    return markdown_table(headers, rows)


def drift(results):
    """log2 of the optimum at the largest width minus at the smallest: (grid, interpolated)."""
    drifts = {}
    for parametrization, by_width in results.items():
        widths = sorted(by_width, key=int)
        small, large = by_width[widths[0]], by_width[widths[-1]]
        drifts[parametrization] = {
            "grid": large["best_log2_lr"] - small["best_log2_lr"],
            "interpolated": large["interpolated_log2_lr"] - small["interpolated_log2_lr"],
        }
    return drifts


def verdict(drifts, widths, log2_lrs):
    sp, mup = drifts["SP"], drifts["muP"]
    step = log2_lrs[1] - log2_lrs[0] if len(log2_lrs) > 1 else 1.0
    text = (
        f"From width {min(widths)} to {max(widths)} the SP optimum moves by {sp['grid']:+g} octaves on the grid "
        f"({sp['interpolated']:+.2f} interpolated), the muP optimum by {mup['grid']:+g} "
        f"({mup['interpolated']:+.2f} interpolated); the grid is {step:g} octave(s) apart."
    )
    if not all(math.isfinite(v) for d in (sp, mup) for v in d.values()):
        return text + " Some width has no finite optimum: no conclusion."
    if abs(mup["interpolated"]) + 0.5 <= abs(sp["interpolated"]):
        return text + " Learning-rate transfer shows at this size: muP's optimum moves less than SP's."
    return text + " At this size muP's optimum does not move clearly less than SP's: no transfer is shown."


def plot(results):
    import matplotlib.pyplot as plt

    sweep_results = results["sweep"]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for axis, (parametrization, by_width) in zip(axes, sweep_results.items()):
        for index, (width, r) in enumerate(by_width.items()):
            losses = [v if math.isfinite(v) else np.nan for v in r["train_loss"]]
            axis.plot(r["log2_lr"], losses, "-o", color=f"C{index}", label=f"width {width}")
            if math.isfinite(r["best_log2_lr"]):
                axis.axvline(r["interpolated_log2_lr"], color=f"C{index}", alpha=0.4, linestyle=":")
        axis.set(xlabel="log2(learning rate)", title=parametrization)
        axis.grid(alpha=0.3)
    finite = [v for by_width in sweep_results.values() for r in by_width.values() for v in r["train_loss"]]
    finite = [v for v in finite if math.isfinite(v)]
    if finite:
        # Keep the interesting part: diverged or far-off runs would flatten the minima.
        low = min(finite)
        axes[0].set_ylim(low - 0.05 * (1 + abs(low)), min(max(finite), low + 1.5) + 0.05)
    axes[0].set_ylabel("training loss (last 10% of steps)")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    return figure


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256], help="the smallest is the base")
    parser.add_argument("--log2-lrs", type=float, nargs="+", default=[-12, -11, -10, -9, -8, -7, -6])
    parser.add_argument("--steps", type=int, default=200, help="a multiple of 10")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--val-batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--coord-widths", type=int, nargs="+", default=None, help="default: --widths")
    parser.add_argument("--coord-steps", type=int, default=4)
    parser.add_argument("--coord-seeds", type=int, default=2)
    parser.add_argument("--coord-log2-lr", type=float, default=-7)
    parser.add_argument("--out", default=RESULTS, help="folder for mup_transfer.* and mup_coord_check.*")
    parser.add_argument("--smoke", action="store_true", help="2 widths, 2 rates, 10 steps: seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.widths, args.log2_lrs, args.steps, args.val_batches = [16, 32], [-8, -6], 10, 1
        args.batch_size, args.length, args.blocks, args.coord_steps, args.coord_seeds = 4, 16, 1, 1, 1
    if args.steps % 10 or args.steps < 10:
        parser.error("--steps must be a positive multiple of 10 (the loss is averaged over the last tenth)")
    args.widths = sorted(args.widths)
    if any(width % HEADS for width in args.widths):
        parser.error(f"every width must be a multiple of the {HEADS} heads")
    args.coord_widths = sorted(args.coord_widths or args.widths)

    corpus, vocab = load_corpus()
    split = int(0.9 * len(corpus))
    data = (corpus[:split], corpus[split:], vocab)
    settings = (
        f"pydoc topics: {len(corpus):,} characters, vocabulary {vocab}; {args.blocks} pre-LN blocks, {HEADS} "
        f"heads, widths {args.widths} (base {args.widths[0]}); Adam at a constant learning rate 2^{args.log2_lrs}, "
        f"{args.steps} steps of {args.batch_size}x{args.length}, seed {args.seed}; training loss = mean over the "
        f"last {args.steps // 10} steps (10%), validation loss on {args.val_batches} batches; coordinate check: "
        f"widths {args.coord_widths}, {args.coord_steps} Adam steps at 2^{args.coord_log2_lr:g} on one batch, "
        f"{args.coord_seeds} seed(s); backend {keras.backend.backend()}"
    )
    print(settings, flush=True)

    start = time.perf_counter()
    sweep_results = sweep(data, args)
    sweep_seconds = time.perf_counter() - start
    print("coordinate check", flush=True)
    coords = run_coord_check(data, args)
    coord_seconds = time.perf_counter() - start - sweep_seconds

    drifts = drift(sweep_results)
    summary = verdict(drifts, args.widths, args.log2_lrs)
    coordinates = coord_table(coords, args)
    table = (
        f"{transfer_table(sweep_results)}\n\n{summary}\n\n"
        f"Coordinate check: mean |output| after {args.coord_steps} Adam step(s) at learning rate "
        f"2^{args.coord_log2_lr:g} (under muP flat across widths; the last column is the largest width's over the "
        f"smallest's). Plot: mup_coord_check.png.\n\n{coordinates}\n\n"
        f"The sweep took {sweep_seconds:.0f} s, the coordinate check {coord_seconds:.0f} s."
    )
    results = {
        "sweep": sweep_results,
        "drift_log2_lr": drifts,
        "verdict": summary,
        "seconds": {"sweep": sweep_seconds, "coord_check": coord_seconds},
    }
    report("mup_transfer", table, results, settings, args.out, plot)
    coord_results = {p: [dataclasses.asdict(point) for point in points] for p, points in coords.items()}
    if args.out:
        with open(os.path.join(args.out, "mup_coord_check.json"), "w") as handle:
            json.dump({"settings": settings, "results": coord_results}, handle, indent=1)
        # The input, the table's hidden layers and the logits (all layers crowd the plot).
        shown = ["embedding", *hidden_layers(args.blocks), "readout"]
        plot_coord_check(coords, os.path.join(args.out, "mup_coord_check.png"), layers=shown)
    return {**results, "coord_check": coord_results}


if __name__ == "__main__":
    main()
