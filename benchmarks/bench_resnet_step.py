"""A ResNet training step with EvoNorm against the same ResNet with BatchNormalization+ReLU.

    KERAS_BACKEND=jax python benchmarks/bench_resnet_step.py [--batch-size 64 --repeats 20]

The model is examples/resnet20.py's CIFAR ResNet-20 (16/32/64 channels, 3 basic blocks per stage) with
BatchNormalization+ReLU; `keras_norms.surgery.replace_norm_layers` swaps every BN (fusing the ReLU
that follows) for EvoNormS0 (groups=8) and for EvoNormB0. Each model is compiled as `model.compile`
does by default (jit on jax and XLA-capable TensorFlow) with SGD, and trained on one random
batch; the median `train_on_batch` time of the models taking turns is printed, with the ratio to
BN+ReLU (issue 7's target: EvoNormS0 <= 1.10x on jax). Each EvoNorm model also runs as a copy
traced with the fast paths off (`, reference`), in the same alternation.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from pre_ln_transformer import time_alternating  # noqa: E402
from resnet20 import resnet20  # noqa: E402

import keras_norms  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="batch 4, 2 repeats")
    args = parser.parse_args(argv)
    if args.smoke:
        args.batch_size, args.repeats = 4, 2
    keras.utils.set_random_seed(0)
    base = resnet20()
    evonorm_s0, _ = keras_norms.surgery.replace_norm_layers(base, "evonorm_s0", groups=8)
    evonorm_b0, _ = keras_norms.surgery.replace_norm_layers(base, "evonorm_b0")
    # Separate copies for the reference runs: each model compiles its step once, with the path it
    # was first traced with.
    models = {
        "bn_relu": (base, True),
        "evonorm_s0": (evonorm_s0, True),
        "evonorm_s0, reference": (keras.models.clone_model(evonorm_s0), False),
        "evonorm_b0": (evonorm_b0, True),
        "evonorm_b0, reference": (keras.models.clone_model(evonorm_b0), False),
    }
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.batch_size)
    for model, _ in models.values():
        model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def step(model, fast):
        with keras_norms.backend.fast_paths(fast):
            model.train_on_batch(x, y)

    times = time_alternating({name: (lambda m=m, f=f: step(m, f)) for name, (m, f) in models.items()}, args.repeats)
    print(f"\nResNet-20 train step, backend {keras.backend.backend()}, batch {args.batch_size}")
    print("| model | step (ms) | ratio to bn_relu |")
    print("|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {1e3 * seconds:.2f} | {seconds / times['bn_relu']:.3f} |")
    return times


if __name__ == "__main__":
    main()
