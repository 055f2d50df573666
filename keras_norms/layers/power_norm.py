"""PowerNormalization: batch normalization for Transformers, with its approximate backward pass.

Paper: Shen, Yao, Gholami, Mahoney, Keutzer, "PowerNorm: Rethinking Batch Normalization in
Transformers", ICML 2020, arXiv 2003.07845. Authors' code: `sIncerass/powernorm`,
`fairseq/modules/norms/mask_powernorm.py` (`MaskPowerNorm`), which this layer reproduces.
"""

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import keras
from keras import ops

from keras_norms import ops as norm_ops
from keras_norms.arguments import check_bool, check_fraction, check_int, check_mask
from keras_norms.layers.base import NormalizationBase
from keras_norms.ops import power_norm
from keras_norms.ops.statistics import mask_weights
from keras_norms.ops.types import Shape, Tensor


def _outside_torch_compile(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, kept out of `torch.compile` graphs on the torch backend.

    In a compiled graph AOTAutograd may recompute forward values in the backward pass from the
    layer's state variables *after* the forward has updated them in place, which corrupts the
    gradients (seen with torch 2.13). The training call therefore runs eagerly inside compiled
    models on torch; the rest of the model still compiles.
    """
    if keras.backend.backend() != "torch":
        return function
    import torch

    return torch.compiler.disable(function)


def _gradient_accumulation_steps_of_running_fit() -> int | None:
    """`gradient_accumulation_steps` of the optimizer of the `Model.train_step` calling this, or None.

    A layer never sees the optimizer. `fit` and `train_on_batch` call (or, under jit, trace)
    `Model.train_step` in Python on every backend, so the caller's frames reach the model and its
    optimizer (a `LossScaleOptimizer`'s inner one included). A custom training loop that calls
    `optimizer.apply` itself is not seen.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if frame.f_code.co_name == "train_step" and isinstance(owner, keras.Model):
            optimizer = getattr(owner, "optimizer", None)
            for candidate in (optimizer, getattr(optimizer, "inner_optimizer", None)):
                steps = getattr(candidate, "gradient_accumulation_steps", None)
                if steps:
                    return steps
            return None
        frame = frame.f_back
    return None


@keras.saving.register_keras_serializable(package="keras_norms")
class PowerNormalization(NormalizationBase):
    """Power normalization with the authors' approximate backward pass.

    Training step `t` (counted per layer, from 1), over the valid (unmasked) tokens::

        xs      = x / sqrt(mean_{group channels}(x**2) + 1e-5)        # GroupScaling, per token
        psi2    = mean_{valid tokens}(xs**2)                           # per channel
        z       = xs / sqrt(psi2 + eps)         if t <= warmup_steps
                  xs / sqrt(moving_quadratic_mean + eps)   otherwise
        y       = gamma * z + beta
        moving  <- cumulative mean of psi2      if t < warmup_steps, then always
        moving  <- alpha_fwd * moving + (1 - alpha_fwd) * psi2

    Backward (no gradient through any statistic), with `g = dL/dy * gamma` and
    `nu = (1 - alpha_bkw) * backward_statistic`:
    `dL/dxs = (g - nu * z) / sqrt(psi2 + eps)` and
    `backward_statistic <- backward_statistic + mean_{all tokens}((g - nu * z) * z)`.
    Inference: `y = gamma * GroupScaling(x) / sqrt(moving_quadratic_mean + eps) + beta`.

    This follows the authors' code, which differs from the paper's algorithm box in four places:

    1. GroupScaling: the input is first divided by the RMS of each of `groups` channel groups,
       per token, with its own epsilon 1e-5 (the paper's appendix; `groups` = attention heads in
       the authors' runs).
    2. Warmup: for the first `warmup_steps` training steps the layer normalizes with the batch
       statistic, not the moving one.
    3. During warmup the moving statistic gets a cumulative-average update *and* the exponential
       update on the same step.
    4. The backward pass divides by the batch statistic `psi2` even after warmup, where the
       forward divided by the moving one (the paper uses the moving one in both places).

    Padded tokens are left out of `psi2` only: `backward_statistic`, and the gradients of `gamma`
    and `beta`, average or sum over every position, as in the code.

    How it trains in an ordinary `model.fit`/`train_on_batch`, with any Keras optimizer: the
    approximate backward pass is built from stop-gradients plus a zero-valued auxiliary loss
    (`layer.losses`, which Keras adds to the training loss), so that plain autodiff yields it;
    and the backward statistic is written by the optimizer through Keras' variable
    `overwrite_with_gradient` mechanism: its gradient *is* its new value, applied before
    clipping, learning rates or weight decay touch the other gradients. Under loss scaling
    (`mixed_float16` compiles with a `LossScaleOptimizer`) every gradient is multiplied by the
    loss scale S, so the layer keeps `backward_statistic = S * ema_gz` together with
    `backward_loss_scale = S`, the scale of its last update, and divides one by the other; this
    stays right when S changes. Both are trainable weights (the mechanism requires it) and count
    in `trainable_weights`. A step the `LossScaleOptimizer` skips for overflow leaves them
    unchanged, while the moving statistic and the step counter, updated in the forward pass,
    advance.

    Limits: call each PowerNormalization once per training step (two calls would add two new
    values). Gradient accumulation is refused: with `gradient_accumulation_steps`, Keras would keep
    the element-wise *largest* of the micro-steps' new values instead of chaining them, so
    `fit`/`train_on_batch` raise a ValueError at the first training step (`exact_gradient=True`,
    which has no backward statistic, accumulates normally). A custom training loop must add
    `model.losses` to its loss, and must not accumulate this layer's gradients either (it cannot
    be detected there). On torch, the training call runs outside `torch.compile` graphs
    (see `_outside_torch_compile`).

    Args:
        axis: Integer, the features axis (default -1).
        epsilon: Small float added inside the square root (default 1e-5).
        alpha_fwd: Weight of the old value in the moving quadratic mean (default 0.9).
        alpha_bkw: The backward average's `alpha` (default 0.9): `nu = (1 - alpha_bkw) *
            backward_statistic`.
        warmup_steps: Training steps that normalize with batch statistics (default 10000, the
            authors' `MaskPowerNorm` default; their NMT runs use the learning-rate warmup).
        groups: GroupScaling groups (default 1); must divide the number of features.
        center: If True, add the offset `beta`.
        scale: If True, multiply by `gamma`.
        exact_gradient: If True, plain autodiff through the statistics instead of the
            approximate backward pass (no backward statistic), kept for comparison.
        synchronized: If True (default), every batch reduction (`psi2`, and the backward pass's
            means over positions) is over the global batch of a data-parallel step: an
            all-reduce of sums and counts under `tf.distribute` or an initialized
            `torch.distributed` process group; under `keras.distribution` on JAX it is global
            either way. See docs/distributed.md.
        beta_initializer, gamma_initializer: Initializers of `beta` (zeros) and `gamma` (ones).
        beta_regularizer, gamma_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint: Optional constraints.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(batch, time, features)` or `(batch, features)`.
        training: Python boolean: batch statistics and state updates when True.
        mask: Optional boolean `(batch, time)` mask, True for valid tokens.

    Example:

    >>> x = keras.random.normal((4, 10, 64))
    >>> norm = keras_norms.layers.PowerNormalization(groups=4, warmup_steps=100)
    >>> y = norm(x, training=True, mask=keras.ops.ones((4, 10), "bool"))
    """

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-5,
        alpha_fwd: float = 0.9,
        alpha_bkw: float = 0.9,
        warmup_steps: int = 10000,
        groups: int = 1,
        center: bool = True,
        scale: bool = True,
        exact_gradient: bool = False,
        synchronized: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(epsilon=epsilon, center=center, scale=scale, **kwargs)
        self.axis = check_int("axis", axis)
        self.alpha_fwd = check_fraction("alpha_fwd", alpha_fwd)
        self.alpha_bkw = check_fraction("alpha_bkw", alpha_bkw)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
        self.groups = check_int("groups", groups, minimum=1)
        self.exact_gradient = check_bool("exact_gradient", exact_gradient)
        self.synchronized = check_bool("synchronized", synchronized)
        # Created in build() (the backward ones unless `exact_gradient`).
        self.moving_quadratic_mean: keras.Variable | None = None
        self.backward_statistic: keras.Variable | None = None
        self.backward_loss_scale: keras.Variable | None = None
        self.step: keras.Variable | None = None

    def build(self, input_shape: Shape) -> None:
        rank = len(input_shape)
        if rank not in (2, 3):
            raise ValueError(
                "PowerNormalization expects (batch, time, features) or (batch, features) "
                f"inputs. Received: input_shape={tuple(input_shape)}"
            )
        channels = self._build_channel_axis(input_shape)
        if channels % self.groups:
            raise ValueError(
                f"`groups` must divide the number of features ({channels}). Received: groups={self.groups}"
            )
        self._reduce_axes = tuple(a for a in range(rank) if a != self._channel_axis)
        self._build_affine((channels,))
        self.moving_quadratic_mean = self.add_weight(
            name="moving_quadratic_mean",
            shape=(channels,),
            initializer="ones",
            trainable=False,
            autocast=False,
            aggregation="mean",  # replicas write the same (synchronized) update
        )
        if not self.exact_gradient:
            # Their "gradients" are their new values, written by the optimizer (see docstring).
            # Under tf.distribute, Keras writes each replica's own gradient (of its loss share,
            # 1 / replicas) before any reduction: "sum" adds them up to the one-device value.
            self.backward_statistic = self.add_weight(
                name="backward_statistic",
                shape=(channels,),
                initializer="zeros",
                trainable=True,
                autocast=False,
                overwrite_with_gradient=True,
                aggregation="sum",
            )
            self.backward_loss_scale = self.add_weight(
                name="backward_loss_scale",
                shape=(),
                initializer="ones",
                trainable=True,
                autocast=False,
                overwrite_with_gradient=True,
                aggregation="sum",
            )
        self.step = self.add_weight(
            name="step",
            shape=(),
            initializer="zeros",
            dtype="int32",
            trainable=False,
            aggregation="only_first_replica",
        )
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={self._channel_axis: channels})

    def call(self, inputs: Tensor, training: bool | None = None, mask: Tensor | None = None) -> Tensor:
        x = norm_ops.upcast(inputs, self.compute_dtype)
        rank = len(x.shape)
        if mask is not None:
            check_mask("PowerNormalization", mask, x.shape, (self._channel_axis,))
        xs = power_norm.group_scaling(x, self._channel_axis, self.groups)
        moving = self._parameter(self.moving_quadratic_mean, rank, x.dtype)
        if not (training and self.trainable):
            z = xs * ops.rsqrt(moving + self.epsilon)
            return ops.cast(self._affine(z), self.compute_dtype)

        return _outside_torch_compile(self._training_call)(xs, moving, mask)

    def _training_call(self, xs, moving, mask):
        # Called only once built, when these two exist.
        assert self.moving_quadratic_mean is not None and self.step is not None
        rank = len(xs.shape)
        if not self.exact_gradient:
            steps = _gradient_accumulation_steps_of_running_fit()
            if steps:
                raise ValueError(
                    f"PowerNormalization cannot train with gradient_accumulation_steps={steps}: "
                    "Keras keeps the element-wise largest of the micro-steps' backward statistics "
                    "instead of chaining them as the authors' code does, so the statistic would be "
                    "silently wrong. Train without gradient accumulation (a larger batch, or more "
                    "steps), or pass exact_gradient=True (plain autodiff, no backward statistic)."
                )
        if mask is not None:
            mask = mask_weights(mask, self._channel_axis, xs.dtype)
        quadratic_mean = norm_ops.masked_mean_square(xs, self._reduce_axes, mask, self.synchronized)
        step = ops.convert_to_tensor(self.step) + 1
        in_warmup = step <= self.warmup_steps
        if self.exact_gradient:
            normalizer = ops.where(in_warmup, quadratic_mean, moving)
            z = xs * ops.rsqrt(normalizer + self.epsilon)
        else:
            quadratic_mean = ops.stop_gradient(quadratic_mean)
            normalizer = ops.where(in_warmup, quadratic_mean, moving)
            z, auxiliary_loss = power_norm.power_normalization(
                xs,
                quadratic_mean,
                normalizer,
                self._parameter(self.backward_statistic, rank, xs.dtype),
                ops.cast(self.backward_loss_scale, xs.dtype),
                epsilon=self.epsilon,
                alpha_bkw=self.alpha_bkw,
                reduce_axes=self._reduce_axes,
                synchronized=self.synchronized,
            )
            self.add_loss(auxiliary_loss)
        # State last: on torch and tensorflow, tensors read from variables share their storage.
        new_moving = power_norm.updated_moving_quadratic_mean(
            ops.cast(self.moving_quadratic_mean, xs.dtype),
            ops.reshape(ops.stop_gradient(quadratic_mean), (-1,)),
            step,
            self.warmup_steps,
            self.alpha_fwd,
        )
        self.moving_quadratic_mean.assign(ops.cast(new_moving, self.moving_quadratic_mean.dtype))
        self.step.assign(step)
        return ops.cast(self._affine(z), self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "alpha_fwd": self.alpha_fwd,
                "alpha_bkw": self.alpha_bkw,
                "warmup_steps": self.warmup_steps,
                "groups": self.groups,
                "exact_gradient": self.exact_gradient,
                "synchronized": self.synchronized,
            }
        )
        return config
