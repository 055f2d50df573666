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
"""

import contextlib
from collections.abc import Iterator

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
