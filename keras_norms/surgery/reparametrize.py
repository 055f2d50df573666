"""Reparametrize the kernels of an existing model (weight normalization), and fold them back.

`reparametrize` wraps every layer with a kernel in a reparametrization wrapper, top-level layers of
Functional and Sequential models and layers nested inside subclassed blocks alike (through
`replace_layers`); `fold_reparametrizations` replaces every such wrapper by the plain layer its
`remove()` returns, so that the trained model exports without the wrapper. `weight_normalize` is
`reparametrize` with `WeightNormalization`.
"""

from collections.abc import Callable

import keras

from keras_norms.arguments import check_bool
from keras_norms.keras_internals import nested_layers, own_variables
from keras_norms.parametrization.weight_norm import WeightNormalization
from keras_norms.surgery.rewrite import _sublayer_slots as sublayer_slots
from keras_norms.surgery.rewrite import replace_layers

Predicate = Callable[[keras.layers.Layer], bool]


def has_kernel(layer: keras.layers.Layer) -> bool:
    """Whether `layer` keeps its weights in a `kernel` variable (Dense, ConvND, EinsumDense, ...)."""
    return not isinstance(layer, keras.layers.Wrapper) and isinstance(getattr(layer, "kernel", None), keras.Variable)


def is_reparametrization(layer: keras.layers.Layer) -> bool:
    """Whether `layer` is a wrapper with a `remove()` method that returns the plain layer."""
    return isinstance(layer, keras.layers.Wrapper) and callable(getattr(layer, "remove", None))


def reparametrize(
    model: keras.Model,
    wrapper: Callable[[keras.layers.Layer], keras.layers.Layer],
    predicate: Predicate | None = None,
) -> keras.Model:
    """A copy of `model` with every layer `predicate` selects replaced by `wrapper(layer)`.

    The selected layers keep their weights (the wrapper wraps the copy's layer); layers nested inside
    subclassed blocks are wrapped in place in the copy. The original model is left as it was. A copy
    in which nested layers were wrapped trains and runs, but cannot be cloned or saved as it is (the
    block's config rebuilds the plain layer): `fold_reparametrizations` gives one that can.

    Args:
        model: A built Functional or Sequential `keras.Model`.
        wrapper: Called with each selected layer, returns the layer to put in its place (a
            `keras.layers.Wrapper` around it).
        predicate: Selects the layers to wrap; default: every layer with a `kernel` variable
            (Dense, ConvND, ConvNDTranspose, EinsumDense, ...) that is not itself a wrapper.

    Raises:
        ValueError: If a selected layer is already inside a reparametrization wrapper (fold the
            model first with `fold_reparametrizations`).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={type(model).__name__}")
    if not callable(wrapper):
        raise TypeError(f"`wrapper` must be callable (a Wrapper class or factory). Received: wrapper={wrapper!r}")
    selects = has_kernel if predicate is None else predicate
    if not callable(selects):
        raise TypeError(f"`predicate` must be callable or None. Received: predicate={predicate!r}")
    # The walk into blocks would also wrap the layer inside an existing wrapper.
    wrapped = [
        layer.layer.name for layer in nested_layers(model) if is_reparametrization(layer) and selects(layer.layer)
    ]
    if wrapped:
        raise ValueError(
            f"The model already reparametrizes the layers {wrapped}: fold it first with fold_reparametrizations."
        )
    wrapped_ids = set()

    def convert(layer: keras.layers.Layer, consumer: object) -> tuple[keras.layers.Layer, None]:
        wrapped_ids.add(id(layer))
        return wrapper(layer), None

    # replace_layers walks into the new wrappers too: the layers already wrapped are not selected again.
    new_model, _ = replace_layers(model, lambda layer: id(layer) not in wrapped_ids and selects(layer), convert)
    return new_model


def fold_reparametrizations(model: keras.Model) -> keras.Model:
    """A copy of `model` in which every reparametrization wrapper is replaced by its plain layer.

    A reparametrization wrapper is a `keras.layers.Wrapper` with a `remove()` method returning the
    wrapped layer with its effective weights (`WeightNormalization`: kernel `g * v / ||v||`). The
    copy computes what `model` computes in inference and, unlike a model whose nested layers were
    wrapped, can be cloned and saved. The original model is left as it was.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={type(model).__name__}")
    pairs = []

    def clone_function(layer: keras.layers.Layer) -> keras.layers.Layer:
        source = layer.layer if is_reparametrization(layer) else layer
        clone = type(source).from_config(source.get_config())
        pairs.append((layer, clone))
        return clone

    # Rebuilt from configs, which know nothing of the wrappers a block's sub-layers got (so neither
    # replace_layers nor clone_model can copy the weights by position): the weights are copied
    # sub-layer by sub-layer, matched by the attribute that holds them.
    plain = keras.models.clone_model(model, clone_function=clone_function)
    for source, target in pairs:
        _copy_folded_weights(source, target)
    return plain


def _copy_folded_weights(source: keras.layers.Layer, target: keras.layers.Layer) -> None:
    """Gives `target` (`source` rebuilt from its config) the weights of `source`, wrappers folded."""
    if is_reparametrization(source):
        saved = source.get_weights()
        target.set_weights(source.remove().get_weights())
        source.set_weights(saved)  # remove() spent the wrapper: the source model stays as it was
        return
    if not any(is_reparametrization(layer) for layer in nested_layers(source)):
        target.set_weights(source.get_weights())  # the same config: the same weights in the same order
        return
    for source_variable, target_variable in zip(own_variables(source), own_variables(target)):
        target_variable.assign(source_variable)
    targets = dict(sublayer_slots(target))
    for name, sublayer in sublayer_slots(source):
        _copy_folded_weights(sublayer, targets[name])


def weight_normalize(model: keras.Model, data_init: bool = True, predicate: Predicate | None = None) -> keras.Model:
    """A copy of `model` with every layer that has a kernel wrapped in `WeightNormalization`.

    Before training the copy computes what `model` computes (`g = ||v||`). With `data_init` (the
    default), each wrapper then initializes from the first training batch: its pre-activations come
    out standardized. `fold_reparametrizations` turns the trained copy back into a plain model.

    Args:
        model: A built Functional or Sequential `keras.Model` (subclassed blocks inside included).
        data_init: Passed to each `WeightNormalization`.
        predicate: Selects the layers to wrap; default: every layer with a `kernel` variable.

    Example:

    >>> inputs = keras.Input((8,))
    >>> model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(16, activation="relu")(inputs)))
    >>> normalized = weight_normalize(model)
    >>> [type(layer).__name__ for layer in normalized.layers]
    ['InputLayer', 'WeightNormalization', 'WeightNormalization']
    """
    check_bool("data_init", data_init)
    return reparametrize(model, lambda layer: WeightNormalization(layer, data_init=data_init), predicate)
