"""The private Keras attributes keras-norms relies on, in one place, each for a want no public API meets.

Tested on Keras 3.15 (the lowest version `pyproject.toml` allows); each attribute is also in Keras
3.9's source. If a Keras release renames one of these, this module is the only place to change.

- Layer tracking: Keras has no public way to list the sub-layers nested at any depth inside a
  layer (`Model.layers` lists only the direct ones) or the variables a layer owns itself
  (`layer.weights` includes its sub-layers'); model surgery and AdamP's channel axes need both.
- Rewiring a sub-layer of a subclassed layer: assigning the attribute does not update the list
  Keras saves and trains from (`_layers`), and the tracker refuses changes after build.
- The functional graph: `Operation.input` / `.output` give only the tensors of a layer's first
  call, and nothing public names the layer that produced a tensor or the layers that read one.
- Per-variable learning rates (muP): a Keras optimizer takes one learning rate for all variables.
- muP's attention scale: `MultiHeadAttention` fixes its logit scale at `1 / sqrt(key_dim)`.
- Reparametrizations (WeightNormalization): nothing public lets a wrapper hand a layer a computed
  kernel for one call, or read a wrapped layer's variables in their own dtype under a mixed policy.
"""

import contextlib
from collections.abc import Callable, Iterator

import keras

from keras_norms.ops.types import Tensor

# Layer tracking (Keras 3.9 to 3.15: `Layer._flatten_layers`, `_trainable_variables`,
# `_non_trainable_variables`).


def nested_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Every sub-layer of `layer`, at any depth, in tracking order (`layer` itself excluded)."""
    return list(layer._flatten_layers(include_self=False, recursive=True))


def own_trainable_variables(layer: keras.layers.Layer) -> list[keras.Variable]:
    """The trainable variables `layer` creates itself, not those of its sub-layers."""
    return list(getattr(layer, "_trainable_variables", []))


def own_variables(layer: keras.layers.Layer) -> list[keras.Variable]:
    """All variables `layer` creates itself (trainable first), not those of its sub-layers."""
    return own_trainable_variables(layer) + list(getattr(layer, "_non_trainable_variables", []))


# Rewiring (Keras 3.9 to 3.15: `Layer._tracker`, `Layer._layers`).


@contextlib.contextmanager
def unlocked_tracking(layer: keras.layers.Layer) -> Iterator[None]:
    """Lets a built layer take a new sub-layer attribute (Keras locks tracking after build)."""
    tracker = getattr(layer, "_tracker", None)
    if tracker is not None:
        tracker.unlock()
    try:
        yield
    finally:
        if tracker is not None:
            tracker.lock()


def retrack_sublayer(container: keras.layers.Layer, old: keras.layers.Layer, new: keras.layers.Layer) -> None:
    """Puts `new` in place of `old` in the sub-layers Keras saves, trains and lists for `container`."""
    container._layers = [layer for layer in container._layers if layer is not old]
    if new not in container._layers:
        container._layers.append(new)


# The functional graph (Keras 3.9 to 3.15: `KerasTensor._keras_history`, `Operation._inbound_nodes`,
# `Operation._outbound_nodes`).


def producer(tensor: Tensor) -> keras.Operation:
    """The layer (operation) whose call returned the symbolic `tensor`."""
    return tensor._keras_history.operation


def first_call_inputs(layer: keras.Operation) -> list[Tensor]:
    """The symbolic input tensors of `layer`'s first call, flattened."""
    return list(layer._inbound_nodes[0].input_tensors)


def readers(layer: keras.Operation) -> list[keras.Operation]:
    """The layers (operations) that read an output of `layer`, once per call that reads it."""
    return [node.operation for node in getattr(layer, "_outbound_nodes", [])]


# Optimizers (Keras 3.15: `BaseOptimizer._backend_update_step`, the one call through which every
# backend's `apply` and `stateless_apply` reaches the per-variable updates, with the learning rate
# as an argument).


def wrap_update_step(optimizer: keras.optimizers.Optimizer, wrapper: Callable[[Callable], Callable]) -> None:
    """Routes `optimizer`'s per-variable updates through `wrapper(original_update_step)`.

    `update_step(grads, variables, learning_rate)` is what `apply` calls after loss unscaling,
    clipping and weight decay, and before EMA: the place a per-variable learning rate belongs.
    """
    original = optimizer._backend_update_step
    object.__setattr__(optimizer, "_backend_update_step", wrapper(original))


# Attention (Keras 3.15: `MultiHeadAttention._inverse_sqrt_key_dim`, the factor on the query that
# both the fused and the einsum path read).


def set_attention_logit_scale(layer: keras.layers.MultiHeadAttention, scale: float) -> None:
    """Makes `layer` multiply its query by `scale` (Keras: `1 / sqrt(key_dim)`)."""
    layer._inverse_sqrt_key_dim = float(scale)


# Reparametrization (Keras 3.9 to 3.15: a layer keeps its variables in instance attributes, `kernel`
# or `_kernel` behind a `kernel` property (Dense, EinsumDense, Conv2D in 3.15), and reads them there
# in `call`). A wrapper that computes the kernel from other variables (weight normalization) must run
# the wrapped layer's own math with that tensor in place of the kernel, so that gradients reach the
# variables it is computed from; Keras has no public way to hand a layer a weight for one call.


def attributes_holding(layer: keras.layers.Layer, variable: keras.Variable) -> list[str]:
    """The names of `layer`'s instance attributes that hold `variable` itself."""
    return [name for name, value in vars(layer).items() if value is variable]


@contextlib.contextmanager
def replaced_attributes(layer: keras.layers.Layer, values: dict[str, object]) -> Iterator[None]:
    """Within the context, `layer`'s instance attributes named in `values` hold those values.

    Set past Keras' attribute tracking (and torch's `Module.__setattr__`): a tensor held for one
    call is no state of the layer.
    """
    originals = {name: vars(layer)[name] for name in values}
    try:
        for name, value in values.items():
            object.__setattr__(layer, name, value)
        yield
    finally:
        for name, value in originals.items():
            object.__setattr__(layer, name, value)


# Reading variables in their own dtype (Keras 3.9 to 3.15: `keras.src.backend.AutocastScope`). Under a
# mixed policy, `Layer.__call__` reads every autocast variable in the compute dtype, also in a layer
# with `autocast=False` when no outer scope is open, and the variables of a wrapped layer are
# autocast; a wrapper that computes a norm of them in float32 needs the cast off.


def variables_in_own_dtype() -> contextlib.AbstractContextManager:
    """Within the context, variables read in their own dtype (float32 under mixed precision)."""
    from keras.src.backend import AutocastScope

    return AutocastScope(None)
