"""Replacing layers of a built model: top-level layers of functional graphs and sub-layers of blocks.

`keras.models.clone_model` rebuilds only the top-level graph of a functional model; layers nested
inside subclassed blocks (keras-hub's MobileNet and EfficientNetV2 blocks) are invisible to it.
`replace_layers` does both: it clones the model (weights included, the original stays as it
was), swaps matching top-level layers through `clone_model`, and swaps matching sub-layers of the
copy's blocks in place.
"""

import keras

from keras_norms.keras_internals import readers, retrack_sublayer, unlocked_tracking


def copy_model(model):
    """An independent copy of `model`: same architecture and weights."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _built_replacement(layer, replacement, weights):
    # A layer a block created but never called (keras-cv's unused expansion BN) stays unbuilt.
    if not layer.built:
        return replacement
    replacement.build(input_shape_of(layer))
    if weights is not None:
        replacement.set_weights(weights)
    return replacement


def input_shape_of(layer):
    """The input shape a built single-input layer was built with (batch size unknown)."""
    shapes = getattr(layer, "_build_shapes_dict", None) or {}
    if len(shapes) == 1:
        return tuple(next(iter(shapes.values())))
    try:
        return tuple(layer.input.shape)
    except (AttributeError, ValueError):
        pass
    spec = layer.input_spec
    if spec is not None and spec.ndim is not None and spec.axes:
        shape = [None] * spec.ndim
        for axis, size in spec.axes.items():
            shape[axis] = size
        return tuple(shape)
    raise ValueError(f"Cannot tell the input shape of the built layer {layer.name}.")


def _set_sublayer(container, name, old, new):
    # Untrack the old layer too, so that its weights leave the model.
    with unlocked_tracking(container):
        if isinstance(name, tuple):  # (list attribute, index)
            getattr(container, name[0])[name[1]] = new
        else:
            setattr(container, name, new)
    retrack_sublayer(container, old, new)


def _sublayer_slots(container):
    """`(attribute, layer)` pairs of the direct sub-layers held as attributes of `container`."""
    slots = []
    attributes = dict(vars(container))
    attributes.update(getattr(container, "_modules", {}) or {})  # torch keeps sub-layers here
    for name, value in attributes.items():
        if isinstance(value, keras.layers.Layer) and value is not container:
            slots.append((name, value))
        elif isinstance(value, list) and not name.startswith("_"):
            for index, item in enumerate(value):
                if isinstance(item, keras.layers.Layer):
                    slots.append(((name, index), item))
    return slots


def _replace_nested(layer, predicate, convert, report, path):
    for name, sublayer in _sublayer_slots(layer):
        sub_path = f"{path}/{sublayer.name}"
        if predicate(sublayer):
            replacement, weights = convert(sublayer, None)[:2]
            new = _built_replacement(sublayer, replacement, weights)
            _set_sublayer(layer, name, sublayer, new)
            report.append(
                {
                    "path": sub_path,
                    "old": type(sublayer).__name__,
                    "new": type(new).__name__,
                    "nested": True,
                    "fused": False,
                }
            )
        else:
            _replace_nested(sublayer, predicate, convert, report, sub_path)


def replace_layers(model, predicate, convert):
    """A copy of `model` with every layer `predicate` selects replaced by `convert(layer, consumer)`.

    `convert(layer, consumer)` returns `(replacement, weights)`: an unbuilt layer and the weights
    to give it (or None). `consumer` is, for a top-level layer of a functional graph, the single
    layer that reads its output (None when there are several or none), so a norm-activation
    replacement can absorb a following activation: when `convert` returns a third item `True`,
    that consumer is replaced by `keras.layers.Identity`. Nested sub-layers get `consumer=None`.

    Returns:
        `(new_model, report)`, the report a list of dicts (`path`, `old`, `new`, `nested`,
        `fused`) per replaced layer.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: {type(model).__name__}")
    copy = copy_model(model)
    report = []
    fused = set()
    plans = {}
    for layer in copy.layers:
        if predicate(layer):
            consumer = _single_consumer(layer)
            plan = convert(layer, consumer)
            plans[id(layer)] = plan
            if len(plan) > 2 and plan[2] and consumer is not None:
                fused.add(id(consumer))

    def clone_function(layer):
        if id(layer) in plans:
            replacement, weights = plans[id(layer)][:2]
            new = _built_replacement(layer, replacement, weights)
            report.append(
                {
                    "path": layer.name,
                    "old": type(layer).__name__,
                    "new": type(new).__name__,
                    "nested": False,
                    "fused": len(plans[id(layer)]) > 2 and plans[id(layer)][2],
                }
            )
            return new
        if id(layer) in fused:
            return keras.layers.Identity(name=layer.name)
        return layer

    if plans:
        new_model = keras.models.clone_model(copy, clone_function=clone_function)
    else:
        new_model = copy
    for layer in new_model.layers:
        if not predicate(layer):
            _replace_nested(layer, predicate, convert, report, layer.name)
    return new_model, report


def _single_consumer(layer):
    nodes = readers(layer)
    consumers = {id(node): node for node in nodes}
    if len(nodes) == 1 and len(consumers) == 1:
        return next(iter(consumers.values()))
    return None
