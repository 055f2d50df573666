"""Type aliases of keras-norms' signatures (annotations only: nothing here is checked at run time)."""

from collections.abc import Sequence
from typing import Any, TypeAlias

import keras

# Keras has no tensor type common to its backends: a tensor is a `tf.Tensor`, a `jax.Array`, a
# `torch.Tensor`, a `keras.KerasTensor` while a functional model is traced (and, where the
# functions accept them, a NumPy array or a `keras.Variable`). So a tensor is typed `Any`.
Tensor: TypeAlias = Any

# An input shape as Keras passes it to `build` and `compute_output_shape`: None for an unknown size.
Shape: TypeAlias = Sequence[int | None]

# Keras-style weight arguments: what `keras.initializers.get` (`regularizers.get`,
# `constraints.get`) accepts: a name, a serialized config, an instance, or None.
InitializerLike: TypeAlias = str | dict[str, Any] | keras.initializers.Initializer | None
RegularizerLike: TypeAlias = str | dict[str, Any] | keras.regularizers.Regularizer | None
ConstraintLike: TypeAlias = str | dict[str, Any] | keras.constraints.Constraint | None
