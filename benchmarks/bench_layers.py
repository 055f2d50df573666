"""Forward+backward time of each keras-norms layer next to the Keras built-in it replaces.

    KERAS_BACKEND=jax python benchmarks/bench_layers.py
    KERAS_BACKEND=torch python benchmarks/bench_layers.py --repeats 50

On the current backend, for each pair below it times `grad(sum(layer(x) * upstream))` with
respect to the input and every trainable weight (training mode), takes the median of repeated
runs after warm-up (the candidates alternate within each repetition), and prints a markdown
table with the ratio ours / built-in (below 1 means ours is faster), for our layer with its fast
paths (keras_norms.backend) and with the reference ops only. Compiled where the backend
compiles: `jax.jit` on jax, XLA on tensorflow; torch runs eager and under `torch.compile`.

| ours | built-in it replaces | input |
|---|---|---|
| EvoNormB0 | BatchNormalization + ReLU | (32, 32, 32, 64) |
| EvoNormS0 (groups=32) | GroupNormalization(groups=32) + swish | (32, 32, 32, 64) |
| FilterResponseNormalization (with TLU) | BatchNormalization + ReLU | (32, 32, 32, 64) |
| RMSNormalization | keras.layers.RMSNormalization | (32, 512, 768) |
| CRMSNormalization | keras.layers.RMSNormalization | (32, 512, 767) vs (32, 512, 768) |
| PowerNormalization (groups=12) | LayerNormalization, BatchNormalization | (32, 512, 768) |

PowerNormalization's pass includes its auxiliary loss (the approximate backward's correction).

`--targets` times instead the three comparisons the CPU targets are stated in (docs/performance.md),
as one-layer `keras.Sequential` models with default arguments (PowerNormalization is then in its
warmup phase, as for a user's first 10,000 steps), forward+backward of `sum(y**2)` (plus the
layer's added losses) with respect to the input and the trainable weights: `jax.jit(jax.grad)`
over `stateless_call`, a `GradientTape` inside `tf.function(jit_compile=True)`, torch eager
autograd. Ours and the built-in alternate in one process:

| ours | built-in | input | target ratio |
|---|---|---|---|
| EvoNormB0 | BatchNormalization + ReLU | (32, 32, 32, 64) | <= 1.0 |
| EvoNormS0 | GroupNormalization + swish | (32, 32, 32, 64) | <= 1.0 |
| PowerNormalization | BatchNormalization | (16, 256, 512) | <= 1.2 |

`--memory` (jax, torch) also prints what the forward keeps for the backward (jax's `jax.vjp`
residuals, torch's saved tensors; the input and weights excluded) and, on jax, the compiled
pass's temporary memory from XLA's `memory_analysis()` (the kept buffers plus the backward's
scratch, the input, weights and outputs excluded).
"""

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_norms import backend as fast_paths  # noqa: E402
from keras_norms import layers  # noqa: E402
from keras_norms.testing import vjp_function  # noqa: E402

IMAGE = (32, 32, 32, 64)
SEQUENCE = (32, 512, 768)
COMPRESSED = (32, 512, 767)


def pairs(image=IMAGE, sequence=SEQUENCE):
    """(name, our layer factory, our shape, built-in name, built-in factory, built-in shape)."""
    compressed = sequence[:-1] + (sequence[-1] - 1,)
    return [
        (
            "EvoNormB0",
            layers.EvoNormB0,
            image,
            "BatchNormalization+ReLU",
            lambda: keras.Sequential([keras.layers.BatchNormalization(), keras.layers.ReLU()]),
            image,
        ),
        (
            "EvoNormS0",
            lambda: layers.EvoNormS0(groups=32),
            image,
            "GroupNormalization+swish",
            lambda: keras.Sequential([keras.layers.GroupNormalization(groups=32), keras.layers.Activation("swish")]),
            image,
        ),
        (
            "FilterResponseNormalization",
            layers.FilterResponseNormalization,
            image,
            "BatchNormalization+ReLU",
            lambda: keras.Sequential([keras.layers.BatchNormalization(), keras.layers.ReLU()]),
            image,
        ),
        (
            "RMSNormalization",
            layers.RMSNormalization,
            sequence,
            "keras RMSNormalization",
            keras.layers.RMSNormalization,
            sequence,
        ),
        (
            "CRMSNormalization",
            layers.CRMSNormalization,
            compressed,
            "keras RMSNormalization",
            keras.layers.RMSNormalization,
            sequence,
        ),
        ("PowerNormalization", power_norm, sequence, "LayerNormalization", keras.layers.LayerNormalization, sequence),
        ("PowerNormalization", power_norm, sequence, "BatchNormalization", keras.layers.BatchNormalization, sequence),
    ]


def power_norm():
    # Past warmup, with GroupScaling over 12 groups (the heads of a 768-wide model).
    return layers.PowerNormalization(groups=12, warmup_steps=0)


def modes():
    backend = keras.backend.backend()
    if backend == "torch":
        return [("eager", False), ("torch.compile", True)]
    return [("jax.jit" if backend == "jax" else "XLA", True)]


def _block(results):
    """Waits for the device: timings must not stop at an asynchronous launch."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.block_until_ready(results)
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def _pass(factory, shape, jit, rng, fast=True, kernels="auto"):
    x = keras.ops.convert_to_tensor(rng.standard_normal(shape).astype("float32"))
    upstream = keras.ops.convert_to_tensor(rng.standard_normal(shape).astype("float32"))
    layer = factory()
    layer.build(shape)
    step = vjp_function(layer, training=True, jit=jit)

    def run():
        # Read when traced: the first (warm-up) call.
        with fast_paths.fast_paths(fast), fast_paths.kernels(kernels):
            _block(step(x, upstream))

    return run


def temporary_bytes(factory, shape, fast=True, seed=0):
    """XLA's temporary allocation of the jitted forward+backward (jax only)."""
    rng = np.random.default_rng(seed)
    x = keras.ops.convert_to_tensor(rng.standard_normal(shape).astype("float32"))
    layer = factory()
    layer.build(shape)
    step = vjp_function(layer, training=True, jit=True)
    with fast_paths.fast_paths(fast):
        return step.lower(x, x).compile().memory_analysis().temp_size_in_bytes


def saved_bytes(factory, shape, fast=True, seed=0):
    """Bytes the forward keeps for the backward, the input and the weights excluded.

    jax: the residuals of `jax.vjp` (what `jax.ad_checkpoint.print_saved_residuals` lists); torch:
    the storages autograd saves, seen through `torch.autograd.graph.saved_tensors_hooks`. This is
    the memory a layer adds to a network's peak (it scales with depth); a compiled pass's scratch
    is freed layer by layer.
    """
    rng = np.random.default_rng(seed)
    x = keras.ops.convert_to_tensor(rng.standard_normal(shape).astype("float32"))
    layer = factory()
    layer.build(shape)
    backend = keras.backend.backend()
    if backend == "jax":
        from jax._src.ad_checkpoint import saved_residuals  # the list behind print_saved_residuals

        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def forward(x, trainable):
            with fast_paths.fast_paths(fast):
                kwargs = {"training": True} if "training" in inspect.signature(layer.call).parameters else {}
                return layer.stateless_call(trainable, non_trainable, x, **kwargs)[0]

        residuals = saved_residuals(forward, x, trainable)
        return sum(int(np.prod(a.shape)) * a.dtype.itemsize for a, source in residuals if "argument" not in source)
    if backend == "torch":
        import torch

        x.requires_grad_(True)
        excluded = {t.untyped_storage().data_ptr() for t in [x, *[v.value for v in layer.weights]]}
        saved = {}

        def pack(tensor):
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in excluded:
                saved[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            with fast_paths.fast_paths(fast):
                layer(x, training=True)
        return sum(saved.values())
    raise SystemExit(
        "--memory reads jax's residuals and XLA's memory_analysis(), or torch's saved tensors: "
        "run it with KERAS_BACKEND=jax or torch."
    )


def time_pair(candidates, jit, warmup, repeats, seed=0):
    """Median milliseconds of one forward+backward pass of each `(factory, shape, fast[, kernels])`
    candidate (`kernels`: the kernel mode, "auto" by default; see keras_norms.backend).

    The candidates run in turn within each repetition, so drift in the machine's state (memory,
    clocks, other load) hits all of them alike and their ratio stays fair.
    """
    rng = np.random.default_rng(seed)
    passes = [_pass(*candidate[:2], jit, rng, *candidate[2:]) for candidate in candidates]
    for _ in range(warmup):
        for run in passes:
            run()
    times = [[] for _ in passes]
    for _ in range(repeats):
        for run, samples in zip(passes, times):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
    return [1000 * statistics.median(samples) for samples in times]


def target_pairs():
    """(ours, built-in, input, target ratio, our factory, built-in factory), default arguments."""
    image, sequence = (32, 32, 32, 64), (16, 256, 512)
    return [
        (
            "EvoNormB0",
            "BatchNormalization+ReLU",
            image,
            1.0,
            layers.EvoNormB0,
            lambda: [keras.layers.BatchNormalization(), keras.layers.ReLU()],
        ),
        (
            "EvoNormS0",
            "GroupNormalization+swish",
            image,
            1.0,
            layers.EvoNormS0,
            lambda: [keras.layers.GroupNormalization(), keras.layers.Activation("swish")],
        ),
        (
            "PowerNormalization",
            "BatchNormalization",
            sequence,
            1.2,
            layers.PowerNormalization,
            keras.layers.BatchNormalization,
        ),
    ]


def square_loss_step(model, shape):
    """`run()`: one forward+backward of `sum(model(x)**2)` (+ added losses) w.r.t. `x` and the
    trainable weights, compiled as the targets state (see the module docstring)."""
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal(shape).astype("float32"))
    model.build(shape)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        non_trainable = [v.value for v in model.non_trainable_variables]

        def loss(x, trainable):
            y, _, losses = model.stateless_call(trainable, non_trainable, x, training=True, return_losses=True)
            return keras.ops.sum(keras.ops.square(y)) + sum(losses)

        grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
        trainable = [v.value for v in model.trainable_variables]
        return lambda: jax.block_until_ready(grad(x, trainable))
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def grad(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = model(x, training=True)
                loss = tf.reduce_sum(tf.square(y)) + sum(model.losses)
            return tape.gradient(loss, [x] + [v.value for v in model.trainable_variables])

        return lambda: grad(x)
    import torch

    def run():
        inputs = x.detach().requires_grad_(True)
        y = model(inputs, training=True)
        loss = torch.sum(torch.square(y)) + sum(model.losses)
        torch.autograd.grad(loss, [inputs] + [v.value for v in model.trainable_variables])
        _block(None)

    return run


def targets(warmup, repeats):
    """The CPU target ratios (module docstring) on the current backend; prints a table, returns rows."""
    backend = keras.backend.backend()
    mode = {"jax": "jax.jit", "tensorflow": "XLA", "torch": "eager"}[backend]
    print("| backend | mode | ours | built-in | input | ours (ms) | built-in (ms) | ratio | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for ours, builtin, shape, target, ours_factory, builtin_factory in target_pairs():

        def sequential(factory):
            made = factory()
            return keras.Sequential(made if isinstance(made, list) else [made])

        runs = [square_loss_step(sequential(f), shape) for f in (ours_factory, builtin_factory)]
        for _ in range(warmup):
            for run in runs:
                run()
        samples: list[list[float]] = [[], []]
        for _ in range(repeats):
            for run, times in zip(runs, samples):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
        ours_ms, builtin_ms = (1000 * statistics.median(t) for t in samples)
        ratio = ours_ms / builtin_ms
        rows.append(
            {
                "kind": "target",
                "backend": backend,
                "mode": mode,
                "ours": ours,
                "builtin": builtin,
                "shape": list(shape),
                "ours_ms": ours_ms,
                "builtin_ms": builtin_ms,
                "target": target,
            }
        )
        verdict = "met" if ratio <= target else "missed"
        print(
            f"| {backend} | {mode} | {ours} | {builtin} | {shape} | {ours_ms:.2f} | {builtin_ms:.2f} | "
            f"{ratio:.2f} | <= {target} ({verdict}) |",
            flush=True,
        )
    return rows


def targets_on_every_backend(args):
    """`--targets` once per backend (Keras fixes its backend at import), one table at the end."""
    import subprocess
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for backend in ("jax", "tensorflow", "torch"):
            path = os.path.join(folder, f"{backend}.json")
            command = [sys.executable, os.path.abspath(__file__), "--targets", "--json", path]
            command += ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
            subprocess.run(command, env={**os.environ, "KERAS_BACKEND": backend}, check=True)
            with open(path) as handle:
                rows += json.load(handle)
    print("\n| ours | built-in | input | target | jax | tensorflow | torch eager |")
    print("|---|---|---|---|---|---|---|")
    for ours, builtin, shape, target, _, _ in target_pairs():
        ratios = {r["backend"]: r["ours_ms"] / r["builtin_ms"] for r in rows if r["ours"] == ours}
        cells = " | ".join(f"{ratios[b]:.2f}" for b in ("jax", "tensorflow", "torch"))
        print(f"| {ours} | {builtin} | {shape} | <= {target} | {cells} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, 2 repeats: a quick check")
    parser.add_argument("--memory", action="store_true", help="jax, torch: memory kept for the backward")
    parser.add_argument("--json", help="also write the timing rows to this JSON file (plot_performance.py reads it)")
    parser.add_argument("--layers", nargs="+", help="only these of our layers (e.g. EvoNormB0 EvoNormS0)")
    parser.add_argument("--targets", action="store_true", help="the CPU target ratios instead (module docstring)")
    parser.add_argument(
        "--all-backends", action="store_true", help="with --targets: jax, tensorflow and torch, one process each"
    )
    args = parser.parse_args(argv)
    if args.targets and args.all_backends:
        return targets_on_every_backend(args)
    if args.targets:
        rows = targets(args.warmup, args.repeats)
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(rows, handle, indent=1)
        return rows
    shapes = ((4, 8, 8, 64), (4, 16, 768)) if args.smoke else (IMAGE, SEQUENCE)
    selected = [p for p in pairs(*shapes) if not args.layers or p[0] in args.layers]
    repeats, warmup = (2, 1) if args.smoke else (args.repeats, args.warmup)

    backend = keras.backend.backend()
    print(
        f"backend {backend}, keras {keras.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, float32, median of {repeats} after {warmup} warm-up\n"
    )
    print(
        "| backend | mode | ours | built-in | input | ours (ms) | ours, reference (ms) | built-in (ms) | ratio "
        "| ratio, reference |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for mode, jit in modes():
        for name, ours, our_shape, baseline, builtin, builtin_shape in selected:
            ours_ms, reference_ms, builtin_ms = time_pair(
                [(ours, our_shape, True), (ours, our_shape, False), (builtin, builtin_shape, True)],
                jit,
                warmup,
                repeats,
            )
            rows.append(
                {
                    "kind": "layer",
                    "backend": backend,
                    "mode": mode,
                    "ours": name,
                    "builtin": baseline,
                    "shape": list(our_shape),
                    "ours_ms": ours_ms,
                    "reference_ms": reference_ms,
                    "builtin_ms": builtin_ms,
                }
            )
            print(
                f"| {backend} | {mode} | {name} | {baseline} | {our_shape} | {ours_ms:.2f} | {reference_ms:.2f} | "
                f"{builtin_ms:.2f} | {ours_ms / builtin_ms:.2f} | {reference_ms / builtin_ms:.2f} |",
                flush=True,
            )
    if args.memory:
        memory_table(selected, backend)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return rows


def memory_table(selected, backend):
    mib = 2**20
    columns = ["saved for backward"] + (["XLA temporaries"] if backend == "jax" else [])
    header = " | ".join(f"{c}: ours, reference, built-in (MiB) | ratio" for c in columns)
    print(f"\n| ours | built-in | input | {header} |")
    print("|---|---|---|" + "---|---|" * len(columns))
    for name, ours, our_shape, baseline, builtin, builtin_shape in selected:
        cells = []
        for measure in [saved_bytes] + ([temporary_bytes] if backend == "jax" else []):
            ours_bytes, reference_bytes = measure(ours, our_shape), measure(ours, our_shape, fast=False)
            builtin_bytes = measure(builtin, builtin_shape)
            # Under 1 MiB the built-in keeps only per-channel statistics: a ratio would mislead.
            ratio = f"{ours_bytes / builtin_bytes:.2f}" if builtin_bytes >= mib else "-"
            cells.append(f"{ours_bytes / mib:.1f}, {reference_bytes / mib:.1f}, {builtin_bytes / mib:.1f} | {ratio}")
        print(f"| {name} | {baseline} | {our_shape} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
