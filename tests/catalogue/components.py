"""Every public component of keras-norms: how to build it, a valid input, and its float64 oracle.

The catalogue tests (bad arguments, bad inputs, dtypes) are tables over these names; the
coverage test fails when a public layer, activation, loss or optimizer is missing here, so a
component added later has to join the tables.

`EXAMPLES[name]` builds the component under a dtype policy, gives it random non-default weights,
and returns a `Run`: the outputs on an input and the float64 oracle of the same computation,
read from the component's own weights (so that weights stored in float16 are no error source).
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_norms import activations, layers, losses, optimizers, search, surgery
from keras_norms.ops.dtypes import statistics_dtype
from tests.oracles import activations as activation_oracles
from tests.oracles import adamp as adamp_oracles
from tests.oracles import batch_norm as batch_norm_oracles
from tests.oracles import catalog_layers as catalog_oracles
from tests.oracles import filter_response as frn_oracles
from tests.oracles import losses as loss_oracles
from tests.oracles import power_norm as power_norm_oracles
from tests.oracles import rms as rms_oracles
from tests.oracles.evolved import evolved as evolved_oracle
from tests.oracles.evonorm import evonorm as evonorm_oracle

# Public classes and functions by name, and what their constructors cannot do without.
CONSTRUCTORS = {
    **{name: getattr(layers, name) for name in layers.__all__},
    **{name: getattr(activations, name) for name in activations.__all__},
    **{name: getattr(losses, name) for name in losses.__all__},
    **{name: getattr(optimizers, name) for name in optimizers.__all__},
    "PreNormDecoderBlock": surgery.PreNormDecoderBlock,
    "EvolvedNormAct": search.EvolvedNormAct,
}
# A genome with every index set, a batch aggregate and both vectors (not one of the seeds).
EVOLVED_GENOME = "add(mul(v1, div(x, sqrt(add(variance_batch(x), variance_group(x))))), mul(v0, sigmoid(x)))"
REQUIRED_ARGUMENTS = {
    "AFKANDense": {"units": 3},
    "CosineClassifier": {"num_classes": 3},
    "HermiteActivation": {"coefficients": [0.3, 0.8, 0.3]},
    "NormLinear": {"units": 3},
    "OrthoTransform": {"basis": np.eye(4)},
    "SNNKDense": {"units": 3, "num_random_features": 8},
    "SGDP": {"learning_rate": 0.1},
    "PreNormDecoderBlock": {"num_heads": 2, "head_dim": 4, "intermediate_dim": 8},
    "EvolvedNormAct": {"genome": EVOLVED_GENOME, "groups": 4},
}
# Public names that are helpers, not components with arguments to check.
NOT_COMPONENTS = {
    "add_class_prototypes",  # takes a built head: tests/layers/test_hyperspherical.py
    "channel_axes_for_model",  # takes a model: tests/optimizers/test_adamp.py
    "default_channel_axes",  # takes a variable
    "DualActivationStats",  # a namedtuple of results
    "LearningRateMultipliers",  # wraps another optimizer: tests/parametrization/test_mup.py
}


def make(name, **arguments):
    """The component `name` with its required arguments and `arguments`; functions are called."""
    constructor = CONSTRUCTORS[name]
    arguments = {**REQUIRED_ARGUMENTS.get(name, {}), **arguments}
    if name == "crrelu":
        return constructor(ops.ones((2, 3)), **arguments)
    if name == "dual_activation_stats":
        return constructor(arguments.pop("activation", np.tanh), **arguments)
    if name == "compute_orthotrans_basis":
        return constructor(arguments.pop("train_array", np.sin(np.arange(40.0))), **{"lag": 4, **arguments})
    return constructor(**arguments)


def to_float64(value):
    return np.asarray(ops.convert_to_numpy(ops.cast(value, "float32") if _is_low(value) else value), dtype=np.float64)


def _is_low(value):
    return keras.backend.standardize_dtype(value.dtype) in ("float16", "bfloat16")


def weight(layer, name):
    """The float64 value of `layer`'s weight `name` (its first weight of that name)."""
    for variable in layer.weights:
        if variable.name == name:
            return to_float64(variable.value)
    raise KeyError(f"{layer.name} has no weight {name!r}: {[v.name for v in layer.weights]}")


def randomize(layer, rng, names, scale=0.3):
    """Moves the weights `names` away from their initial values (a non-default affine, say)."""
    for variable in layer.weights:
        if variable.name in names:
            value = to_float64(variable.value) + scale * rng.standard_normal(variable.shape)
            variable.assign(ops.cast(value.astype("float32"), variable.dtype))


@dataclasses.dataclass
class Run:
    outputs: object  # the component's output tensor
    expected: np.ndarray  # the float64 oracle of the same computation
    dtype: str  # the dtype the outputs must have
    layer: object = None  # the layer, for a backward pass


def _layer_run(layer, x, expected_fn, dtype, **call_kwargs):
    outputs = layer(x, **call_kwargs)
    return Run(outputs, expected_fn(to_float64(x)), layer.compute_dtype, layer)


def _evonorm(variant, cls):
    def run(x, dtype, rng):
        kwargs = {"groups": 4} if variant.startswith("S") else {}
        layer = cls(dtype=dtype, **kwargs)
        layer.build(x.shape)
        randomize(layer, rng, ("gamma", "beta", "v"))
        moving = weight(layer, "moving_variance") if variant.startswith("B") else None
        v = weight(layer, "v") if variant in ("B0", "S0", "S0a") else None

        def expected(x64):
            return evonorm_oracle(
                x64,
                variant,
                weight(layer, "gamma"),
                weight(layer, "beta"),
                v,
                channel_axis=-1,
                epsilon=layer.epsilon,
                training=True,
                moving_variance=moving,
                groups=4,
            )[0]

        return _layer_run(layer, x, expected, dtype, training=True)

    return run


def _evolved(x, dtype, rng):
    layer = make("EvolvedNormAct", dtype=dtype)
    layer.build(x.shape)
    randomize(layer, rng, ("gamma", "beta", "v0", "v1"))
    nodes = [(node.primitive, node.inputs) for node in layer.genome.nodes]
    moving = {index: to_float64(variable.value) for index, variable in layer.moving.items()}

    def expected(x64):
        return evolved_oracle(
            x64,
            nodes,
            v0=weight(layer, "v0"),
            v1=weight(layer, "v1"),
            gamma=weight(layer, "gamma"),
            beta=weight(layer, "beta"),
            groups=4,
            epsilon=layer.epsilon,
            moving=moving,
        )[0]

    return _layer_run(layer, x, expected, dtype, training=True)


def _rms(x, dtype, rng):
    layer = layers.RMSNormalization(center=True, dtype=dtype)
    layer.build(x.shape)
    randomize(layer, rng, ("gamma", "beta"))
    return _layer_run(
        layer,
        x,
        lambda x64: rms_oracles.rms_norm(x64, -1, layer.epsilon, weight(layer, "gamma"), weight(layer, "beta")),
        dtype,
    )


def _crms(x, dtype, rng):
    layer = layers.CRMSNormalization(dtype=dtype)
    layer.build(x.shape)
    randomize(layer, rng, ("gamma",))
    return _layer_run(layer, x, lambda x64: rms_oracles.crms_norm(x64, layer.epsilon, weight(layer, "gamma")), dtype)


def _frn(x, dtype, rng):
    layer = layers.FilterResponseNormalization(dtype=dtype)
    layer.build(x.shape)
    randomize(layer, rng, ("gamma", "beta", "tau"))
    return _layer_run(
        layer,
        x,
        lambda x64: frn_oracles.filter_response_norm(
            x64, weight(layer, "gamma"), weight(layer, "beta"), weight(layer, "tau"), layer.epsilon
        ),
        dtype,
    )


def _tlu(x, dtype, rng):
    layer = layers.TLU(affine=True, dtype=dtype)
    layer.build(x.shape)
    randomize(layer, rng, ("tau", "alpha"))
    return _layer_run(
        layer, x, lambda x64: frn_oracles.tlu(x64, weight(layer, "tau"), alpha=weight(layer, "alpha")), dtype
    )


def _power_norm(x, dtype, rng):
    layer = layers.PowerNormalization(groups=2, dtype=dtype)
    layer.build(x.shape)
    randomize(layer, rng, ("gamma", "beta"))

    def expected(x64):
        oracle = power_norm_oracles.PowerNorm(
            x64.shape[-1],
            weight(layer, "gamma"),
            weight(layer, "beta"),
            eps=layer.epsilon,
            alpha_fwd=layer.alpha_fwd,
            alpha_bkw=layer.alpha_bkw,
            warmup_iters=layer.warmup_steps,
            groups=2,
        )
        return oracle.train_step(x64, np.ones(x64.shape[:-1], bool), np.zeros_like(x64))[0]

    return _layer_run(layer, x, expected, dtype, training=True)


def _alpha_batch_norm(x, dtype, rng):
    layer = layers.AlphaBatchNormalization(test_weight=0.3, dtype=dtype)
    layer.build(x.shape)
    randomize(layer, rng, ("gamma", "beta", "moving_mean"))
    return _layer_run(
        layer,
        x,
        lambda x64: batch_norm_oracles.alpha_batch_norm(
            x64,
            weight(layer, "moving_mean"),
            weight(layer, "moving_variance"),
            weight(layer, "gamma"),
            weight(layer, "beta"),
            0.3,
            layer.epsilon,
        ),
        dtype,
    )


def _fake_layer_norm(x, dtype, rng):
    layer = layers.FakeLayerNormalization(dtype=dtype)
    layer.build(x.shape)
    randomize(layer, rng, ("gamma", "beta"))
    return _layer_run(
        layer,
        x,
        lambda x64: catalog_oracles.layer_norm(x64, weight(layer, "gamma"), weight(layer, "beta"), layer.epsilon),
        dtype,
    )


def _l2_normalize(x, dtype, rng):
    layer = layers.L2Normalize(scale=3.0, dtype=dtype)
    return _layer_run(layer, x, lambda x64: 3.0 * catalog_oracles.l2_normalize(x64), dtype)


def _cosine_classifier(x, dtype, rng):
    layer = layers.CosineClassifier(5, scale=2.0, dtype=dtype)
    layer.build(x.shape)
    return _layer_run(layer, x, lambda x64: catalog_oracles.cosine_logits(x64, weight(layer, "kernel"), 2.0), dtype)


def _norm_linear(x, dtype, rng):
    layer = layers.NormLinear(4, use_bias=True, dtype=dtype)
    layer.build(x.shape)
    randomize(layer, rng, ("bias",))
    return _layer_run(
        layer, x, lambda x64: catalog_oracles.norm_linear(x64, weight(layer, "kernel"), weight(layer, "bias")), dtype
    )


def _ortho_transform(x, dtype, rng):
    basis, _ = np.linalg.qr(rng.standard_normal((x.shape[-1], x.shape[-1])))
    layer = layers.OrthoTransform(basis, dtype=dtype)
    layer.build(x.shape)
    randomize(layer, rng, ("offset",))
    return _layer_run(layer, x, lambda x64: x64 @ weight(layer, "basis").T + weight(layer, "offset"), dtype)


def _afkan(x, dtype, rng):
    layer = layers.AFKANDense(3, dtype=dtype)
    layer.build(x.shape)
    randomize(layer, rng, ("gamma", "beta"))
    names = ("phase_low", "phase_high", "score_kernel", "score_bias", "temperature", "kernel", "gamma", "beta")
    return _layer_run(layer, x, lambda x64: catalog_oracles.afkan(x64, *(weight(layer, n) for n in names)), dtype)


def _snnk(x, dtype, rng):
    layer = layers.SNNKDense(3, 16, seed=int(rng.integers(1000)), dtype=dtype)
    layer.build(x.shape)
    return _layer_run(
        layer,
        x,
        lambda x64: catalog_oracles.relu_features(x64, weight(layer, "projection")) @ weight(layer, "psi").T,
        dtype,
    )


def _tempnet(x, dtype, rng):
    layer = layers.TempNet(hidden_units=6, dtype=dtype)
    layer.build(x.shape)
    names = ("kernel_1", "bias_1", "kernel_2", "bias_2", "log_scale", "last_kernel", "last_bias")
    return _layer_run(
        layer,
        x,
        lambda x64: catalog_oracles.tempnet(x64, *(weight(layer, n) for n in names), layer.tau_min, layer.tau_max),
        dtype,
        training=False,
    )


def _pre_norm_decoder_block(x, dtype, rng):
    block = surgery.PreNormDecoderBlock(num_heads=2, head_dim=4, intermediate_dim=8, activation="relu", dtype=dtype)
    block.build(x.shape)
    dense = {
        "q": block.attention.query_dense,
        "k": block.attention.key_dense,
        "v": block.attention.value_dense,
        "o": block.attention.output_dense,
        "1": block.mlp_in,
        "2": block.mlp_out,
    }
    for layer in dense.values():
        randomize(layer, rng, ("bias",), scale=0.2)
    padding_mask = np.ones(x.shape[:2], "int32")
    padding_mask[0, -2:] = 0

    def expected(x64):
        weights = {
            prefix + n: to_float64(getattr(layer, attribute).value)
            for n, layer in dense.items()
            for prefix, attribute in (("w", "kernel"), ("b", "bias"))
        }
        return rms_oracles.pre_norm_decoder_block(x64, weights, 2, "rms", block.epsilon, padding_mask)

    outputs = block(x, padding_mask=padding_mask)
    return Run(outputs, expected(to_float64(x)), block.compute_dtype, block)


def _crrelu_layer(x, dtype, rng):
    layer = activations.CRReLU(epsilon_initializer=keras.initializers.Constant(0.3), dtype=dtype)
    return _layer_run(layer, x, lambda x64: activation_oracles.crrelu(x64, weight(layer, "epsilon")), dtype)


def _crrelu_function(x, dtype, rng):
    # A function computes in its input's dtype; integer input in floatx.
    outputs = activations.crrelu(x, epsilon=0.3)
    floating = keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype))
    return Run(
        outputs,
        activation_oracles.crrelu(to_float64(x), 0.3),
        keras.backend.standardize_dtype(x.dtype) if floating else keras.config.floatx(),
    )


def _hermite(x, dtype, rng):
    coefficients = [0.3, 0.8, 0.3, -0.2]
    layer = activations.HermiteActivation(coefficients, dtype=dtype)
    return _layer_run(
        layer, x, lambda x64: activation_oracles.hermite_series(x64, weight(layer, "coefficients")), dtype
    )


def _interpolated(x, dtype, rng):
    # softplus, not tanh: Keras' own tanh computes float64 in float32 on JAX (docs/guides/dtypes.md).
    layer = activations.InterpolatedActivation("relu", "softplus", alpha=0.3, trainable_alpha=True, dtype=dtype)
    return _layer_run(
        layer,
        x,
        lambda x64: activation_oracles.interpolated(
            x64, activation_oracles.relu, catalog_oracles.softplus, 1 / (1 + np.exp(-weight(layer, "alpha_logit")))
        ),
        dtype,
    )


def _loss_run(loss, labels, y_pred, expected):
    """The values `loss.call` gives (per sample), after `Loss.__call__`'s conversion to the loss dtype.

    Not the reduced value: Keras' reduction (`keras.losses.Loss.__call__`) divides in float32 on
    PyTorch whatever the dtype (its `divide_no_nan` promotes float64 to float32).
    """
    y_pred = ops.convert_to_tensor(y_pred, loss.dtype)
    outputs = loss.call(ops.convert_to_tensor(labels, loss.dtype), y_pred)
    return Run(outputs, np.asarray(expected), statistics_dtype(loss.dtype))


def _z_loss(x, dtype, rng):
    labels = rng.integers(0, x.shape[-1], x.shape[0])
    loss = losses.ZLoss(a=1.5, b=0.5, dtype=dtype)
    return _loss_run(loss, labels, x, loss_oracles.z_loss(labels, to_float64(x), 1.5, 0.5, loss.epsilon))


def _log_mean(x, dtype, rng):
    logits = x[:, :1]
    labels = rng.integers(0, 2, (x.shape[0], 1))
    loss = losses.LogMeanLoss(dtype=dtype)
    return _loss_run(loss, labels, logits, loss_oracles.log_mean_logistic(labels, to_float64(logits)))


def _tau_dro(x, dtype, rng):
    x64 = to_float64(x)
    labels = rng.integers(0, x.shape[-1] - 1, x.shape[0])
    loss = losses.TauDROCrossEntropy(rho=0.1, dtype=dtype)
    tau = 1.0 + np.abs(x64[:, -1])  # the last column is the temperature, which must be positive
    y_pred = ops.concatenate([x[:, :-1], ops.cast(ops.expand_dims(ops.convert_to_tensor(tau), -1), x.dtype)], -1)
    expected = loss_oracles.tau_dro(labels, x64[:, :-1], to_float64(y_pred)[:, -1], 0.1, x.shape[-1] - 1)
    return _loss_run(loss, labels, y_pred, expected)


def _optimizer_run(name):
    def run(x, dtype, rng):
        variable = keras.Variable(ops.cast(x, dtype), name="kernel")  # (in, out): channels last
        gradient = ops.cast(ops.convert_to_tensor(rng.standard_normal(x.shape)), dtype)
        p, g = to_float64(variable.value), to_float64(gradient)
        lr = float(np.float32(0.1))  # Keras keeps every learning rate in a float32 variable
        if name == "AdamP":
            optimizer = optimizers.AdamP(learning_rate=0.1, weight_decay=0.01)
            expected, _, _ = adamp_oracles.adamp_step(p.T, g.T, 0.0, 0.0, 1, lr, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.1)
        else:
            optimizer = optimizers.SGDP(learning_rate=0.1, momentum=0.9, weight_decay=0.01)
            expected, _ = adamp_oracles.sgdp_step(p.T, g.T, 0.0, lr, 0.9, 0.0, False, 0.01, 0.1, 0.1, 1e-8, True)
        optimizer.apply([gradient], [variable])
        return Run(variable.value, expected.T, dtype)

    return run


# name: (input shape, how to run it). Inputs are float64 draws; the tests cast them.
EXAMPLES = {
    **{
        f"EvoNorm{v}": ((3, 4, 3, 8), _evonorm(v, getattr(layers, f"EvoNorm{v}")))
        for v in ("B0", "B1", "B2", "S0", "S1", "S2", "S0a", "S1a", "S2a")
    },
    "EvolvedNormAct": ((3, 4, 3, 8), _evolved),
    "RMSNormalization": ((2, 3, 8), _rms),
    "CRMSNormalization": ((2, 3, 7), _crms),
    "FilterResponseNormalization": ((2, 4, 3, 6), _frn),
    "TLU": ((2, 4, 6), _tlu),
    "PowerNormalization": ((3, 4, 8), _power_norm),
    "AlphaBatchNormalization": ((6, 8), _alpha_batch_norm),
    "FakeLayerNormalization": ((2, 3, 8), _fake_layer_norm),
    "L2Normalize": ((4, 6), _l2_normalize),
    "CosineClassifier": ((4, 6), _cosine_classifier),
    "NormLinear": ((4, 6), _norm_linear),
    "OrthoTransform": ((4, 6), _ortho_transform),
    "AFKANDense": ((4, 5), _afkan),
    "SNNKDense": ((4, 6), _snnk),
    "TempNet": ((4, 6), _tempnet),
    "PreNormDecoderBlock": ((2, 5, 8), _pre_norm_decoder_block),
    "CRReLU": ((4, 6), _crrelu_layer),
    "crrelu": ((4, 6), _crrelu_function),
    "HermiteActivation": ((4, 6), _hermite),
    "InterpolatedActivation": ((4, 6), _interpolated),
    "ZLoss": ((6, 5), _z_loss),
    "LogMeanLoss": ((8, 2), _log_mean),
    "TauDROCrossEntropy": ((6, 6), _tau_dro),
    "AdamP": ((6, 4), _optimizer_run("AdamP")),
    "SGDP": ((6, 4), _optimizer_run("SGDP")),
}
OPTIMIZERS = ("AdamP", "SGDP")


def public_components():
    """Every public class and function the catalogue must cover."""
    return sorted(set(CONSTRUCTORS) - NOT_COMPONENTS)
