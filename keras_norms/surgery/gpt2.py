"""keras-hub GPT-2 to Pre-RMSNorm or Pre-CRMSNorm, with the same outputs.

keras-hub builds GPT-2 from `TransformerDecoder(normalize_first=True)` blocks whose norms are
private attributes, and its logits come from the token embedding used in reverse (tied weights).
`convert_gpt2` reads the weights out, does the conversion of docs/references/derivations.md (section
'Pre-LN to Pre-RMSNorm and Pre-CRMSNorm') in float64 numpy and writes them into a functional model
built from `PreNormDecoderBlock`.
"""

import sys

import keras
import numpy as np
from keras import ops

from keras_norms.arguments import check_choice, check_epsilon, check_fraction, check_int, last_axis_size
from keras_norms.layers.rms_norm import CRMSNormalization, RMSNormalization
from keras_norms.ops.dtypes import to_floating
from keras_norms.surgery.folding import affine, compress_input, fold, recenter, value_of

_NORMS = {"rms": RMSNormalization, "crms": CRMSNormalization}


@keras.saving.register_keras_serializable(package="keras_norms")
class PreNormDecoderBlock(keras.layers.Layer):
    """A causal Pre-RMSNorm (or Pre-CRMSNorm) Transformer decoder block.

    `x = x + Dropout(MHA(N(x)))`, then `x = x + Dropout(Dense(act(Dense(N(x)))))`, where `N` is
    `RMSNormalization` (`norm="rms"`) or `CRMSNormalization` (`norm="crms"`), both without scale:
    their affine lives in the next linear layers. Attention is causal, and `padding_mask`
    (batch, length), 1 for real tokens, hides padded keys. This is keras-hub's
    `TransformerDecoder(normalize_first=True)` without cross-attention, with the head size given
    instead of `width // num_heads`: a Pre-CRMSNorm stream is `d - 1` wide but keeps the heads of
    the `d`-wide model. Paper: Jiang et al., arXiv 2305.14858.

    Args:
        num_heads: Attention heads.
        head_dim: Size of each head (query, key and value).
        intermediate_dim: Width of the MLP's hidden layer.
        activation: Of the MLP's hidden layer.
        dropout: Rate of the attention-probability, branch-output dropouts.
        norm: `"rms"` or `"crms"`.
        epsilon: Of the norms (GPT-2: 1e-5).
        kernel_initializer: Of the attention and MLP kernels.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> block = keras_norms.surgery.PreNormDecoderBlock(num_heads=2, head_dim=4, intermediate_dim=16, norm="crms")
    >>> block(np.zeros((1, 5, 7)), padding_mask=np.ones((1, 5))).shape
    (1, 5, 7)
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        intermediate_dim,
        activation="gelu",
        dropout=0.0,
        norm="rms",
        epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_int("num_heads", num_heads, minimum=1)
        self.head_dim = check_int("head_dim", head_dim, minimum=1)
        self.intermediate_dim = check_int("intermediate_dim", intermediate_dim, minimum=1)
        self.activation = keras.activations.get(activation)
        self.dropout = check_fraction("dropout", dropout, exclusive_maximum=True)
        self.norm = check_choice("norm", norm, tuple(_NORMS))
        self.epsilon = check_epsilon("epsilon", epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                "PreNormDecoderBlock expects (batch, time, features) inputs. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        width = last_axis_size(input_shape)

        def sublayer(cls, name, **kwargs):
            return cls(dtype=self.dtype_policy, name=name, **kwargs)

        def norm(name):
            return sublayer(_NORMS[self.norm], name, epsilon=self.epsilon, scale=False)

        def initializer():  # a fresh one per kernel, so that kernels do not start equal
            return keras.initializers.get(keras.initializers.serialize(self.kernel_initializer))

        def dense(units, name, activation=None):
            # Dense's weights and math, by einsum: Keras' Dense (ops.matmul) computes float64 in
            # float32 on PyTorch.
            return sublayer(
                keras.layers.EinsumDense,
                name,
                equation="...i,ij->...j",
                output_shape=(units,),
                bias_axes="j",
                activation=activation,
                kernel_initializer=initializer(),
            )

        self.attention_norm = norm("attention_norm")
        self.attention = sublayer(
            keras.layers.MultiHeadAttention,
            "attention",
            num_heads=self.num_heads,
            key_dim=self.head_dim,
            dropout=self.dropout,
            kernel_initializer=initializer(),
        )
        self.attention_dropout = sublayer(keras.layers.Dropout, "attention_dropout", rate=self.dropout)
        self.mlp_norm = norm("mlp_norm")
        self.mlp_in = dense(self.intermediate_dim, "mlp_in", activation=self.activation)
        self.mlp_out = dense(width, "mlp_out")
        self.mlp_dropout = sublayer(keras.layers.Dropout, "mlp_dropout", rate=self.dropout)
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.mlp_norm.build(input_shape)
        self.mlp_in.build(input_shape)
        self.mlp_out.build(tuple(input_shape[:-1]) + (self.intermediate_dim,))
        self.built = True

    def call(self, inputs, padding_mask=None, training=None):
        inputs = to_floating(inputs, self.compute_dtype)
        batch, length = ops.shape(inputs)[0], ops.shape(inputs)[1]
        positions = ops.arange(length)
        mask = ops.greater_equal(ops.expand_dims(positions, 1), ops.expand_dims(positions, 0))
        mask = ops.broadcast_to(ops.expand_dims(mask, 0), (batch, length, length))
        if padding_mask is not None:
            mask = ops.logical_and(mask, ops.expand_dims(ops.cast(padding_mask, "bool"), 1))
        x = self.attention_norm(inputs)
        if self.compute_dtype == "float64":
            # Keras' fused attention (ops.dot_product_attention) computes float64 in float32 on
            # JAX and PyTorch; asking for the scores takes its explicit einsum-and-softmax path.
            x, _ = self.attention(x, x, attention_mask=mask, training=training, return_attention_scores=True)
        else:
            x = self.attention(x, x, attention_mask=mask, training=training)
        stream = inputs + self.attention_dropout(x, training=training)
        x = self.mlp_out(self.mlp_in(self.mlp_norm(stream)))
        return stream + self.mlp_dropout(x, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "intermediate_dim": self.intermediate_dim,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "norm": self.norm,
                "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def gpt2_parts(model: keras.Model) -> tuple[keras.Model, bool] | None:
    """`(backbone, has_lm_head)` when `model` is a keras-hub GPT-2 backbone or causal LM, else None."""
    hub = sys.modules.get("keras_hub")
    if hub is None:
        return None
    if isinstance(model, hub.models.GPT2CausalLM):
        return model.backbone, True
    if isinstance(model, hub.models.GPT2Backbone):
        return model, False
    return None


def convert_gpt2(model, backbone, has_lm_head, to):
    """`convert_pre_ln` for keras-hub's `GPT2Backbone` / `GPT2CausalLM` (see there).

    keras-hub's `TransformerDecoder` exposes its sub-layers only as private attributes
    (`_self_attention_layer`, `_self_attention_layer_norm`, `_cross_attention_layer`,
    `_feedforward_intermediate_dense`, `_feedforward_output_dense`, `_feedforward_layer_norm`;
    tested with keras-hub 0.32). This function is the one place that reads them.
    """
    compress = to == "crms"
    embedding, positions, final_norm = backbone.token_embedding, backbone.position_embedding, backbone.layer_norm
    for block in backbone.transformer_layers:
        if not block.normalize_first or block._cross_attention_layer is not None:
            raise ValueError(f"{block.name}: only Pre-LN decoder blocks without cross-attention can be converted.")
    if has_lm_head and getattr(embedding, "logit_soft_cap", None) is not None:
        raise ValueError(f"{embedding.name}: a `logit_soft_cap` head is not supported.")
    table = value_of(embedding.embeddings)
    vocabulary, hidden = table.shape
    width = hidden - 1 if compress else hidden
    dtype = backbone.dtype_policy
    norm_cls = _NORMS[to]
    # Each entry: new variable -> its value (float64), filled in as the graph is built.
    values: list[tuple] = []
    report = {
        "layer_norms": 2 * len(backbone.transformer_layers) + 1,
        "folded_into": [],
        "recentered": [],
        "to": to,
        "untied": has_lm_head,
    }

    def writer(name, variables, kernel, bias=None):
        kernel, bias = recenter(kernel, bias, compress)
        values.extend(zip(variables, (kernel, bias)))
        report["recentered"].append(name)

    def reader(name, norm, variables, kernel, bias):
        gamma, beta = affine(norm, hidden)
        kernel, bias = fold(kernel, bias, gamma, beta, name=name)
        values.extend(zip(variables, (compress_input(kernel) if compress else kernel, bias)))
        if name not in report["folded_into"]:
            report["folded_into"].append(name)

    def dense_values(dense):
        return value_of(dense.kernel), None if dense.bias is None else value_of(dense.bias)

    inputs = {
        "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
        "padding_mask": keras.Input(shape=(None,), dtype="int32", name="padding_mask"),
    }
    new_embedding = keras.layers.Embedding(vocabulary, width, dtype=dtype, name=embedding.name)
    new_positions = type(positions).from_config(positions.get_config())
    tokens = new_embedding(inputs["token_ids"])
    x = keras.layers.Add(dtype=dtype, name="embeddings_add")([tokens, new_positions(tokens)])
    x = keras.layers.Dropout(backbone.embeddings_dropout.rate, dtype=dtype, name="embeddings_dropout")(x)
    writer(embedding.name, [new_embedding.embeddings], table)
    writer(positions.name, [new_positions.position_embeddings], value_of(positions.position_embeddings))
    for block in backbone.transformer_layers:
        attention = block._self_attention_layer
        new = PreNormDecoderBlock(
            num_heads=block.num_heads,
            head_dim=attention.key_dim,
            intermediate_dim=block.intermediate_dim,
            activation=block.activation,
            dropout=block.dropout,
            norm=to,
            epsilon=block.layer_norm_epsilon,
            kernel_initializer=block.kernel_initializer,
            dtype=dtype,
            name=block.name,
        )
        x = new(x, padding_mask=inputs["padding_mask"])
        for part in ("_query_dense", "_key_dense", "_value_dense"):
            old_dense, new_dense = getattr(attention, part), getattr(new.attention, part)
            reader(
                f"{block.name}/{attention.name}",
                block._self_attention_layer_norm,
                [new_dense.kernel, new_dense.bias],
                *dense_values(old_dense),
            )
        writer(
            f"{block.name}/{attention.name}",
            [new.attention.output_dense.kernel, new.attention.output_dense.bias],
            *dense_values(attention.output_dense),
        )
        old_in, old_out = block._feedforward_intermediate_dense, block._feedforward_output_dense
        reader(
            f"{block.name}/{old_in.name}",
            block._feedforward_layer_norm,
            [new.mlp_in.kernel, new.mlp_in.bias],
            *dense_values(old_in),
        )
        writer(f"{block.name}/{old_out.name}", [new.mlp_out.kernel, new.mlp_out.bias], *dense_values(old_out))
    epsilon = final_norm.epsilon
    if has_lm_head:  # untied: the head reads the last norm, the input table is recentered
        x = norm_cls(epsilon=epsilon, scale=False, dtype=dtype, name=final_norm.name)(x)
        head = keras.layers.Dense(vocabulary, dtype=dtype, name="lm_head")
        outputs = head(x)
        kernel = table.T if embedding.tie_weights else value_of(embedding.reverse_embeddings)
        reader(head.name, final_norm, [head.kernel, head.bias], kernel, np.zeros(vocabulary))
    elif compress:  # the backbone's d outputs: gamma * [c, -sum(c)] + beta
        x = norm_cls(epsilon=epsilon, scale=False, dtype=dtype, name=final_norm.name)(x)
        head = keras.layers.Dense(hidden, dtype=dtype, name="decompress")
        outputs = head(x)
        reader(head.name, final_norm, [head.kernel, head.bias], np.eye(hidden), np.zeros(hidden))
    else:
        norm = norm_cls(
            epsilon=epsilon, center=final_norm.center, scale=final_norm.scale, dtype=dtype, name=final_norm.name
        )
        outputs = norm(x)
        gamma, beta = affine(final_norm, hidden)
        values.extend([(norm.gamma, gamma), (norm.beta, beta)])
    converted = keras.Model(inputs, outputs, name=f"{model.name}_{to}")
    for variable, value in values:
        if variable is not None:
            value = np.zeros(variable.shape) if value is None else value
            variable.assign(value.astype(variable.dtype))
    return converted, report
