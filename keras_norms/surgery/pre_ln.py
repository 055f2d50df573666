"""Pre-LN Transformer to Pre-RMSNorm or Pre-CRMSNorm, with identical outputs.

Paper: Jiang, Gu, Zhu, Pan, "Pre-RMSNorm and Pre-CRMSNorm Transformers: Equivalent and Efficient
Pre-LN Transformers", NeurIPS 2023, arXiv 2305.14858. Reference:
ZixuanJiang/pre-rmsnorm-transformer.
"""

import keras
import numpy as np

from keras_norms.layers.rms_norm import CRMSNormalization
from keras_norms.layers.rms_norm import RMSNormalization
from keras_norms.surgery.rewrite import copy_model

_PASS_THROUGH = (keras.layers.Dropout, keras.layers.Identity)
_TARGETS = ("rms", "crms")


def _value(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable.value), dtype=np.float64)


def _source(tensor):
    """The layer that wrote `tensor`, looking through dropout and identity layers."""
    layer = tensor._keras_history.operation
    while isinstance(layer, _PASS_THROUGH):
        layer = layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
    return layer


def _readers(layer):
    readers = []
    for node in layer._outbound_nodes:
        reader = node.operation
        if isinstance(reader, _PASS_THROUGH):
            readers.extend(_readers(reader))
        else:
            readers.append(reader)
    return readers


def _plan(model):
    """Finds the LayerNorms, the layers that read them and the layers that write the stream."""
    norms = [l for l in model.layers if isinstance(l, keras.layers.LayerNormalization)]
    if not norms:
        raise ValueError(f"`model` has no LayerNormalization layer: {model.name}")
    for norm in norms:
        axes = norm.axis if isinstance(norm.axis, (list, tuple)) else [norm.axis]
        rank = len(norm.input.shape)
        if [a % rank for a in axes] != [rank - 1] or norm.rms_scaling:
            raise ValueError(f"{norm.name}: only LayerNormalization over the last axis is supported.")
    consumers = {}
    for norm in norms:
        for reader in _readers(norm):
            if not isinstance(reader, (keras.layers.Dense, keras.layers.MultiHeadAttention)):
                raise ValueError(
                    f"{reader.name} ({type(reader).__name__}) reads {norm.name}: only Dense and "
                    "MultiHeadAttention can take a folded LayerNorm affine."
                )
            consumers.setdefault(id(reader), (reader, []))[1].append(norm)
    producers = {}
    adds = [l for l in model.layers if isinstance(l, keras.layers.Add)]
    for add in adds:
        for tensor in add._inbound_nodes[0].input_tensors:
            source = _source(tensor)
            if isinstance(source, keras.layers.Add):
                continue
            if not isinstance(source, (keras.layers.Dense, keras.layers.MultiHeadAttention, keras.layers.Embedding)):
                raise ValueError(
                    f"{source.name} ({type(source).__name__}) writes the residual stream: only Dense, "
                    "MultiHeadAttention and Embedding can be recentered."
                )
            producers[id(source)] = source
    stream = list(producers.values()) + adds
    for writer in stream:
        for reader in _readers(writer):
            if not isinstance(reader, (keras.layers.Add, keras.layers.LayerNormalization)):
                raise ValueError(
                    f"{reader.name} reads the residual stream directly (not through a LayerNorm): "
                    "the model is not Pre-LN, so recentering would change it."
                )
    return norms, list(consumers.values()), list(producers.values())


def _fold(kernel, bias, gamma, beta):
    """`W' = gamma W`, `b' = b + beta W` over the input axis 0 of `kernel`."""
    folded = kernel * gamma.reshape((-1,) + (1,) * (kernel.ndim - 1))
    shift = np.tensordot(beta, kernel, axes=(0, 0))
    if bias is None:
        if np.any(shift != 0):
            raise ValueError("A LayerNorm with a non-zero beta feeds a layer without a bias.")
        return folded, None
    return folded, bias + shift


def _compress_input(kernel):
    # A zero-mean d-vector stored as its first d-1 entries: x_d = -sum(z).
    return kernel[:-1] - kernel[-1:]


def convert_pre_ln(model, to="rms"):
    """A Pre-RMSNorm (`to="rms"`) or Pre-CRMSNorm (`to="crms"`) copy of a Pre-LN `model`.

    Same outputs, exactly (up to rounding): (1) each LayerNorm's `gamma`/`beta` are folded into
    the Dense or MultiHeadAttention (query/key/value) layers that read it,
    `W' = diag(gamma) W`, `b' = b + beta W`; (2) every layer that writes the residual stream
    (Embedding tables, attention output projections, MLP output Dense layers, found from the
    `Add` layers) is recentered over its `d` outputs, so the stream has zero mean; (3) each
    LayerNorm becomes `RMSNormalization(epsilon=ln.epsilon, scale=False)`, since RMS = std on a
    zero-mean vector. For `"crms"`, (4) the stream stores only its first `d - 1` coordinates:
    writers keep `d - 1` outputs, readers take `W[:d-1] - W[d-1]`, and each norm is a
    `CRMSNormalization`.

    Supports functional models built from `Embedding`, `LayerNormalization`, `Dense`,
    `MultiHeadAttention`, `Add`, activations and dropout (dropout on a branch breaks exactness in
    training only). It checks that the model really is Pre-LN: anything reading the stream other
    than a LayerNorm or an `Add` raises. keras-hub's GPT-2 (private block norms, tied embeddings)
    is not supported yet.

    Returns:
        `(new_model, report)`: the report counts the folded, recentered and replaced layers.

    Example:

    >>> crms_model, report = keras_norms.surgery.convert_pre_ln(model, to="crms")
    """
    if to not in _TARGETS:
        raise ValueError(f"`to` must be one of {_TARGETS}. Received: to={to!r}")
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a functional keras.Model. Received: {type(model).__name__}")
    source = copy_model(model)
    norms, consumers, producers = _plan(source)
    compress = to == "crms"
    new_weights = {}
    for layer, reading in consumers:
        gamma = _value(reading[0].gamma) if reading[0].scale else np.ones(reading[0].gamma.shape)
        beta = _value(reading[0].beta) if reading[0].center else np.zeros(gamma.shape)
        if any(norm is not reading[0] for norm in reading):
            raise ValueError(f"{layer.name} reads several LayerNorms.")
        if isinstance(layer, keras.layers.Dense):
            parts = [(layer, "kernel", "bias")]
        else:
            parts = [(layer._query_dense, "kernel", "bias"), (layer._key_dense, "kernel", "bias"),
                     (layer._value_dense, "kernel", "bias")]
        for dense, kernel_name, bias_name in parts:
            kernel = _value(getattr(dense, kernel_name))
            bias = _value(getattr(dense, bias_name)) if getattr(dense, bias_name, None) is not None else None
            kernel, bias = _fold(kernel, bias, gamma, beta)
            if compress:
                kernel = _compress_input(kernel)
            new_weights[(id(dense), kernel_name)] = kernel
            if bias is not None:
                new_weights[(id(dense), bias_name)] = bias
    for layer in producers:
        if isinstance(layer, keras.layers.Embedding):
            parts = [(layer, "embeddings", None)]
        elif isinstance(layer, keras.layers.Dense):
            parts = [(layer, "kernel", "bias")]
        else:
            parts = [(layer._output_dense, "kernel", "bias")]
        for owner, kernel_name, bias_name in parts:
            key = (id(owner), kernel_name)
            kernel = new_weights.get(key, _value(getattr(owner, kernel_name)))
            kernel = kernel - kernel.mean(axis=-1, keepdims=True)
            new_weights[key] = kernel[..., :-1] if compress else kernel
            bias = getattr(owner, bias_name, None) if bias_name else None
            if bias is not None:
                bias = _value(bias)
                bias = bias - bias.mean()
                new_weights[(id(owner), bias_name)] = bias[:-1] if compress else bias
    producer_ids = {id(p) for p in producers}
    norm_cls = CRMSNormalization if compress else RMSNormalization

    def choose(layer):
        if isinstance(layer, keras.layers.LayerNormalization):
            return norm_cls(epsilon=layer.epsilon, scale=False, name=layer.name)
        config = layer.get_config()
        if compress and id(layer) in producer_ids:
            if isinstance(layer, keras.layers.Embedding):
                config["output_dim"] -= 1
            elif isinstance(layer, keras.layers.Dense):
                config["units"] -= 1
            elif config.get("output_shape") is not None:
                raise ValueError(f"{layer.name}: set no explicit output_shape to compress it.")
        return config

    converted = _rebuild(source, choose, new_weights)
    report = {
        "layer_norms": len(norms),
        "folded_into": [layer.name for layer, _ in consumers],
        "recentered": [layer.name for layer in producers],
        "to": to,
    }
    return converted, report


def _rebuild(source, choose, new_weights):
    """`clone_model(source)`: `choose(layer)` gives a layer to use as is, or a config to rebuild
    from; a rebuilt layer takes `new_weights[(id(original sub-layer), name)]`, else the original's."""
    originals = {}

    def clone_function(layer):
        choice = choose(layer)
        if not isinstance(choice, dict):
            return choice
        clone = type(layer).from_config(choice)
        originals[id(clone)] = layer
        return clone

    model = keras.models.clone_model(source, clone_function=clone_function)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        original = originals.get(id(layer))
        if original is not None:
            _copy_weights(original, layer, new_weights)
    return model


def _copy_weights(original, clone, new_weights):
    old_sub = [original, *original._flatten_layers(include_self=False, recursive=True)]
    new_sub = [clone, *clone._flatten_layers(include_self=False, recursive=True)]
    for old, new in zip(old_sub, new_sub):
        for old_variable, new_variable in zip(old._trainable_variables + old._non_trainable_variables,
                                              new._trainable_variables + new._non_trainable_variables):
            value = new_weights.get((id(old), old_variable.name))
            if value is None:
                value = _value(old_variable)
            new_variable.assign(value.astype(new_variable.dtype))
