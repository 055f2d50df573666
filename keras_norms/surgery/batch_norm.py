"""Model transforms around BatchNormalization: train only BN, and calibrate BN at test time."""

import keras

from keras_norms.arguments import check_bool, check_fraction
from keras_norms.keras_internals import nested_layers, own_trainable_variables
from keras_norms.layers.alpha_batch_norm import AlphaBatchNormalization
from keras_norms.surgery.rewrite import replace_layers


def _batch_norms(model):
    return [layer for layer in nested_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


def freeze_all_but_batchnorm(model):
    """Trains only the BatchNormalization `gamma` and `beta` of `model`, in place.

    "Training BatchNorm and Only BatchNorm" (Frankle, Schwab, Morcos, ICLR 2021, arXiv
    2003.00152): every other weight, the output layer included, stays at its initial value.
    BN layers stay trainable, so they keep using batch statistics in training and updating
    their moving statistics (in Keras, `BatchNormalization.trainable = False` would switch them to
    inference mode). Reaches BN layers nested in subclassed blocks. Recompile after calling it.

    Returns:
        The number of trainable parameters left (2 x the BN channels with center and scale).

    Example:

    >>> keras_norms.surgery.freeze_all_but_batchnorm(model)   # e.g. 1568 for a CIFAR ResNet-20
    >>> model.compile(keras.optimizers.SGD(0.1, momentum=0.9), loss)
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(f"`model` must be a Keras model or layer. Received: {model!r}")
    norms = _batch_norms(model)
    if not norms:
        raise ValueError(f"`model` has no BatchNormalization layer: {model.name}")
    # Freeze weights, not layers: a frozen block would freeze the BN inside it too.
    for layer in [model, *nested_layers(model)]:
        trainable = isinstance(layer, keras.layers.BatchNormalization)
        if trainable:
            layer.trainable = True
        for variable in own_trainable_variables(layer):
            variable.trainable = trainable
    return sum(_size(w) for w in model.trainable_weights)


def _size(weight):
    size = 1
    for dim in weight.shape:
        size *= dim
    return size


def calibrate_batch_statistics(model, test_weight=0.1, synchronized=True):
    """`model` with every BatchNormalization replaced by an `AlphaBatchNormalization`.

    Each replacement has the BN's config and weights and `test_weight` (the weight of the test
    batch's statistics; 0.1 as the common reference's default). Use it at test time on shifted
    data; evaluate with batches, since the statistics come from each batch. Layers that are not
    BN are shared with `model`, not copied. `synchronized` (default True, whatever the BN had):
    test-batch statistics over the global batch when evaluating data-parallel
    (`AlphaBatchNormalization`).

    Returns:
        `(new_model, report)`: the report lists the replaced layers' paths.

    Example:

    >>> calibrated, report = keras_norms.surgery.calibrate_batch_statistics(model, test_weight=0.1)
    >>> calibrated.evaluate(x_shifted, y, batch_size=64)
    """
    test_weight = check_fraction("test_weight", test_weight)
    synchronized = check_bool("synchronized", synchronized)

    def convert(layer, consumer):
        config = layer.get_config()
        config.update(test_weight=test_weight, synchronized=synchronized)
        replacement = AlphaBatchNormalization.from_config(config)
        return replacement, layer.get_weights()

    return replace_layers(
        model,
        lambda layer: (
            isinstance(layer, keras.layers.BatchNormalization) and not isinstance(layer, AlphaBatchNormalization)
        ),
        convert,
    )
