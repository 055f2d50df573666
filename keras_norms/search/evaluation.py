"""Evaluating a candidate: the rejection protocols, cheapest first, then the K proxy scores.

1. `probe` (in the search process, milliseconds): the layer on fixed probe inputs. Invalid if
   the output has the wrong shape or dtype, is not finite, or does not change with `x`; otherwise
   its outputs are the candidate's *fingerprint*, which the duplicate cache compares.
2. `stability` (in a worker): a short adversarial ascent on the layer's parameters maximizing
   the input-gradient norm `||dL/dx|| / ||dL/dy||` (the paper's stability protocol); unstable
   above `stability_threshold`.
3. `evaluate` (in a worker): trains the first proxy for `quality_steps` and rejects it as poor
   below `quality_threshold` validation accuracy (the paper: 20 % after 100 steps on CIFAR-10);
   otherwise trains every proxy for `steps` and returns the K validation accuracies.

A loss that turns NaN is a rejection too (reason "nan").
"""

import dataclasses
import functools
import math
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_norms.arguments import check_fraction, check_int, check_number
from keras_norms.backend.autodiff import vjp_function
from keras_norms.search.genome import Genome, parse
from keras_norms.search.layer import EvolvedNormAct

# The shape of the probe inputs (channels-last) and the channel groups they use.
PROBE_SHAPE = (8, 4, 4, 16)
PROBE_GROUPS = 4


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """How candidates are trained and judged. Defaults fit a 2-core CPU (see docs/search.md).

    Args:
        proxies: Names of the proxy architectures (`keras_norms.search.proxies.PROXIES`) or, in
            `evolve`, user builders; one score each.
        steps: Training steps of each proxy.
        batch_size: Training batch size.
        learning_rate: Peak learning rate (SGD with Nesterov momentum 0.9, cosine decay).
        quality_steps: Steps after which the first proxy must reach `quality_threshold`.
        quality_threshold: Validation accuracy below which a candidate is rejected as poor.
        stability_steps: Steps of the adversarial ascent.
        stability_threshold: Worst-case gradient-norm ratio above which a candidate is unstable.
        groups: Channel groups of the group aggregates in the proxies.
        epsilon: The layers' epsilon.
        width: The proxies' base width.
        image_size: Side of the digits images (8x8 enlarged) when no data is given.
        seed: Seed of the weights and the data order (with the genome's text, so that a genome's
            scores do not depend on when it is evaluated).
    """

    steps: int = 150
    batch_size: int = 64
    learning_rate: float = 0.1
    quality_steps: int = 50
    quality_threshold: float = 0.2
    stability_steps: int = 30
    stability_threshold: float = 1e3
    groups: int = 4
    epsilon: float = 1e-5
    width: int = 16
    image_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_number("learning_rate", self.learning_rate, minimum=0.0, exclusive_minimum=True)
        check_int("quality_steps", self.quality_steps, 0)
        check_fraction("quality_threshold", self.quality_threshold)
        check_int("stability_steps", self.stability_steps, 0)
        check_number("stability_threshold", self.stability_threshold, minimum=0.0, exclusive_minimum=True)
        check_int("groups", self.groups, 1)
        check_int("width", self.width, 1)
        check_int("image_size", self.image_size, 8)
        if self.quality_steps > self.steps:
            raise ValueError(
                f"`quality_steps` must be at most `steps` ({self.steps}). Received: quality_steps={self.quality_steps}"
            )


def genome_seed(genome: Genome, seed: int) -> int:
    """A seed for one genome's evaluation: the same wherever and whenever it runs."""
    return (zlib.crc32(str(genome).encode()) + 7919 * seed) % (2**31 - 1)


def default_builders(config: EvaluationConfig) -> dict[str, Callable[..., keras.Model]]:
    """The three proxies (`keras_norms.search.proxies.PROXIES`) at `config.width`."""
    from keras_norms.search import proxies

    return {name: functools.partial(builder, width=config.width) for name, builder in proxies.PROXIES.items()}


def make_layer_factory(genome: Genome, config: EvaluationConfig) -> Callable[[], keras.layers.Layer]:
    def norm_layer() -> keras.layers.Layer:
        return EvolvedNormAct(genome, groups=config.groups, epsilon=config.epsilon)

    return norm_layer


# --- 1. probe ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Probe:
    """What `probe` found: `reason` is None for a valid candidate, else why it is invalid."""

    reason: str | None
    fingerprint: np.ndarray | None = None


def _probe_layer(genome: Genome, epsilon: float) -> EvolvedNormAct:
    layer = EvolvedNormAct(genome, groups=PROBE_GROUPS, epsilon=epsilon)
    layer.build(PROBE_SHAPE)
    # Non-default parameter values, so that genomes equal only at the initial values differ.
    rng = np.random.default_rng(1234)
    for variable in layer.weights:
        low, high = (
            (0.5, 1.5)
            if variable.name.startswith(("gamma", "v1", "moving_variance", "moving_mean_sq"))
            else (
                -0.5,
                0.5,
            )
        )
        variable.assign(rng.uniform(low, high, variable.shape).astype("float32"))
    return layer


def probe_inputs() -> list[np.ndarray]:
    """The fixed probe inputs: two batches of different scale and offset."""
    rng = np.random.default_rng(0)
    return [
        (rng.normal(size=PROBE_SHAPE) * 1.5 + 0.3).astype("float32"),
        (rng.normal(size=PROBE_SHAPE) * 0.5 - 0.2).astype("float32"),
    ]


def probe(genome: Genome, epsilon: float = 1e-5) -> Probe:
    """Runs the invalid-layer checks; returns the fingerprint of a valid candidate.

    The fingerprint is the layer's output (training and inference) on `probe_inputs`, with fixed
    non-default parameters: two genomes with matching fingerprints compute the same function.
    """
    layer = _probe_layer(genome, epsilon)
    outputs = []
    for x in probe_inputs():
        for training in (True, False):
            y = layer(x, training=training)
            if tuple(y.shape) != PROBE_SHAPE or keras.backend.standardize_dtype(y.dtype) != "float32":
                return Probe(f"wrong output shape or dtype: {tuple(y.shape)} {y.dtype}")
            outputs.append(np.asarray(ops.convert_to_numpy(y), dtype=np.float64))
    fingerprint = np.stack(outputs)
    if not np.all(np.isfinite(fingerprint)):
        return Probe("non-finite output on the probe inputs")
    first, second = fingerprint[0], fingerprint[2]  # training outputs on the two probe inputs
    if np.ptp(first) == 0 or np.allclose(first, second, rtol=1e-6, atol=1e-9):
        return Probe("output independent of x")
    return Probe(None, fingerprint)


def same_function(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two fingerprints match (float32 rounding aside)."""
    scale = max(float(np.max(np.abs(a))), 1e-12)
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5 * scale))


# --- 2. stability --------------------------------------------------------------------------------


def stability(genome: Genome, config: EvaluationConfig) -> float:
    """The worst-case `||dL/dx|| / ||dL/dy||` found by a short ascent on the layer's parameters.

    `L = sum(y * u)` for a fixed random upstream gradient `u` (so `dL/dy = u`), on the first probe
    input in training mode. The ascent is a (1+1) evolution strategy on `gamma`, `beta`, `v0`,
    `v1`: a Gaussian step (scale 0.1 of each parameter's magnitude plus 0.1) is kept when it raises
    the ratio. Derivative-free, so that it needs only first-order gradients on every backend.
    """
    layer = _probe_layer(genome, config.epsilon)
    for variable in layer.trainable_variables:  # start from the initial values
        variable.assign(np.ones(variable.shape) if variable.name in ("gamma", "v1") else np.zeros(variable.shape))
    rng = np.random.default_rng(genome_seed(genome, config.seed))
    x = ops.convert_to_tensor(probe_inputs()[0])
    upstream_numpy = rng.normal(size=PROBE_SHAPE).astype("float32")
    upstream = ops.convert_to_tensor(upstream_numpy)
    gradient = vjp_function(layer, training=True)

    def ratio() -> float:
        _, dx, _ = gradient(x, upstream)
        norm = float(np.linalg.norm(np.asarray(ops.convert_to_numpy(dx), dtype=np.float64)))
        return norm / float(np.linalg.norm(upstream_numpy)) if math.isfinite(norm) else math.inf

    best = ratio()
    for _ in range(config.stability_steps):
        if not math.isfinite(best) or best > config.stability_threshold:
            break
        previous = [np.asarray(ops.convert_to_numpy(v)) for v in layer.trainable_variables]
        for variable, value in zip(layer.trainable_variables, previous):
            step = rng.normal(size=value.shape) * (0.1 * np.abs(value) + 0.1)
            variable.assign((value + step).astype("float32"))
        candidate = ratio()
        if candidate > best or not math.isfinite(candidate):
            best = candidate
        else:
            for variable, value in zip(layer.trainable_variables, previous):
                variable.assign(value)
    return best


# --- 3. proxy training -----------------------------------------------------------------------------


def task_arrays(task: Any) -> dict[str, Any]:
    """An `ImageTask` (or any object with the same fields) as the dict of arrays workers take."""
    names = ("x_train", "y_train", "x_val", "y_val", "x_holdout", "y_holdout", "num_classes")
    return {name: getattr(task, name) for name in names if hasattr(task, name)}


def train_proxy(
    builder: Callable[..., keras.Model],
    norm_layer: Callable[[], keras.layers.Layer],
    data: Mapping[str, Any],
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    quality_check: tuple[int, float] | None = None,
    validation: str = "val",
) -> float:
    """Trains `builder(norm_layer, input_shape=..., num_classes=...)` from scratch; returns its
    accuracy on the `validation` split ("val" or "holdout").

    SGD with Nesterov momentum 0.9 and cosine decay from `learning_rate`, batches drawn without
    replacement, seeded by `seed`. Returns NaN if the loss or the logits stop being finite, and
    `-accuracy` (negative) if `quality_check = (step, threshold)` stops it early below threshold.
    """
    keras.utils.set_random_seed(seed)
    x_train, y_train = data["x_train"], data["y_train"]
    x_val, y_val = data[f"x_{validation}"], data[f"y_{validation}"]
    model = builder(norm_layer, input_shape=tuple(x_train.shape[1:]), num_classes=int(data["num_classes"]))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(seed)

    def accuracy() -> float:
        logits = model.predict(x_val, batch_size=256, verbose=0)
        if not np.all(np.isfinite(logits)):
            return math.nan
        return float(np.mean(np.argmax(logits, axis=-1) == y_val))

    stops = ([quality_check[0]] if quality_check and 0 < quality_check[0] < steps else []) + [steps]
    done = 0
    for stop in stops:
        while done < stop:
            chunk = min(stop - done, len(x_train) // batch_size)
            order = rng.permutation(len(x_train))[: chunk * batch_size]
            history = model.fit(
                x_train[order], y_train[order], batch_size=batch_size, epochs=1, verbose=0, shuffle=False
            )
            done += chunk
            if not math.isfinite(history.history["loss"][-1]):
                return math.nan
        if quality_check and stop < steps:
            reached = accuracy()
            if math.isnan(reached) or reached < quality_check[1]:
                return -reached
    return accuracy()


def evaluate(
    genome_text: str,
    config: EvaluationConfig,
    builders: Mapping[str, Callable[..., keras.Model]] | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The worker task: stability, then quality, then the K scores of one candidate.

    Returns `{"status": "ok" | "unstable" | "poor" | "nan", "scores": [...] (ok only),
    "stability": ratio, "quality": accuracy, "seconds": ...}`. `builders` default to the three
    proxies; `data` to `proxies.digits_task()` as a dict of arrays.
    """
    from keras_norms.search import proxies

    start = time.time()
    genome = parse(genome_text)
    builders = dict(builders or default_builders(config))
    data = dict(data or task_arrays(proxies.digits_task(image_size=config.image_size)))
    ratio = stability(genome, config)
    result: dict[str, Any] = {"stability": ratio if math.isfinite(ratio) else None}
    if not ratio <= config.stability_threshold:
        return {**result, "status": "unstable", "seconds": time.time() - start}
    norm_layer = make_layer_factory(genome, config)
    seed = genome_seed(genome, config.seed)
    scores = []
    for position, (name, builder) in enumerate(builders.items()):
        quality_check = (config.quality_steps, config.quality_threshold) if position == 0 else None
        score = train_proxy(
            builder,
            norm_layer,
            data,
            steps=config.steps,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            seed=seed + position,
            quality_check=quality_check,
        )
        if math.isnan(score):
            return {**result, "status": "nan", "proxy": name, "seconds": time.time() - start}
        if score < 0 or (position == 0 and config.quality_steps >= config.steps and score < config.quality_threshold):
            return {**result, "status": "poor", "quality": abs(score), "seconds": time.time() - start}
        scores.append(score)
    return {**result, "status": "ok", "scores": scores, "seconds": time.time() - start}


def rerank(
    genome_text: str,
    config: EvaluationConfig,
    learning_rates: tuple[float, ...],
    steps: int,
    builders: Mapping[str, Callable[..., keras.Model]] | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The final re-ranking task: each proxy trained for `steps` at each learning rate, scored on
    the held-out split. Returns `{"scores": {proxy: {learning_rate: accuracy}}, "seconds": ...}`.
    """
    from keras_norms.search import proxies

    start = time.time()
    genome = parse(genome_text)
    builders = dict(builders or default_builders(config))
    data = dict(data or task_arrays(proxies.digits_task(image_size=config.image_size)))
    norm_layer = make_layer_factory(genome, config)
    seed = genome_seed(genome, config.seed)
    scores: dict[str, dict[str, float]] = {}
    for position, (name, builder) in enumerate(builders.items()):
        scores[name] = {}
        for learning_rate in learning_rates:
            accuracy = train_proxy(
                builder,
                norm_layer,
                data,
                steps=steps,
                batch_size=config.batch_size,
                learning_rate=learning_rate,
                seed=seed + position,
                validation="holdout",
            )
            scores[name][repr(learning_rate)] = accuracy
    return {"scores": scores, "seconds": time.time() - start}
