"""muP, the Maximal Update Parametrization, for Keras: base shapes, the readout, the optimizers.

Paper: Yang & Hu, "Feature Learning in Infinite-Width Neural Networks" (Tensor Programs IV),
ICML 2021, arXiv 2011.14522; and Yang et al., "Tensor Programs V: Tuning Large Neural Networks
via Zero-Shot Hyperparameter Transfer", arXiv 2203.03466. Reference: Microsoft's `mup` package
1.0.0 (torch), whose rules this module follows and is tested against.

muP is written relative to a *base* model: at base width muP and the standard parametrization
coincide, and as width grows each weight's initialization, forward multiplier and learning rate
scale as follows (`m` = width / base width of the dimensions that grow):

| weight | its growing dims | init std | forward | Adam LR | SGD LR |
|---|---|---|---|---|---|
| input-like (embedding, first kernel), biases, gains | fan-out only (vector-like) | const | 1 | 1 | m |
| hidden kernels | fan-in and fan-out (matrix-like) | ~ 1/sqrt(fan-in) | 1 | 1/m_in | m_out/m_in |
| readout (`MuReadout` kernel) | fan-in only | const | `output_mult / m` | 1 | m |
| attention logits (`MuMultiHeadAttention`) | | | `1 / head_dim`, not `1 / sqrt(head_dim)` | | |
"""

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

import keras
import numpy as np

from keras_norms.arguments import check_bool, check_choice, check_number
from keras_norms.keras_internals import nested_layers, own_trainable_variables, set_attention_logit_scale
from keras_norms.ops.types import Tensor
from keras_norms.optimizers import SGDP, AdamP, LearningRateMultipliers


@dataclasses.dataclass(frozen=True)
class WidthShape:
    """How one trainable variable grows with width: `mup`'s `InfShape`, in Keras' kernel layout.

    Attributes:
        path: The variable's `path`.
        shape: Its shape in the model.
        base_shape: Its shape in the base model.
        fan_in_axes: The axes a unit sums over (Dense `(in, out)`: axis 0; ConvND: all but the last).
        infinite_axes: The axes that grow with width (differ between base and delta, or base and
            model when no delta is given).
        fan_in_mult: `fan_in / base_fan_in` over the growing fan-in axes (1 if none grows).
        fan_out_mult: The same for the fan-out axes.
        kind: `"fixed"` (nothing grows), `"vector"` (one side grows: embeddings, input kernels,
            biases, gains, the `MuReadout` kernel) or `"matrix"` (both sides grow: hidden kernels).
        readout: Whether it is a `MuReadout` kernel (fan-in grows, fan-out fixed).
    """

    path: str
    shape: tuple[int, ...]
    base_shape: tuple[int, ...]
    fan_in_axes: tuple[int, ...]
    infinite_axes: tuple[int, ...]
    fan_in_mult: float
    fan_out_mult: float
    kind: str
    readout: bool = False

    @property
    def width_mult(self) -> float:
        """`mup`'s `width_mult()`: the fan-in multiplier of a matrix, the growing side's of a vector."""
        if self.kind == "matrix" or self.readout:
            return self.fan_in_mult
        return self.fan_out_mult if self.kind == "vector" else 1.0


@keras.saving.register_keras_serializable(package="keras_norms")
class MuReadout(keras.layers.Dense):
    """The muP output layer: a Dense layer that multiplies its input by `output_mult / width_mult`.

    `y = (output_mult / width_mult) * x @ kernel + bias`, `width_mult` = this layer's fan-in over
    the base model's (`set_base_shapes` sets it; 1.0 until then). `set_base_shapes` also rescales
    the kernel and bias to the base model's initial scale, so the logits keep their size as the
    width grows, and the readout trains at the base learning rate under Adam. This is `mup`'s
    `MuReadout` (arXiv 2203.03466, Table 3's alternative form), also in its defaults.

    Args:
        units: Output size (e.g. the vocabulary or the classes).
        output_mult: The constant multiplier on the readout's input (a tunable hyperparameter; `mup`'s
            `output_mult`, default 1.0).
        width_mult: Fan-in over the base fan-in. Leave it to `set_base_shapes`.
        zero_init: Start kernel and bias at zero, as the muP papers recommend for transfer
            (`mup`'s `readout_zero_init`).
        **kwargs: `keras.layers.Dense` arguments (`use_bias`, `kernel_initializer`, ...).

    Example:

    >>> head = keras_norms.parametrization.MuReadout(10, zero_init=True)
    >>> head(np.ones((2, 64), "float32")).shape
    (2, 10)
    """

    def __init__(
        self, units: int, output_mult: float = 1.0, width_mult: float = 1.0, zero_init: bool = False, **kwargs: Any
    ) -> None:
        self.zero_init = check_bool("zero_init", zero_init)
        if self.zero_init:
            for argument in ("kernel_initializer", "bias_initializer"):
                if kwargs.get(argument, "zeros") not in ("zeros", None):
                    raise ValueError(f"`zero_init=True` sets `{argument}`; pass one or the other.")
                kwargs[argument] = "zeros"
        super().__init__(units, **kwargs)
        self.output_mult = check_number("output_mult", output_mult)
        self.width_mult = check_number("width_mult", width_mult, 0.0, exclusive_minimum=True)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        return super().call(inputs * (self.output_mult / self.width_mult), training=training)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"output_mult": self.output_mult, "width_mult": self.width_mult, "zero_init": self.zero_init})
        if self.zero_init:
            del config["kernel_initializer"], config["bias_initializer"]
        return config


@keras.saving.register_keras_serializable(package="keras_norms")
class MuMultiHeadAttention(keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` with muP's attention scale: logits `q.k * attention_mult / key_dim`.

    Under muP the query and key grow correlated with width, so their dot product grows like
    `key_dim`, not `sqrt(key_dim)` (arXiv 2203.03466, section 4 and `mup`'s README); the standard
    `1 / sqrt(key_dim)` would let attention logits blow up. With `attention_mult = sqrt(base
    key_dim)` the two agree at the base width (`mup` writes `8 / d` for `d = 64`). To change the
    attention of a model built from other layers (keras-hub's `TransformerEncoder` and
    `TransformerDecoder` use `MultiHeadAttention` subclasses), see `set_attention_scale`.

    Args:
        num_heads: Number of attention heads.
        key_dim: Size of each head for query and key.
        attention_mult: The constant in `attention_mult / key_dim` (default 1.0).
        **kwargs: `keras.layers.MultiHeadAttention` arguments.

    Example:

    >>> attention = keras_norms.parametrization.MuMultiHeadAttention(num_heads=2, key_dim=8)
    >>> x = np.ones((1, 3, 16), "float32")
    >>> attention(x, x).shape
    (1, 3, 16)
    """

    def __init__(self, num_heads: int, key_dim: int, attention_mult: float = 1.0, **kwargs: Any) -> None:
        super().__init__(num_heads, key_dim, **kwargs)
        self.attention_mult = check_number("attention_mult", attention_mult, 0.0, exclusive_minimum=True)
        set_attention_logit_scale(self, self.attention_mult / key_dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "attention_mult": self.attention_mult}


def set_attention_scale(model: keras.layers.Layer, attention_mult: float = 1.0) -> int:
    """Sets every `MultiHeadAttention` in `model` (any depth) to muP's `attention_mult / key_dim` logit scale.

    For models whose attention layers you do not construct yourself, such as keras-hub's
    backbones. The scale is not part of those layers' configs: after loading a saved model, call
    this again (or build with `MuMultiHeadAttention`, which saves it). Returns how many layers
    were changed.
    """
    attention_mult = check_number("attention_mult", attention_mult, 0.0, exclusive_minimum=True)
    layers = [layer for layer in nested_layers(model) if isinstance(layer, keras.layers.MultiHeadAttention)]
    for layer in layers:
        set_attention_logit_scale(layer, attention_mult / layer.key_dim)
    return len(layers)


def _fan_in_axes(layer: keras.layers.Layer, variable: keras.Variable) -> tuple[int, ...]:
    rank = len(variable.shape)
    if rank < 2 or variable is getattr(layer, "bias", None):
        return ()  # biases and gains (EinsumDense's can be 2-D) have output axes only
    if isinstance(layer, keras.layers.EinsumDense) and variable is layer.kernel:
        inputs, output = layer.equation.split("->")
        return tuple(i for i, letter in enumerate(inputs.split(",")[1]) if letter not in output)
    depthwise = isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D))
    if variable.name == "depthwise_kernel" or (depthwise and variable is layer.kernel):
        # (*k, channels, multiplier): one filter per channel, so the channels are output axes
        return tuple(range(rank - 2))
    if isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)):
        return tuple(range(rank - 2)) + (rank - 1,)  # (*k, out, in)
    return tuple(range(rank - 1))  # Dense (in, out), ConvND (*k, in, out), Embedding (vocab, d)


def _trainable_variables_by_layer(model: keras.layers.Layer) -> list[tuple[keras.layers.Layer, keras.Variable]]:
    owners: dict[int, keras.layers.Layer] = {}
    for layer in [model, *nested_layers(model)]:
        for variable in own_trainable_variables(layer):
            owners.setdefault(id(variable), layer)
    pairs = []
    for variable in model.trainable_variables:
        if id(variable) not in owners:
            raise ValueError(f"Cannot tell which layer owns the variable {variable.path}.")
        pairs.append((owners[id(variable)], variable))
    return pairs


def _shapes(model: object, argument: str) -> list[tuple[int, ...]]:
    if isinstance(model, keras.layers.Layer):
        if not model.built:
            raise ValueError(f"`{argument}` must be a built model (call it on data or build it first).")
        return [tuple(variable.shape) for variable in model.trainable_variables]
    if isinstance(model, Iterable) and not isinstance(model, (str, Mapping)):
        return [tuple(int(d) for d in shape) for shape in model]
    raise TypeError(
        f"`{argument}` must be a built Keras model (or a list of its trainable variables' shapes). "
        f"Received: {argument}={model!r}"
    )


def _mult(shape, base_shape, axes) -> float:
    return float(np.prod([shape[axis] / base_shape[axis] for axis in axes]))


def infer_width_shapes(
    model: keras.Model, base: keras.Model, delta: keras.Model | None = None
) -> dict[str, WidthShape]:
    """`{variable.path: WidthShape}` for `model`'s trainable variables, from a base (and delta) model.

    The models must have the same architecture (the same trainable variables, in the same order,
    with the same ranks), at different widths. A dimension grows with width if it differs
    between `base` and `delta` (or, without `delta`, between `base` and `model`): pass a `delta`
    when `model` is the base itself, or when a dimension (say, the number of heads) differs
    between `base` and `model` but should not count as width. This is `mup.set_base_shapes`'
    inference, without modifying anything.

    Raises:
        ValueError: If the architectures differ, if a fixed dimension differs between `base` and
            `model`, or if a plain layer maps a growing dimension to a fixed one (an output layer:
            under muP it must be a `MuReadout`).
    """
    pairs = _trainable_variables_by_layer(model)
    base_shapes = _shapes(base, "base")
    delta_shapes = base_shapes if delta is None else _shapes(delta, "delta")
    model_shapes = [tuple(variable.shape) for _, variable in pairs]
    for name, shapes in (("base", base_shapes), ("delta", delta_shapes)):
        if len(shapes) != len(model_shapes) or any(len(a) != len(b) for a, b in zip(shapes, model_shapes)):
            raise ValueError(
                f"`{name}` must have the architecture of `model`: the same trainable variables with the same ranks. "
                f"model: {model_shapes}; {name}: {shapes}"
            )
    width_shapes = {}
    for (layer, variable), shape, base_shape, delta_shape in zip(pairs, model_shapes, base_shapes, delta_shapes):
        reference = shape if delta is None else delta_shape
        infinite = tuple(axis for axis in range(len(shape)) if base_shape[axis] != reference[axis])
        fixed_but_different = [
            axis for axis in range(len(shape)) if axis not in infinite and shape[axis] != base_shape[axis]
        ]
        if fixed_but_different:
            raise ValueError(
                f"{variable.path} has shape {shape} but {base_shape} in `base`, and `delta` says axes "
                f"{fixed_but_different} do not grow with width. Give a `delta` that differs from `base` in every "
                "width dimension."
            )
        fan_in_axes = _fan_in_axes(layer, variable)
        fan_out_axes = tuple(axis for axis in range(len(shape)) if axis not in fan_in_axes)
        grows_in = any(axis in infinite for axis in fan_in_axes)
        grows_out = any(axis in infinite for axis in fan_out_axes)
        readout = isinstance(layer, MuReadout) and variable is layer.kernel and grows_in and not grows_out
        if grows_in and not grows_out and not readout:
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) maps a dimension that grows with width to a fixed "
                f"one ({variable.path}: shape {shape}, base {base_shape}): it is an output layer, and under muP it "
                "must be a keras_norms.parametrization.MuReadout."
            )
        kind = "matrix" if grows_in and grows_out else "vector" if grows_in or grows_out else "fixed"
        width_shapes[variable.path] = WidthShape(
            path=variable.path,
            shape=shape,
            base_shape=base_shape,
            fan_in_axes=fan_in_axes,
            infinite_axes=infinite,
            fan_in_mult=_mult(shape, base_shape, [a for a in fan_in_axes if a in infinite]),
            fan_out_mult=_mult(shape, base_shape, [a for a in fan_out_axes if a in infinite]),
            kind=kind,
            readout=readout,
        )
    return width_shapes


def _fans(initializer, shape, fan_in_axes):
    input_axes = getattr(initializer, "input_axes", None)
    output_axes = getattr(initializer, "output_axes", None)
    if fan_in_axes is not None and (input_axes is None or output_axes is None):
        # EinsumDense builds its kernel from a copy of `kernel_initializer` told the equation's
        # input and output axes; the attribute keeps the initializer without them.
        input_axes = fan_in_axes
        output_axes = [axis for axis in range(len(shape)) if axis not in fan_in_axes]
    if input_axes is not None and output_axes is not None:
        return float(np.prod([shape[a] for a in input_axes])), float(np.prod([shape[a] for a in output_axes]))
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive_field = float(np.prod(shape[:-2]))
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _initial_variance(initializer: object, shape: tuple[int, ...], fan_in_axes=None) -> float | None:
    """The variance `initializer` gives a weight of `shape` up to a constant; None: not random (leave it)."""
    if isinstance(initializer, (keras.initializers.Zeros, keras.initializers.Ones, keras.initializers.Constant)):
        return None
    if isinstance(initializer, keras.initializers.VarianceScaling):
        fan_in, fan_out = _fans(initializer, shape, fan_in_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[initializer.mode]
        return initializer.scale / max(1.0, fan)
    if isinstance(initializer, (keras.initializers.RandomNormal, keras.initializers.TruncatedNormal)):
        return initializer.stddev**2
    if isinstance(initializer, keras.initializers.RandomUniform):
        return (initializer.maxval - initializer.minval) ** 2 / 12
    if isinstance(initializer, keras.initializers.Orthogonal):
        rows, columns = float(np.prod(shape[:-1])), float(shape[-1])
        return initializer.gain**2 / max(rows, columns)
    raise TypeError(type(initializer).__name__)


def _initializer_of(layer: keras.layers.Layer, variable: keras.Variable) -> object:
    name = variable.name.split(":")[0]
    for attribute in (f"{name}_initializer", f"_{name}_initializer"):
        initializer = getattr(layer, attribute, None)
        if initializer is not None:
            return keras.initializers.get(initializer)
    return None


def _rescale(layer, variable, width_shape):
    """Multiplies `variable` so its initial scale is muP's: the base model's, over sqrt(fan-in mult) if hidden."""
    initializer = _initializer_of(layer, variable)
    if initializer is None:
        raise ValueError(
            f"Cannot tell how {variable.path} was initialized (layer {layer.name!r} has no "
            f"`{variable.name}_initializer`). Initialize it for muP yourself and pass `rescale_params=False`."
        )
    try:
        einsum_kernel = isinstance(layer, keras.layers.EinsumDense) and variable is layer.kernel
        fan_in_axes = width_shape.fan_in_axes if einsum_kernel else None
        variance = _initial_variance(initializer, width_shape.shape, fan_in_axes)
        base_variance = _initial_variance(initializer, width_shape.base_shape, fan_in_axes)
    except TypeError:
        raise ValueError(
            f"Cannot rescale {variable.path}: its initializer {type(initializer).__name__} has no known variance. "
            "Use a VarianceScaling (Glorot, He, LeCun), RandomNormal, TruncatedNormal, RandomUniform or Orthogonal "
            "initializer, or initialize it for muP yourself and pass `rescale_params=False`."
        ) from None
    if variance is None or base_variance is None:
        return
    target = base_variance / (width_shape.fan_in_mult if width_shape.kind == "matrix" else 1.0)
    factor = math.sqrt(target / variance)
    if factor != 1.0:
        # In numpy: Keras' 64-to-32 dtype rule would compute a float64 variable's product in float32.
        variable.assign(keras.ops.convert_to_numpy(variable.value) * factor)


def set_base_shapes(
    model: keras.Model, base: keras.Model, delta: keras.Model | None = None, rescale_params: bool = True
) -> dict[str, WidthShape]:
    """Puts a built `model` in muP relative to `base`: readout multipliers, initial scales; returns the shapes.

    `mup.set_base_shapes` for Keras. Infers which dimensions grow with width
    (`infer_width_shapes`), sets each `MuReadout`'s `width_mult`, and, with `rescale_params`,
    rescales every weight drawn from a random initializer to muP's initial scale: the variance the
    same initializer gives the base model's weight, divided by the fan-in multiplier for hidden
    (matrix-like) kernels. So a `glorot_uniform` input kernel keeps its base-width scale instead
    of shrinking, a hidden kernel keeps `~ 1/fan_in`, and the readout keeps its base scale (`mup`
    rescales the readout by `sqrt(width_mult)` for the same reason). Call it once, on a freshly
    built model, before training; pass the returned shapes to `mu_optimizer`.

    Args:
        model: The built model to train.
        base: A built model of the same architecture at the base width (where muP equals the
            standard parametrization; the width you tune at), or its trainable variables' shapes.
        delta: Optional model (or shapes) at another width, to say which dimensions are widths.
        rescale_params: Rescale the initial weights (default True; False for a loaded model).

    Returns:
        A dict from each trainable variable's path to its `WidthShape`.

    Example:

    >>> def mlp(width):
    ...     return keras.Sequential([keras.Input((8,)), keras.layers.Dense(width, activation="relu"),
    ...                              keras.layers.Dense(width, activation="relu"), MuReadout(3)])
    >>> model = mlp(256)
    >>> shapes = set_base_shapes(model, mlp(64))
    >>> optimizer = mu_optimizer(keras.optimizers.Adam(1e-3), shapes)
    """
    rescale_params = check_bool("rescale_params", rescale_params)
    width_shapes = infer_width_shapes(model, base, delta)
    for layer, variable in _trainable_variables_by_layer(model):
        width_shape = width_shapes[variable.path]
        if width_shape.readout:
            layer.width_mult = width_shape.fan_in_mult
        if rescale_params and width_shape.kind != "fixed":
            _rescale(layer, variable, width_shape)
    return width_shapes


def mup_multipliers(width_shapes: Mapping[str, WidthShape], rule: str) -> dict[str, float]:
    """muP's learning-rate multiplier of each variable: `mup`'s `MuAdam` (`"adam"`) or `MuSGD` (`"sgd"`) rule.

    `"adam"` (any optimizer that normalizes the gradient entrywise: Adam, AdamW, RMSprop, Adagrad,
    Lion, AdamP): `1 / width_mult` for matrix-like weights, 1 otherwise. `"sgd"` (SGD, SGDP):
    `width_mult` for vector-like weights, `fan_out_mult / fan_in_mult` for matrix-like ones.
    Multipliers equal to 1 are left out.
    """
    rule = check_choice("rule", rule, ("adam", "sgd"))
    multipliers = {}
    for path, shape in width_shapes.items():
        if shape.kind == "matrix":
            multiplier = 1 / shape.width_mult if rule == "adam" else shape.fan_out_mult / shape.fan_in_mult
        elif shape.kind == "vector" and rule == "sgd":
            multiplier = shape.width_mult
        else:
            multiplier = 1.0
        if multiplier != 1.0:
            multipliers[path] = multiplier
    return multipliers


_ADAM_LIKE = (
    keras.optimizers.Adam,
    keras.optimizers.AdamW,
    keras.optimizers.Adamax,
    keras.optimizers.Nadam,
    keras.optimizers.RMSprop,
    keras.optimizers.Adagrad,
    keras.optimizers.Adafactor,
    keras.optimizers.Lion,
    AdamP,
)
_SGD_LIKE = (keras.optimizers.SGD, SGDP)


def mu_optimizer(
    optimizer: keras.optimizers.Optimizer, width_shapes: Mapping[str, WidthShape], rule: str = "auto"
) -> LearningRateMultipliers:
    """`optimizer` with muP's per-variable learning rates: `mup`'s `MuAdam`, `MuAdamW`, `MuSGD`, for Keras.

    Args:
        optimizer: A Keras optimizer (Adam, AdamW, SGD, ..., or keras-norms' AdamP, SGDP).
        width_shapes: What `set_base_shapes` returned.
        rule: `"adam"`, `"sgd"` (see `mup_multipliers`) or `"auto"`: `"sgd"` for SGD and SGDP,
            `"adam"` for Keras' adaptive optimizers and AdamP; other optimizers must say which.

    Returns:
        A `keras_norms.optimizers.LearningRateMultipliers` to compile the model with.
    """
    if rule == "auto":
        if isinstance(optimizer, _SGD_LIKE):
            rule = "sgd"
        elif isinstance(optimizer, _ADAM_LIKE):
            rule = "adam"
        else:
            raise ValueError(
                f"`rule='auto'` does not know {type(optimizer).__name__}: pass rule='adam' for an optimizer that "
                "normalizes gradients entrywise, rule='sgd' for one whose step is proportional to the gradient."
            )
    return LearningRateMultipliers(optimizer, mup_multipliers(width_shapes, rule))
