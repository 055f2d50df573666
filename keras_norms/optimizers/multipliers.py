"""Per-variable learning rates for any Keras optimizer: `LearningRateMultipliers`.

Keras optimizers take one learning rate for every variable. muP (`keras_norms.parametrization`)
needs one per weight: Adam's step on a hidden matrix shrinks like `1 / width`, SGD's on a vector
grows like `width`. This wrapper gives each variable `learning_rate * multiplier[variable.path]`
inside the wrapped optimizer's own update, so that its state, schedule, clipping, EMA, gradient
accumulation and decoupled weight decay (applied with the global rate, as torch's AdamW applies
`lr * weight_decay` when muP rescales both) stay exactly as the wrapped optimizer does them.
"""

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras

from keras_norms.keras_internals import wrap_update_step


def _check_multipliers(multipliers: object) -> dict[str, float]:
    if not isinstance(multipliers, Mapping):
        raise TypeError(
            "`multipliers` must be a dict {variable.path: multiplier}. Received: "
            f"multipliers={multipliers!r} of type {type(multipliers).__name__}"
        )
    checked = {}
    for path, value in multipliers.items():
        if not isinstance(path, str):
            raise TypeError(f"`multipliers` keys must be variable paths (str). Received the key {path!r}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"`multipliers[{path!r}]` must be a finite number > 0. Received: {value!r}")
        checked[path] = float(value)
    return checked


@keras.saving.register_keras_serializable(package="keras_norms")
class LearningRateMultipliers(keras.optimizers.Optimizer):
    """Wraps an optimizer so that each variable trains at `learning_rate * multipliers[path]`.

    The step of variable `v` is the wrapped optimizer's step computed with the learning rate
    `multipliers.get(v.path, 1.0) * learning_rate`, for any optimizer whose update takes the
    learning rate as an argument (all of Keras', and `AdamP`/`SGDP`). For Adam, SGD and every
    optimizer whose step is linear in the learning rate this is exactly a per-variable learning
    rate. Decoupled weight decay (`weight_decay=` of Keras' optimizers) keeps the global rate;
    `AdamP`/`SGDP` decay inside their update, so there it is multiplied too.

    Like `keras.optimizers.LossScaleOptimizer`, the wrapper owns no state of its own: the
    learning rate, iterations and slots are the wrapped optimizer's. It works under `model.fit`
    with `jit_compile` on every backend, inside a `LossScaleOptimizer` (mixed precision), and
    saves and loads with the model.

    Args:
        optimizer: The `keras.optimizers.Optimizer` to wrap.
        multipliers: `{variable.path: multiplier}`, each multiplier a number > 0; variables not
            named keep the learning rate. Every path must be one of the variables the optimizer
            is built with, or `build` raises.
        name: Optional name.
        variable_multipliers: One multiplier per trainable variable, in the order the optimizer
            is built with; overrides `multipliers`. What a saved optimizer stores (a variable's
            path depends on the name scope it was built in, and changes on loading).

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    >>> slow = {model.layers[0].kernel.path: 0.1}
    >>> optimizer = keras_norms.optimizers.LearningRateMultipliers(keras.optimizers.Adam(1e-3), slow)
    >>> model.compile(optimizer=optimizer, loss="mse")
    """

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        multipliers: Mapping[str, float],
        name: str | None = None,
        variable_multipliers: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise ValueError(
                f"LearningRateMultipliers takes no optimizer arguments ({', '.join(kwargs)}): set them on the wrapped "
                "optimizer."
            )
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                "`optimizer` must be a keras.optimizers.Optimizer. Received: "
                f"optimizer={optimizer!r} of type {type(optimizer).__name__}"
            )
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            raise TypeError(
                "`optimizer` must not be a LossScaleOptimizer: wrap the plain optimizer, and let "
                "`model.compile` (or you) put the LossScaleOptimizer outside."
            )
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = optimizer
        self.multipliers = _check_multipliers(multipliers)
        # Resolved per variable at build, and saved that way: a variable's path depends on the name
        # scope it was built in, and a loaded model's differ ("dense/kernel" for "sequential/dense/kernel").
        self._variable_multipliers: list[float] | None = None
        if variable_multipliers is not None:
            self._variable_multipliers = list(
                _check_multipliers({str(i): m for i, m in enumerate(variable_multipliers)}).values()
            )
        wrap_update_step(optimizer, self._with_multipliers)

    def _with_multipliers(self, update_step: Callable) -> Callable:
        def multiplied_update_step(grads, variables, learning_rate):
            # One call per distinct multiplier keeps torch's fused (foreach) updates fused.
            groups: dict[float, tuple[list, list]] = {}
            for grad, variable in zip(grads, variables):
                multiplier = self._variable_multipliers[self.inner_optimizer._get_variable_index(variable)]  # type: ignore[index]
                group = groups.setdefault(multiplier, ([], []))
                group[0].append(grad)
                group[1].append(variable)
            for multiplier, (group_grads, group_variables) in groups.items():
                rate = learning_rate if multiplier == 1.0 else learning_rate * multiplier
                update_step(group_grads, group_variables, rate)

        return multiplied_update_step

    def build(self, var_list: list[keras.Variable]) -> None:
        if self._variable_multipliers is None:
            paths = [variable.path for variable in var_list]
            unknown = sorted(set(self.multipliers) - set(paths))
            if unknown:
                shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
                raise ValueError(
                    f"`multipliers` names variables the optimizer is not trained on: {shown}. Its keys must be the "
                    "`variable.path` of trainable variables of the model being compiled (was it computed for "
                    "another model, or were layers frozen since?)."
                )
            self._variable_multipliers = [self.multipliers.get(path, 1.0) for path in paths]
        elif len(self._variable_multipliers) != len(var_list):
            raise ValueError(
                f"This optimizer was saved for {len(self._variable_multipliers)} trainable variables; the model "
                f"has {len(var_list)}."
            )
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self) -> list[keras.Variable]:
        return self._variables + self.inner_optimizer.variables

    def apply(self, grads: list, trainable_variables: list | None = None) -> None:
        if not self.built:  # type: ignore[has-type]
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)  # type: ignore[arg-type]
            self.built = True
        self.inner_optimizer.apply(grads, trainable_variables)

    def stateless_apply(self, optimizer_variables: list, grads: list, trainable_variables: list) -> tuple[list, list]:
        """The wrapped optimizer's `stateless_apply`, with the multipliers (JAX's trainer calls this)."""
        own = len(self._variables)
        new_trainable, new_inner = self.inner_optimizer.stateless_apply(
            optimizer_variables[own:], grads, trainable_variables
        )
        # LossScaleOptimizer passes our variables themselves (read through its StatelessScope): return values.
        unchanged = [keras.ops.convert_to_tensor(value) for value in optimizer_variables[:own]]
        return new_trainable, unchanged + list(new_inner)

    @property
    def learning_rate(self) -> Any:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self) -> keras.Variable:
        return self.inner_optimizer.iterations

    def scale_loss(self, loss: Any) -> Any:
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list: list[keras.Variable]) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "multipliers": dict(self.multipliers),
            "variable_multipliers": self._variable_multipliers,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> "LearningRateMultipliers":
        config = dict(config)
        optimizer = keras.saving.deserialize_keras_object(config.pop("optimizer"), custom_objects=custom_objects)
        return cls(optimizer, **config)
