"""Swap the BatchNormalization layers of an existing model for another normalization."""

import keras

from keras_norms import registry
from keras_norms.surgery.rewrite import input_shape_of, replace_layers

_FUSABLE_ACTIVATIONS = (keras.layers.Activation, keras.layers.ReLU)


def _factory(target):
    if isinstance(target, str):
        return registry.layer_class(target)
    if callable(target):
        return target
    raise TypeError(f"`target` must be a registry name or a layer factory. Received: target={target!r}")


def _is_norm_activation(factory, kwargs):
    # Signatures can hide `apply_act` in **kwargs (EvoNormS0): ask a built-free instance.
    return "apply_act" in factory(**kwargs).get_config()


def _fitting_groups(groups, channels):
    """The largest divisor of `channels` that is at most `groups`."""
    for candidate in range(min(groups, channels), 0, -1):
        if channels % candidate == 0:
            return candidate
    return 1


def replace_norm_layers(model, target, **kwargs):
    """A copy of `model` with every BatchNormalization replaced by `target`.

    `target` is a registry name (`"evonorm_s0"`, `"evonorm_b0"`, ...; see `keras_norms.names()`)
    or a factory called with the keyword arguments. Each replacement gets the BN's `axis` and
    `name` plus `kwargs`. When the target is a fused normalization-activation layer (it takes
    `apply_act`), the activation layer (`Activation` or `ReLU`) that alone reads a BN's output is
    absorbed: the BN becomes the target with `apply_act=True` and the activation an `Identity`.
    A BN with no such activation (feeding an `Add`, or read by several layers) gets
    `apply_act=False`. A `groups` argument that does not divide a layer's channels falls back to
    the largest divisor below it (reported).

    BN layers nested inside subclassed blocks (keras-hub MobileNet and EfficientNetV2 blocks) are
    replaced in place in the copy; their activation is not visible from outside the block's
    `call`, so they get `apply_act=False` and the block's own activation stays.

    The original model is left as it was; the copy has its weights (replacements start from
    their initializers). keras-hub backbones come back as plain functional `keras.Model` objects.

    Returns:
        `(new_model, report)`: the report lists each replacement (`path`, `old`, `new`,
        `nested`, `fused`, `groups`).

    Example:

    >>> model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    >>> swapped, report = keras_norms.surgery.replace_norm_layers(model, "evonorm_s0", groups=8)
    >>> len(report), sum(r["fused"] for r in report)
    (53, 33)
    """
    factory = _factory(target)
    fusable = _is_norm_activation(factory, kwargs)
    groups = kwargs.get("groups")
    group_fallbacks = {}

    def convert(layer, consumer):
        arguments = dict(kwargs)
        arguments["axis"] = layer.axis
        arguments["name"] = layer.name
        if groups is not None and layer.built:
            channels = _input_shape_channels(layer)
            arguments["groups"] = _fitting_groups(groups, channels)
            if arguments["groups"] != groups:
                group_fallbacks[layer.name] = arguments["groups"]
        fuse = fusable and isinstance(consumer, _FUSABLE_ACTIVATIONS)
        if fusable:
            arguments["apply_act"] = fuse
        return factory(**arguments), None, fuse

    new_model, report = replace_layers(model, lambda layer: isinstance(layer, keras.layers.BatchNormalization), convert)
    for entry in report:
        entry["groups"] = group_fallbacks.get(entry["path"].split("/")[-1], groups)
    return new_model, report


def _input_shape_channels(layer):
    return input_shape_of(layer)[layer.axis]
