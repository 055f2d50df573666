"""AdamP and SGDP: Adam and SGD that do not grow the norm of scale-invariant weights.

Paper: Heo, Chun, Oh, Han, Yun, Kim, Uh, Ha, "AdamP: Slowing Down the Slowdown for Momentum
Optimizers on Scale-invariant Weights", ICLR 2021, arXiv 2006.08217. Reference: clovaai/AdamP
(= PyPI `adamp` 0.3.0); timm's copies differ only in SGDP's momentum buffer (see `SGDP`).
"""

import numbers
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import keras
from keras import ops

from keras_norms.arguments import check_bool, check_epsilon, check_fraction, check_number
from keras_norms.keras_internals import nested_layers, own_trainable_variables
from keras_norms.ops.dtypes import statistics_dtype
from keras_norms.ops.projection import project_update
from keras_norms.ops.types import Tensor

# A learning rate as Keras optimizers take it: a number, a schedule, or a callable with no argument.
LearningRate: TypeAlias = float | keras.optimizers.schedules.LearningRateSchedule | Callable[[], float]
# `channel_axes`: None (`default_channel_axes`), `{variable.path: axes}`, or `variable -> axes or None`.
ChannelAxes: TypeAlias = dict[str, Sequence[int]] | Callable[[keras.Variable], Sequence[int] | None] | None

_DEPTHWISE_NAME = re.compile(r"depthwise")


def default_channel_axes(variable: keras.Variable) -> tuple[int, ...]:
    """Channel axes of a Keras weight by its name: the torch "output channel" axis in Keras layout.

    Embedding tables (`embeddings`) are per row: axis 0. Depthwise kernels (`depthwise_kernel`,
    or a path containing `depthwise`) `(*k, in, multiplier)` have a channel per (in, multiplier)
    pair: the last two axes. Everything else (Dense, ConvND, ConvNDTranspose kernels) uses the
    last axis. Layers whose weight names say nothing (EinsumDense, a renamed DepthwiseConv2D) are
    covered exactly by `channel_axes_for_model`.
    """
    rank = len(variable.shape)
    if variable.name.startswith("embeddings"):
        return (0,)
    if _DEPTHWISE_NAME.search(variable.path) and rank >= 3:
        return (rank - 2, rank - 1)
    return (rank - 1,)


def channel_axes_for_model(model: keras.Model) -> dict[str, tuple[int, ...]]:
    """`{variable.path: channel_axes}` for every kernel of `model`, from its layers' classes.

    Dense, ConvND and ConvNDTranspose: the last axis. Embedding: axis 0. DepthwiseConvND and the
    depthwise kernel of SeparableConvND: the last two axes (one channel per input channel and
    multiplier). EinsumDense (and so MultiHeadAttention): the kernel axes that appear in the
    output (for a query kernel `(d, heads, head_dim)`, axes 1 and 2). Pass the result as
    `AdamP(channel_axes=...)`.
    """
    axes: dict[str, tuple[int, ...]] = {}
    for layer in nested_layers(model):
        for variable in own_trainable_variables(layer):
            rank = len(variable.shape)
            if rank < 2:
                continue
            if isinstance(layer, keras.layers.Embedding):
                axes[variable.path] = (0,)
            elif isinstance(layer, keras.layers.EinsumDense) and variable is layer.kernel:
                inputs, output = layer.equation.split("->")
                kernel = inputs.split(",")[1]
                axes[variable.path] = tuple(i for i, c in enumerate(kernel) if c in output)
            elif isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)) or (
                variable.name == "depthwise_kernel"
            ):
                axes[variable.path] = (rank - 2, rank - 1)
            else:
                axes[variable.path] = (rank - 1,)
    return axes


class _ProjectedOptimizer(keras.optimizers.Optimizer):
    """What AdamP and SGDP share: channel axes, the projection, decay scaled by `wd_ratio`."""

    def __init__(
        self,
        learning_rate: LearningRate,
        epsilon: float,
        delta: float,
        wd_ratio: float,
        channel_axes: ChannelAxes,
        weight_decay: float | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(learning_rate, numbers.Real) or isinstance(learning_rate, str) or learning_rate is None:
            check_number("learning_rate", learning_rate, minimum=0.0)  # else a schedule, callable or variable
        if weight_decay is not None:
            weight_decay = check_number("weight_decay", weight_decay, minimum=0.0)
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kwargs)
        self.epsilon = check_epsilon("epsilon", epsilon)
        self.delta = check_number("delta", delta, minimum=0.0)
        self.wd_ratio = check_number("wd_ratio", wd_ratio, minimum=0.0)
        if not (channel_axes is None or isinstance(channel_axes, dict) or callable(channel_axes)):
            raise TypeError(
                "`channel_axes` must be None, a dict {variable.path: axes} or a callable "
                f"variable -> axes. Received: channel_axes={channel_axes!r}"
            )
        self.channel_axes = channel_axes

    def _resolve_channel_axes(self, variable):
        rank = len(variable.shape)
        axes = None
        if isinstance(self.channel_axes, dict):
            axes = self.channel_axes.get(variable.path)
        elif callable(self.channel_axes):
            axes = self.channel_axes(variable)
        if axes is None:
            axes = default_channel_axes(variable)
        axes = tuple(sorted({int(axis) % rank for axis in axes}))
        if not axes:
            raise ValueError(f"No channel axes for {variable.path} of shape {variable.shape}")
        return axes

    def build(self, var_list: list[keras.Variable]) -> None:
        if self.built:
            return
        super().build(var_list)
        self._variable_channel_axes = [self._resolve_channel_axes(v) if len(v.shape) > 1 else None for v in var_list]
        # [channel, layer]: how often each view fired; a diagnostic, read by projection_counts().
        self._projection_counts = [
            self.add_variable((2,), dtype="float32", name=f"projection_counts_{v.name}") if len(v.shape) > 1 else None
            for v in var_list
        ]

    def projection_counts(self) -> dict[str, dict[str, int]]:
        """`{variable.path: {"channel": n, "layer": n}}`: the steps in which each view fired."""
        counts = {}
        for variable, count in zip(self._trainable_variables, self._projection_counts):
            if count is not None:
                channel, layer = ops.convert_to_numpy(count.value).tolist()
                counts[variable.path] = {"channel": int(channel), "layer": int(layer)}
        return counts

    def _apply_weight_decay(self, variables):
        # Decay happens in update_step, scaled by wd_ratio when the projection fires.
        return

    def _computation(self, variable, gradient, learning_rate, slots):
        """The weight, gradient, learning rate and `slots` in the dtype the step is computed in.

        float32, or float64 for float64 weights: in float16 or bfloat16, `beta_2 = 0.999` rounds
        to 1 and the bias correction divides by zero. Slots keep the weight's dtype.
        """
        dtype = statistics_dtype(variable.dtype)
        cast = [ops.cast(t, dtype) for t in (variable, _dense(gradient), learning_rate, *slots)]
        return dtype, cast[0], cast[1], cast[2], cast[3:]

    def _projected_update(self, variable, weight, gradient, update, learning_rate, decay_scale):
        """Projects `update`; returns it and the factor the weight decays by (1 without decay)."""
        index = self._get_variable_index(variable)
        ratio = 1.0
        if len(variable.shape) > 1:
            update, channel_fired, layer_fired = project_update(
                weight,
                gradient,
                update,
                self._variable_channel_axes[index],
                self.delta,
                self.epsilon,
            )
            fired = ops.logical_or(channel_fired, layer_fired)
            ratio = ops.where(fired, _constant(self.wd_ratio, weight), _constant(1.0, weight))
            counts = self._projection_counts[index]
            self.assign_add(counts, ops.cast(ops.stack([channel_fired, layer_fired]), counts.dtype))
        keras_variable = self._trainable_variables[index]
        if self.weight_decay is not None and self._use_weight_decay(keras_variable):
            return update, 1.0 - learning_rate * self.weight_decay * ratio * decay_scale
        return update, 1.0

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        channel_axes = self.channel_axes
        if callable(channel_axes):
            channel_axes = keras.saving.serialize_keras_object(channel_axes)
        config.update(
            {
                "epsilon": self.epsilon,
                "delta": self.delta,
                "wd_ratio": self.wd_ratio,
                "channel_axes": channel_axes,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        channel_axes = config.get("channel_axes")
        if isinstance(channel_axes, dict) and "class_name" in channel_axes:
            config = dict(config)
            config["channel_axes"] = keras.saving.deserialize_keras_object(channel_axes)
        return super().from_config(config, custom_objects=custom_objects)


def _constant(value, like):
    """A hyperparameter as a tensor of `like`'s dtype: `ops.where` and `ops.power` would
    otherwise round a Python float through float32 before a float64 weight sees it."""
    return ops.convert_to_tensor(value, like.dtype)


def _dense(gradient):
    # Embedding gradients reach update_step as tf.IndexedSlices in model.fit on TensorFlow.
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return tf.convert_to_tensor(gradient)
    return gradient


@keras.saving.register_keras_serializable(package="keras_norms")
class AdamP(_ProjectedOptimizer):
    """Adam with the radial component of the update removed for scale-invariant weights.

    Per weight `p` with gradient `g` (step `t` from 1)::

        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g**2
        u = m / (sqrt(v) / sqrt(1 - b2**t) + eps)        # torch's eps placement, not Keras Adam's
        u = (b1 m + (1 - b1) g) / (...)                  # with nesterov=True
        if p has rank >= 2 and max |cos(g_row, p_row)| < delta / sqrt(row_length) (channel rows
        first, then the whole tensor): u -= p_unit * <p_unit, u>_row, and r = wd_ratio, else r = 1
        p = p * (1 - lr * weight_decay * r) - lr / (1 - b1**t) * u

    Decay is decoupled (AdamW-style) and applies to every variable not excluded with
    `exclude_from_weight_decay` (the reference decays biases too). The rule is branch-free
    (`ops.where`), so `jit_compile=True` works on every backend. Matches PyPI `adamp` 0.3.0.

    Args:
        learning_rate: Float or schedule (default 1e-3).
        beta_1, beta_2: Moment decay rates (0.9, 0.999).
        epsilon: Added to the denominator, and the projection's norm guard (1e-8).
        weight_decay: Decoupled decay rate, or None.
        delta: Cosine threshold of the projection (0.1).
        wd_ratio: Decay multiplier when the projection fires (0.1).
        nesterov: Nesterov momentum.
        channel_axes: None (by weight name: see `default_channel_axes`), a dict
            `{variable.path: axes}` (e.g. from `channel_axes_for_model(model)`), or a callable
            `variable -> axes` (None for the default).
        **kwargs: Base optimizer arguments (`clipnorm`, `use_ema`, `loss_scale_factor`, ...).

    Example:

    >>> optimizer = keras_norms.optimizers.AdamP(learning_rate=1e-3, weight_decay=1e-2)
    >>> model.compile(optimizer, loss)
    """

    def __init__(
        self,
        learning_rate: LearningRate = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float | None = None,
        delta: float = 0.1,
        wd_ratio: float = 0.1,
        nesterov: bool = False,
        channel_axes: ChannelAxes = None,
        name: str = "adamp",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            learning_rate,
            epsilon,
            delta,
            wd_ratio,
            channel_axes,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        # beta = 1 would divide by 1 - beta**t = 0 in the bias corrections.
        self.beta_1 = check_fraction("beta_1", beta_1, exclusive_maximum=True)
        self.beta_2 = check_fraction("beta_2", beta_2, exclusive_maximum=True)
        self.nesterov = check_bool("nesterov", nesterov)

    def build(self, var_list: list[keras.Variable]) -> None:
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])

    def update_step(self, gradient: Tensor, variable: keras.Variable, learning_rate: Tensor) -> None:
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index], self._velocities[index]
        dtype, weight, gradient, learning_rate, (old_momentum, old_velocity) = self._computation(
            variable, gradient, learning_rate, (momentum, velocity)
        )
        step = ops.cast(self.iterations + 1, dtype)
        new_momentum = self.beta_1 * old_momentum + (1.0 - self.beta_1) * gradient
        new_velocity = self.beta_2 * old_velocity + (1.0 - self.beta_2) * ops.square(gradient)
        self.assign(momentum, ops.cast(new_momentum, momentum.dtype))
        self.assign(velocity, ops.cast(new_velocity, velocity.dtype))
        bias_2 = 1.0 - ops.power(_constant(self.beta_2, weight), step)
        denominator = ops.sqrt(new_velocity) / ops.sqrt(bias_2) + self.epsilon
        if self.nesterov:
            update = (self.beta_1 * new_momentum + (1.0 - self.beta_1) * gradient) / denominator
        else:
            update = new_momentum / denominator
        step_size = learning_rate / (1.0 - ops.power(_constant(self.beta_1, weight), step))
        update, decay = self._projected_update(variable, weight, gradient, update, learning_rate, 1.0)
        self.assign(variable, ops.cast(weight * decay - step_size * update, variable.dtype))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "nesterov": self.nesterov})
        return config


@keras.saving.register_keras_serializable(package="keras_norms")
class SGDP(_ProjectedOptimizer):
    """SGD with the radial component of the update removed for scale-invariant weights.

    Per weight `p` with gradient `g`::

        buf = momentum * buf + (1 - dampening) * g     # buf starts at 0: dampening acts at step 1
        d = g + momentum * buf if nesterov else buf
        d, r = projection(p, g, d) as in AdamP (r = wd_ratio when it fires, else 1)
        p = p * (1 - lr * weight_decay * r / (1 - momentum)) - lr * d

    The momentum buffer: in the authors' code (PyPI `adamp`), without Nesterov, `d` *is* the
    buffer and the projection edits it in place, so the projected direction becomes the next
    step's buffer. timm's copy clones the buffer first. The two diverge once projections fire.
    `clovaai_buffer_alias=True` (default: the authors' code) reproduces the package;
    `False` reproduces timm. Nesterov runs are the same either way.

    Args:
        learning_rate: Float or schedule (required, as in the reference).
        momentum, dampening, nesterov: As in torch's SGD (momentum 0, dampening 0).
        weight_decay: Decay rate, or None.
        epsilon, delta, wd_ratio, channel_axes: As in `AdamP`.
        clovaai_buffer_alias: Write the projected direction back into the buffer (see above).
        **kwargs: Base optimizer arguments.

    Example:

    >>> optimizer = keras_norms.optimizers.SGDP(0.1, momentum=0.9, nesterov=True, weight_decay=1e-5)
    """

    def __init__(
        self,
        learning_rate: LearningRate,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float | None = None,
        epsilon: float = 1e-8,
        delta: float = 0.1,
        wd_ratio: float = 0.1,
        channel_axes: ChannelAxes = None,
        clovaai_buffer_alias: bool = True,
        name: str = "sgdp",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            learning_rate,
            epsilon,
            delta,
            wd_ratio,
            channel_axes,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        self.momentum = check_fraction("momentum", momentum, exclusive_maximum=True)
        self.dampening = check_fraction("dampening", dampening)
        self.nesterov = check_bool("nesterov", nesterov)
        self.clovaai_buffer_alias = check_bool("clovaai_buffer_alias", clovaai_buffer_alias)

    def build(self, var_list: list[keras.Variable]) -> None:
        if self.built:
            return
        super().build(var_list)
        self._buffers = self.add_optimizer_variables(var_list, "momentum_buffer")

    def update_step(self, gradient: Tensor, variable: keras.Variable, learning_rate: Tensor) -> None:
        buffer = self._buffers[self._get_variable_index(variable)]
        _, weight, gradient, learning_rate, (old_buffer,) = self._computation(
            variable, gradient, learning_rate, (buffer,)
        )
        new_buffer = self.momentum * old_buffer + (1.0 - self.dampening) * gradient
        direction = gradient + self.momentum * new_buffer if self.nesterov else new_buffer
        direction, decay = self._projected_update(
            variable, weight, gradient, direction, learning_rate, 1.0 / (1.0 - self.momentum)
        )
        aliased = self.clovaai_buffer_alias and not self.nesterov
        self.assign(buffer, ops.cast(direction if aliased else new_buffer, buffer.dtype))
        self.assign(variable, ops.cast(weight * decay - learning_rate * direction, variable.dtype))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "dampening": self.dampening,
                "nesterov": self.nesterov,
                "clovaai_buffer_alias": self.clovaai_buffer_alias,
            }
        )
        return config
