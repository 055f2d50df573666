"""Forward+backward time and achieved bandwidth of each layer and its built-in, on a CUDA GPU.

    python benchmarks/gpu.py --out results/          # torch, jax, tensorflow, each in its own process

One run measures, per backend (torch eager and `torch.compile`, jax `jit`, tensorflow XLA), each
pair of `bench_layers.py` at GPU size, plus a device-to-device copy. Ours runs three ways: as
shipped (the Triton kernels on torch, the Pallas kernels on jax, where one covers the layer), with
the kernels off (the graph-level fast paths), and as the reference (every fast path off):

- time: median of `--repeats` forward+backward passes (`grad(sum(layer(x) * upstream))` for the
  input and every weight, training mode), synchronized with the device;
- achieved bandwidth: the fewest bytes the pass must move, divided by its time. Forward reads `x`
  and writes `y`, backward reads `x` and the upstream gradient and writes `dx`: 5 tensors of the
  input's size (weights and statistics are negligible);
- the copy's bandwidth (bytes read plus written by a device-to-device copy of the same size), and
  each layer's bandwidth as a fraction of it. Target: >= 70% for the RMS family and EvoNormS0;
- torch: the pass's peak memory above the inputs and weights (`torch.cuda.max_memory_allocated`);
  jax: XLA's temporary memory of the compiled pass (`memory_analysis()`).

It also times timm's EvoNorm2dB0/S0 against torch's BatchNorm2d+ReLU / GroupNorm+SiLU (NCHW) where
timm is installed. It writes `gpu.md` (the tables) and `gpu.json` to `--out`, and prints each row
as it is measured, so a run cut short still reports what it measured.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = (128, 64, 64, 256)  # 512 MiB in float32: the device's time, not Python's, dominates
SEQUENCE = (64, 2048, 768)  # 768: PowerNorm's 12 groups (the heads)
SMOKE = ((4, 8, 8, 64), (4, 16, 768))  # --smoke: checks the script on any machine
ROW = "ROW "


def _elementwise_bytes(shape, tensors=5, itemsize=4):
    count = 1
    for size in shape:
        count *= size
    return tensors * count * itemsize


def copy_bandwidth(backend, shape, repeats):
    """Bytes read plus written per second by a device-to-device copy of a float32 `shape` tensor."""
    if backend == "torch":
        import torch

        source = torch.randn(shape, device=_torch_device())
        target = torch.empty_like(source)

        def run():
            target.copy_(source)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
    elif backend == "tensorflow":
        import tensorflow as tf

        source = tf.random.normal(shape)
        double = tf.function(lambda x: x * 2.0, jit_compile=True)  # one read, one write

        def run():
            double(source).numpy()[(0,) * len(shape)]  # waits for the device; reads one element
    else:
        import jax

        source = jax.random.normal(jax.random.PRNGKey(0), shape)
        copy = jax.jit(lambda x: x * 2.0)  # a copy XLA cannot elide: one read, one write

        def run():
            copy(source).block_until_ready()

    seconds = _median_seconds(run, repeats)
    return _elementwise_bytes(shape, tensors=2) / seconds, seconds


def _torch_device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _median_seconds(run, repeats, warmup=3):
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2]


def _torch_peak_bytes(factory, shape, fast):
    """Peak CUDA memory of one forward+backward above what the inputs and weights hold."""
    import keras
    import numpy as np
    import torch

    from keras_norms import backend as fast_paths
    from keras_norms.testing import vjp_function

    layer = factory()
    layer.build(shape)
    x = keras.ops.convert_to_tensor(np.ones(shape, "float32"))
    step = vjp_function(layer, training=True, jit=False)
    with fast_paths.fast_paths(fast):
        step(x, x)  # warm-up: lazily created state
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step(x, x)
        torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def worker(args):
    import keras

    sys.path.insert(0, os.path.dirname(HERE))
    sys.path.insert(0, HERE)
    import bench_layers

    backend = keras.backend.backend()
    started = time.perf_counter()

    def emit(row):
        print(ROW + json.dumps(row), flush=True)

    if backend == "torch":
        import torch

        name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (no CUDA device)"
        emit(
            {
                "kind": "device",
                "backend": backend,
                "name": name,
                "versions": f"torch {torch.__version__}, keras {keras.__version__}",
            }
        )
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        emit(
            {
                "kind": "device",
                "backend": backend,
                "name": gpus[0].name if gpus else "CPU (no GPU device)",
                "versions": f"tensorflow {tf.__version__}, keras {keras.__version__}",
            }
        )
    else:
        import jax

        emit(
            {
                "kind": "device",
                "backend": backend,
                "name": str(jax.devices()[0].device_kind),
                "versions": f"jax {jax.__version__}, keras {keras.__version__}",
            }
        )
    image, sequence = SMOKE if args.smoke else (IMAGE, SEQUENCE)
    bandwidth, seconds = copy_bandwidth(backend, image, args.repeats)
    emit({"kind": "copy", "backend": backend, "bytes_per_s": bandwidth, "ms": 1000 * seconds})

    modes = bench_layers.modes()
    if args.modes:
        modes = [m for m in modes if m[0] in args.modes]
    for mode, jit in modes:
        for name, ours, our_shape, baseline, builtin, builtin_shape in bench_layers.pairs(image, sequence):
            if args.layers and name not in args.layers and not (mode == "eager" and args.all_eager):
                continue
            if time.perf_counter() - started > args.budget_s:
                emit({"kind": "skipped", "backend": backend, "mode": mode, "ours": name, "builtin": baseline})
                continue
            try:
                ours_ms, no_kernel_ms, reference_ms, builtin_ms = bench_layers.time_pair(
                    [
                        (ours, our_shape, True),
                        (ours, our_shape, True, "off"),
                        (ours, our_shape, False),
                        (builtin, builtin_shape, True),
                    ],
                    jit,
                    args.warmup,
                    args.repeats,
                )
                row = {
                    "kind": "layer",
                    "backend": backend,
                    "mode": mode,
                    "ours": name,
                    "builtin": baseline,
                    "shape": list(our_shape),
                    "ours_ms": ours_ms,
                    "no_kernel_ms": no_kernel_ms,
                    "reference_ms": reference_ms,
                    "builtin_ms": builtin_ms,
                    "ours_bytes": _elementwise_bytes(our_shape),
                    "builtin_bytes": _elementwise_bytes(builtin_shape),
                }
                if mode == "eager" and _torch_device() == "cuda":
                    row["memory"] = [
                        _torch_peak_bytes(f, s, fast)
                        for f, s, fast in [
                            (ours, our_shape, True),
                            (ours, our_shape, False),
                            (builtin, builtin_shape, True),
                        ]
                    ]
                elif backend == "jax":
                    row["memory"] = [
                        bench_layers.temporary_bytes(f, s, fast)
                        for f, s, fast in [
                            (ours, our_shape, True),
                            (ours, our_shape, False),
                            (builtin, builtin_shape, True),
                        ]
                    ]
                emit(row)
            except Exception as error:  # one failing pair must not lose the others' numbers
                emit(
                    {
                        "kind": "error",
                        "backend": backend,
                        "mode": mode,
                        "ours": name,
                        "builtin": baseline,
                        "error": f"{type(error).__name__}: {error}"[:500],
                    }
                )
    if backend == "torch":
        recompute_row(emit, args, image)
        timm_rows(emit, args, image)


def recompute_row(emit, args, image):
    """The EvoNorm-S recompute path on torch, timed on the GPU."""
    import bench_layers
    import keras

    from keras_norms import backend as fast_paths
    from keras_norms import layers
    from keras_norms.backend import fused

    # Registered on torch except under torch.compile; this row times it in eager mode regardless.
    key = ("evonorm_s", "torch")
    previous, condition = fast_paths._registry.get(key), fast_paths._conditions.pop(key, None)
    fast_paths._registry[key] = fused.evonorm_s
    try:
        ours, reference, builtin = bench_layers.time_pair(
            [
                (lambda: layers.EvoNormS0(groups=32), image, True),
                (lambda: layers.EvoNormS0(groups=32), image, False),
                (
                    lambda: keras.Sequential(
                        [keras.layers.GroupNormalization(groups=32), keras.layers.Activation("swish")]
                    ),
                    image,
                    True,
                ),
            ],
            False,
            args.warmup,
            args.repeats,
        )
        emit(
            {
                "kind": "layer",
                "backend": "torch",
                "mode": "eager",
                "ours": "EvoNormS0, recompute path",
                "builtin": "GroupNormalization+swish",
                "shape": list(image),
                "ours_ms": ours,
                "reference_ms": reference,
                "builtin_ms": builtin,
                "ours_bytes": _elementwise_bytes(image),
                "builtin_bytes": _elementwise_bytes(image),
            }
        )
    finally:
        if previous is not None:
            fast_paths._registry[key] = previous
        if condition is not None:
            fast_paths._conditions[key] = condition


def timm_rows(emit, args, image):
    """timm's EvoNorm2dB0/S0 against torch's own BatchNorm2d+ReLU / GroupNorm+SiLU, NCHW, eager."""
    import torch

    try:
        from timm.layers import EvoNorm2dB0, EvoNorm2dS0
    except ImportError as error:
        emit({"kind": "error", "backend": "torch", "mode": "timm", "error": f"timm not importable: {error}"})
        return
    n, h, w, c = image
    device = _torch_device()
    x = torch.randn(n, c, h, w, device=device, requires_grad=True)
    upstream = torch.randn_like(x)
    pairs = [
        (
            "timm EvoNorm2dB0",
            EvoNorm2dB0(c),
            "torch BatchNorm2d+ReLU",
            torch.nn.Sequential(torch.nn.BatchNorm2d(c), torch.nn.ReLU()),
        ),
        (
            "timm EvoNorm2dS0",
            EvoNorm2dS0(c, groups=32),
            "torch GroupNorm+SiLU",
            torch.nn.Sequential(torch.nn.GroupNorm(32, c), torch.nn.SiLU()),
        ),
    ]
    for name, module, baseline, builtin in pairs:
        times = []
        for candidate in (module, builtin):
            candidate.to(device).train()

            def run(candidate=candidate):
                torch.autograd.grad((candidate(x) * upstream).sum(), [x, *candidate.parameters()])
                if device == "cuda":
                    torch.cuda.synchronize()

            times.append(1000 * _median_seconds(run, args.repeats, args.warmup))
        emit(
            {
                "kind": "layer",
                "backend": "torch",
                "mode": "eager (timm, NCHW)",
                "ours": name,
                "builtin": baseline,
                "shape": [n, c, h, w],
                "ours_ms": times[0],
                "reference_ms": None,
                "builtin_ms": times[1],
                "ours_bytes": _elementwise_bytes(image),
                "builtin_bytes": _elementwise_bytes(image),
            }
        )


def tables(rows):
    lines = []
    devices = [r for r in rows if r["kind"] == "device"]
    copies = {r["backend"]: r["bytes_per_s"] for r in rows if r["kind"] == "copy"}
    for device in devices:
        copy = copies.get(device["backend"])
        copy_text = f"{copy / 1e9:.0f} GB/s" if copy else "not measured"
        lines.append(
            f"- {device['backend']}: {device['name']} ({device['versions']}); device-to-device copy {copy_text}"
        )
    lines += [
        "",
        "| backend | mode | ours | built-in | input | ours (ms) | kernels off (ms) | reference (ms) | built-in (ms) "
        "| ratio | ratio, reference | ours (GB/s) | ours / copy | built-in / copy "
        "| memory: ours, reference, built-in (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["kind"] != "layer":
            continue
        copy = copies.get(r["backend"])
        ours_bandwidth = r["ours_bytes"] / (r["ours_ms"] / 1000)
        builtin_bandwidth = r["builtin_bytes"] / (r["builtin_ms"] / 1000)
        reference = "-" if r["reference_ms"] is None else f"{r['reference_ms']:.3f}"
        reference_ratio = "-" if r["reference_ms"] is None else f"{r['reference_ms'] / r['builtin_ms']:.2f}"
        memory = ", ".join(f"{m / 2**20:.0f}" for m in r["memory"]) if r.get("memory") else "-"
        no_kernel = "-" if r.get("no_kernel_ms") is None else f"{r['no_kernel_ms']:.3f}"
        lines.append(
            f"| {r['backend']} | {r['mode']} | {r['ours']} | {r['builtin']} | {tuple(r['shape'])} | {r['ours_ms']:.3f} "
            f"| {no_kernel} | {reference} | {r['builtin_ms']:.3f} | {r['ours_ms'] / r['builtin_ms']:.2f} "
            f"| {reference_ratio} "
            f"| {ours_bandwidth / 1e9:.0f} | {ours_bandwidth / copy:.0%} | {builtin_bandwidth / copy:.0%} | {memory} |"
        )
    for r in rows:
        if r["kind"] in ("error", "skipped"):
            lines.append(
                f"\n{r['kind']}: {r.get('backend')} {r.get('mode', '')} {r.get('ours', '')}: "
                f"{r.get('error', 'out of time budget')}"
            )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", default="gpu_results", help="folder for gpu.md and gpu.json")
    parser.add_argument("--backends", nargs="+", default=["torch", "jax", "tensorflow"])
    parser.add_argument("--modes", nargs="+", help="only these modes (eager, torch.compile, jax.jit)")
    parser.add_argument("--layers", nargs="+", help="only these of our layers (e.g. RMSNormalization EvoNormS0)")
    parser.add_argument("--all-eager", action="store_true", help="with --layers: every layer in eager mode")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    # Three backends in under 8 minutes, start-up included; each writes its rows as it goes.
    parser.add_argument("--budget-s", type=float, default=130.0, help="per backend; later rows are skipped")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, 2 repeats: checks the script, on a CPU too")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.warmup = 2, 1
    if args.worker:
        return worker(args)

    os.makedirs(args.out, exist_ok=True)
    rows = []
    for backend in args.backends:
        command = [
            sys.executable,
            "-u",
            os.path.abspath(__file__),
            "--worker",
            "--repeats",
            str(args.repeats),
            "--warmup",
            str(args.warmup),
            "--budget-s",
            str(args.budget_s),
        ] + (["--smoke"] if args.smoke else [])
        if args.modes:
            command += ["--modes", *args.modes]
        if args.layers:
            command += ["--layers", *args.layers] + (["--all-eager"] if args.all_eager else [])
        env = dict(os.environ, KERAS_BACKEND=backend)
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            if line.startswith(ROW):
                rows.append(json.loads(line[len(ROW) :]))
                print(line.rstrip(), flush=True)
            elif "Error" in line or "error" in line:
                print(f"[{backend}] {line.rstrip()}", flush=True)
        if process.wait():
            rows.append({"kind": "error", "backend": backend, "error": f"worker exited with {process.returncode}"})
        with open(os.path.join(args.out, "gpu.json"), "w") as handle:
            json.dump(rows, handle, indent=1)
        with open(os.path.join(args.out, "gpu.md"), "w") as handle:
            handle.write(tables(rows))
    print(tables(rows))


if __name__ == "__main__":
    main()
