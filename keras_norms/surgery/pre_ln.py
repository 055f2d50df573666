"""Pre-LN Transformer to Pre-RMSNorm or Pre-CRMSNorm, with identical outputs.

Paper: Jiang, Gu, Zhu, Pan, "Pre-RMSNorm and Pre-CRMSNorm Transformers: Equivalent and Efficient
Pre-LN Transformers", NeurIPS 2023, arXiv 2305.14858. Reference:
ZixuanJiang/pre-rmsnorm-transformer.
"""

import inspect

import keras

from keras_norms.keras_internals import first_call_inputs, nested_layers, own_variables, producer, readers
from keras_norms.layers.rms_norm import CRMSNormalization, RMSNormalization
from keras_norms.surgery.folding import affine, compress_input, fold, input_projections, recenter, value_of
from keras_norms.surgery.gpt2 import convert_gpt2, gpt2_parts
from keras_norms.surgery.rewrite import copy_model

_PASS_THROUGH = (keras.layers.Dropout, keras.layers.Identity)
_TARGETS = ("rms", "crms")


def _source(tensor):
    """The layer that wrote `tensor`, looking through dropout and identity layers."""
    layer = producer(tensor)
    while isinstance(layer, _PASS_THROUGH):
        layer = producer(first_call_inputs(layer)[0])
    return layer


def _readers(layer):
    """The layers that read `layer`'s output, looking through dropout and identity layers."""
    found = []
    for reader in readers(layer):
        if isinstance(reader, _PASS_THROUGH):
            found.extend(_readers(reader))
        else:
            found.append(reader)
    return found


def _plan(model):
    """Finds the LayerNorms, the layers that read them and the layers that write the stream."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.LayerNormalization)]
    if not norms:
        raise ValueError(f"`model` has no LayerNormalization layer: {model.name}")
    for norm in norms:
        axes = norm.axis if isinstance(norm.axis, (list, tuple)) else [norm.axis]
        rank = len(norm.input.shape)
        if [a % rank for a in axes] != [rank - 1] or norm.rms_scaling:
            raise ValueError(f"{norm.name}: only LayerNormalization over the last axis is supported.")
    consumers: dict = {}
    for norm in norms:
        for reader in _readers(norm):
            if not isinstance(reader, (keras.layers.Dense, keras.layers.MultiHeadAttention)):
                raise ValueError(
                    f"{reader.name} ({type(reader).__name__}) reads {norm.name}: only Dense and "
                    "MultiHeadAttention can take a folded LayerNorm affine."
                )
            consumers.setdefault(id(reader), (reader, []))[1].append(norm)
    producers = {}
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    for add in adds:
        for tensor in first_call_inputs(add):
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
    than a LayerNorm or an `Add` raises.

    Also keras-hub's `GPT2Backbone` and `GPT2CausalLM`. These come back as functional models of
    `PreNormDecoderBlock`s with the same inputs (`token_ids`, `padding_mask`); `generate()` and
    presets stay with the original. The causal LM's tied embedding is untied
    (docs/references/normalization.md, "CRMSNorm and the Pre-LN conversion"): the input table is
    recentered while a separate `lm_head` Dense takes the final LayerNorm's affine.
    A converted backbone still returns the final LayerNorm's output: an RMSNorm with its `gamma`,
    `beta` (`"rms"`), or a `decompress` Dense from `d - 1` to `d` features (`"crms"`).

    Returns:
        `(new_model, report)`: the report counts the folded, recentered and replaced layers.

    Example:

    >>> crms_model, report = keras_norms.surgery.convert_pre_ln(model, to="crms")
    """
    if to not in _TARGETS:
        raise ValueError(f"`to` must be one of {_TARGETS}. Received: to={to!r}")
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a functional keras.Model. Received: {type(model).__name__}")
    gpt2 = gpt2_parts(model)
    if gpt2 is not None:
        return convert_gpt2(model, *gpt2, to)
    source = copy_model(model)
    norms, consumers, producers = _plan(source)
    compress = to == "crms"
    new_weights = {}
    for layer, reading in consumers:
        if any(norm is not reading[0] for norm in reading):
            raise ValueError(f"{layer.name} reads several LayerNorms.")
        gamma, beta = affine(reading[0], reading[0].input.shape[-1])
        for dense in input_projections(layer):
            bias = None if dense.bias is None else value_of(dense.bias)
            kernel, bias = fold(value_of(dense.kernel), bias, gamma, beta, name=layer.name)
            new_weights[(id(dense), "kernel")] = compress_input(kernel) if compress else kernel
            if bias is not None:
                new_weights[(id(dense), "bias")] = bias
    for layer in producers:
        if isinstance(layer, keras.layers.Embedding):
            owner, kernel_name, bias = layer, "embeddings", None
        else:
            owner = layer if isinstance(layer, keras.layers.Dense) else layer.output_dense
            kernel_name, bias = "kernel", owner.bias
        key = (id(owner), kernel_name)
        kernel, bias = recenter(
            new_weights.get(key, value_of(getattr(owner, kernel_name))),
            None if bias is None else value_of(bias),
            compress,
        )
        new_weights[key] = kernel
        if bias is not None:
            new_weights[(id(owner), "bias")] = bias
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
        "untied": False,
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

    def call_function(layer, *args, **kwargs):
        # A replacement takes the call arguments it accepts: an Identity standing in for a norm
        # gets no `mask`, which Keras records in the node of every layer whose call takes one.
        parameters = inspect.signature(layer.call).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            kwargs = {name: value for name, value in kwargs.items() if name in parameters}
        return layer(*args, **kwargs)

    model = keras.models.clone_model(source, clone_function=clone_function, call_function=call_function)
    for layer in nested_layers(model):
        original = originals.get(id(layer))
        if original is not None:
            _copy_weights(original, layer, new_weights)
    return model


def _copy_weights(original, clone, new_weights):
    old_sub = [original, *nested_layers(original)]
    new_sub = [clone, *nested_layers(clone)]
    for old, new in zip(old_sub, new_sub):
        for old_variable, new_variable in zip(own_variables(old), own_variables(new)):
            value = new_weights.get((id(old), old_variable.name))
            if value is None:
                value = value_of(old_variable)
            new_variable.assign(value.astype(new_variable.dtype))
