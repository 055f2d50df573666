"""Hyperspherical embeddings and cosine (normalized-softmax) classifiers, with training-free new classes.

Paper: Pereira, Joly, Valduriez, Porto, "Hyperspherical embedding for novel class
classification", arXiv 2102.03243 (on NormFace, Wang et al. 2017, arXiv 1704.06369).
Reference: R-S-P-MODELS/pyopenset (`ModuleNormalization`, `AddNewClass`).
"""

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import constraints, initializers, ops, regularizers

from keras_norms.arguments import (
    check_bool,
    check_choice,
    check_epsilon,
    check_int,
    check_number,
    check_positive,
    normalize_axis,
)
from keras_norms.layers.base import build_feature_axis
from keras_norms.ops import linear as linear_ops
from keras_norms.ops.dtypes import matmul, upcast
from keras_norms.ops.types import InitializerLike, RegularizerLike, Shape, Tensor

_WEIGHT_NORMS = ("reparam", "constraint")


@keras.saving.register_keras_serializable(package="keras_norms")
class L2Normalize(keras.layers.Layer):
    """Puts embeddings on a sphere of radius `|scale|`: `|s| * x / sqrt(max(sum(x**2), epsilon))`.

    The latent constraint of the paper, placed just before a `CosineClassifier(scale=None)`: the
    logits are then `s * cos(theta_j)`. Zero vectors stay zero (the clamp is on the squared norm,
    as Keras' and TensorFlow's `l2_normalize`). Computed in float32 (float64 for a float64 layer).

    Args:
        scale: The radius `|s|`, not 0 (default 10, the reference's default; NormFace's bound shows that
            many classes need `s` of 10 to 20 or more).
        trainable_scale: Learn `s` (the reference keeps it fixed).
        axis: The embedding axis (default -1).
        epsilon: Clamp of the squared norm (1e-12).
        **kwargs: Base layer keyword arguments.

    Example:

    >>> z = keras_norms.layers.L2Normalize(scale=16.0)(features)
    """

    def __init__(
        self,
        scale: float = 10.0,
        trainable_scale: bool = False,
        axis: int = -1,
        epsilon: float = 1e-12,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.scale = check_number("scale", scale)
        if self.scale == 0:
            raise ValueError(f"`scale` is the radius |s| of the sphere and must not be 0. Received: scale={scale!r}")
        self.trainable_scale = check_bool("trainable_scale", trainable_scale)
        self.axis = check_int("axis", axis)
        self.epsilon = check_epsilon("epsilon", epsilon)
        self.supports_masking = True
        self.autocast = False
        self.scale_weight = self.add_weight(
            name="scale",
            shape=(),
            initializer=initializers.Constant(self.scale),
            trainable=self.trainable_scale,
            autocast=False,
        )
        self.built = True

    def call(self, inputs: Tensor) -> Tensor:
        # Built at construction (a scalar weight), so the axis is checked against each input.
        axis = normalize_axis("axis", self.axis, len(inputs.shape))
        x = upcast(inputs, self.compute_dtype)
        y = ops.abs(ops.cast(self.scale_weight, x.dtype)) * linear_ops.l2_normalize(x, axis, self.epsilon)
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "scale": self.scale,
                "trainable_scale": self.trainable_scale,
                "axis": self.axis,
                "epsilon": self.epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_norms")
class CosineClassifier(keras.layers.Layer):
    """Logits `x . w_j / |w_j|` (or `s * cos(x, w_j)`): a normalized-softmax classification head.

    Two ways to keep the class vectors (the kernel's columns) on the unit sphere:

    - `weight_norm="reparam"` (default): the columns are normalized in every call, so logits are
      exactly `|x| cos(theta_j)` from the first step. The cleaner design.
    - `weight_norm="constraint"`: the reference's `MinMaxNorm(1, 1, axis=0)` kernel constraint, a
      projection after each optimizer step; before the first step and within a step the columns
      are not unit norm. Use it to reproduce the reference.

    With `scale=None` the input is used as it comes, as in the paper, where an `L2Normalize(s)`
    layer before the head sets the radius. With a number, the head normalizes the input itself
    and multiplies by `scale` (NormFace); `learnable_scale=True` trains it. No bias by default
    (the reference forces its bias to zero). Outputs are logits: pair with
    `SparseCategoricalCrossentropy(from_logits=True)`. `add_class_prototypes` adds classes
    without training.

    Args:
        num_classes: Number of classes (kernel columns).
        scale: None (input as is) or the logit scale `s`.
        learnable_scale: Train `s` (needs a number `scale`).
        weight_norm: `"reparam"` or `"constraint"`.
        use_bias: Add a bias.
        kernel_initializer, kernel_regularizer: For the `(dim, num_classes)` kernel.
        epsilon: Clamp of squared norms (1e-12).
        **kwargs: Base layer keyword arguments.

    Example:

    >>> embedding = keras_norms.layers.L2Normalize(scale=10.0)(features)
    >>> logits = keras_norms.layers.CosineClassifier(10)(embedding)
    """

    def __init__(
        self,
        num_classes: int,
        scale: float | None = None,
        learnable_scale: bool = False,
        weight_norm: str = "reparam",
        use_bias: bool = False,
        kernel_initializer: InitializerLike = "glorot_uniform",
        kernel_regularizer: RegularizerLike = None,
        epsilon: float = 1e-12,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.scale = None if scale is None else check_positive("scale", scale)
        self.learnable_scale = check_bool("learnable_scale", learnable_scale)
        if self.learnable_scale and self.scale is None:
            raise ValueError("`learnable_scale=True` needs a number `scale`. Received: scale=None")
        self.weight_norm = check_choice("weight_norm", weight_norm, _WEIGHT_NORMS)
        self.use_bias = check_bool("use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.epsilon = check_epsilon("epsilon", epsilon)
        self.supports_masking = True
        self.autocast = False

    def build(self, input_shape: Shape) -> None:
        dim = build_feature_axis(self, input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(dim, self.num_classes),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=constraints.MinMaxNorm(1.0, 1.0, axis=0) if self.weight_norm == "constraint" else None,
            autocast=False,
        )
        self.bias: keras.Variable | None = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.num_classes,), initializer="zeros", autocast=False)
        self.scale_weight: keras.Variable | None = None
        if self.scale is not None:
            self.scale_weight = self.add_weight(
                name="scale",
                shape=(),
                initializer=initializers.Constant(self.scale),
                trainable=self.learnable_scale,
                autocast=False,
            )

    def class_vectors(self, dtype: str | None = None) -> Tensor:
        """The unit class vectors (kernel columns) the logits use, `(dim, num_classes)`, in `dtype`
        (default: the kernel's)."""
        kernel = ops.cast(self.kernel, dtype or self.kernel.dtype)
        if self.weight_norm == "reparam":
            return linear_ops.l2_normalize(kernel, 0, self.epsilon)
        return kernel

    def call(self, inputs: Tensor) -> Tensor:
        x = upcast(inputs, self.compute_dtype)
        if self.scale is not None:
            x = ops.cast(self.scale_weight, x.dtype) * linear_ops.l2_normalize(x, -1, self.epsilon)
        logits = matmul(x, self.class_vectors(x.dtype))
        if self.use_bias:
            logits = logits + ops.cast(self.bias, x.dtype)
        return ops.cast(logits, self.compute_dtype)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-1], self.num_classes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "scale": self.scale,
                "learnable_scale": self.learnable_scale,
                "weight_norm": self.weight_norm,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "epsilon": self.epsilon,
            }
        )
        return config


def add_class_prototypes(head: CosineClassifier, embeddings_by_class: Sequence[Tensor]) -> CosineClassifier:
    """A copy of a built `CosineClassifier` with one new class per array of embeddings, untrained.

    Each new class vector is the L2-normalized mean of its samples' embeddings, taken at the
    head's input: the output of the `L2Normalize` layer, as the reference's `AddNewClass` does
    (`layers[-2]`). Existing classes keep their vectors (normalized, as the logits see them);
    new biases are zero. To build a head of new classes only (the paper's disjoint scenario),
    call it on a head with the wanted settings and slice, or build one with
    `CosineClassifier(k)` and set its kernel to the prototypes.

    Args:
        head: A built `CosineClassifier`.
        embeddings_by_class: A list with one `(samples, dim)` array per new class.

    Returns:
        A new, built `CosineClassifier` with `head.num_classes + len(embeddings_by_class)` classes.

    Example:

    >>> embed = keras.Model(model.input, model.layers[-2].output)
    >>> new_head = keras_norms.layers.add_class_prototypes(model.layers[-1], [embed(x_new)])
    >>> model = keras.Model(model.input, new_head(embed.output))
    """
    if not isinstance(head, CosineClassifier) or not head.built:
        raise TypeError(f"`head` must be a built CosineClassifier. Received: {head!r}")
    if not embeddings_by_class:
        raise ValueError("`embeddings_by_class` must hold at least one array of embeddings.")
    dim = head.kernel.shape[0]
    prototypes = []
    for index, embeddings in enumerate(embeddings_by_class):
        embeddings = np.asarray(ops.convert_to_numpy(embeddings), dtype=np.float64)
        if embeddings.ndim != 2 or embeddings.shape[1] != dim or embeddings.shape[0] == 0:
            raise ValueError(
                f"`embeddings_by_class[{index}]` must be (samples, {dim}). Received shape {embeddings.shape}"
            )
        mean = embeddings.mean(axis=0)
        prototypes.append(mean / np.sqrt(max(np.sum(mean**2), head.epsilon)))
    config = head.get_config()
    config["num_classes"] = head.num_classes + len(prototypes)
    config["name"] = head.name
    new_head = CosineClassifier.from_config(config)
    new_head.build((None, dim))
    old_vectors = ops.convert_to_numpy(head.class_vectors())
    new_head.kernel.assign(np.concatenate([old_vectors, np.stack(prototypes, axis=1)], axis=1))
    if head.bias is not None:  # built with use_bias=True
        bias = ops.convert_to_numpy(head.bias.value)
        new_head.bias.assign(np.concatenate([bias, np.zeros(len(prototypes), bias.dtype)]))
    if head.scale_weight is not None:
        new_head.scale_weight.assign(head.scale_weight.value)
    return new_head
