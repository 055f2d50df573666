"""AdamP and SGDP against the authors' PyPI package `adamp` 0.3.0 (torch), and numpy for timm's SGDP.

Recipe of docs/references/cross_checks.md, section 'AdamP and SGDP': torch-layout Linear (16, 24), Conv (8, 4, 3, 3) and
bias (16,) weights; 50 steps whose gradients are built from the reference's current weights so
that the channel view, the layer view and no projection all fire; the same gradients, in Keras
layout, go to `optimizer.apply`. Tolerance: parameters within 1e-5 of the largest entry after 50
float32 steps, and identical branch counts.

SGDP with the authors' buffer alias is ill-conditioned: the package's own float32 run drifts from
its float64 run by 1.7e-2 (relative) in 50 steps at lr 0.1 with `g + 5p` gradients. The
no-projection gradients here are `g + 0.3p` and SGDP's lr is 0.03, where that self-drift is
1.3e-6, so that a 1e-5 comparison measures the port and not float32 chaos.
"""

import adamp
import keras
import numpy as np
import pytest
import torch

from keras_norms.optimizers import SGDP, AdamP, channel_axes_for_model
from keras_norms.testing import check_serialization
from tests.oracles import adamp as oracle

STEPS = 50
SHAPES = {"dense": (16, 24), "conv": (8, 4, 3, 3), "bias": (16,)}


def to_keras_layout(name, array):
    if name == "dense":
        return array.T
    if name == "conv":
        return array.transpose(2, 3, 1, 0)
    if name == "depthwise":  # torch (in * mult, 1, kh, kw) -> Keras (kh, kw, in, mult)
        kh, kw = array.shape[2:]
        return array.reshape(4, 2, kh, kw).transpose(2, 3, 0, 1)
    return array


def make_gradient(p, mode, rng):
    g = rng.standard_normal(p.shape) * 0.1
    if p.ndim < 2 or mode == "plain":
        return g
    if mode == "no_projection":
        return g + 0.3 * p
    rows = p.shape[0] if mode == "channel" else 1
    p_view, g_view = p.reshape(rows, -1), g.reshape(rows, -1)
    unit = p_view / np.linalg.norm(p_view, axis=1, keepdims=True)
    return (g_view - unit * np.sum(unit * g_view, axis=1, keepdims=True)).reshape(p.shape)


class BranchCounter:
    """Records which view of the reference's projection fired, per parameter."""

    def __init__(self, optimizer, names, delta):
        self.counts = {name: {"channel": 0, "layer": 0} for name in names}
        self.names = {}
        original = optimizer._cosine_similarity

        def counting(x, y, eps, view_func):
            cosine = original(x, y, eps, view_func)
            view = "channel" if view_func == optimizer._channel_view else "layer"
            if cosine.max() < delta / np.sqrt(view_func(y).size(1)):
                self.counts[self.names[y.data_ptr()]][view] += 1
            return cosine

        optimizer._cosine_similarity = counting


def run_against_reference(reference_cls, reference_kwargs, keras_optimizer, rng, shapes=SHAPES):
    params = {name: rng.standard_normal(shape).astype("float32") for name, shape in shapes.items()}
    torch_params = {name: torch.nn.Parameter(torch.tensor(p)) for name, p in params.items()}
    reference = reference_cls(list(torch_params.values()), **reference_kwargs)
    counter = BranchCounter(reference, list(params), reference_kwargs.get("delta", 0.1))
    keras_variables = {name: keras.Variable(to_keras_layout(name, p), name=name) for name, p in params.items()}
    modes = ["channel", "plain", "layer", "no_projection"]
    for step in range(STEPS):
        grads = {}
        for name, param in torch_params.items():
            counter.names[param.data_ptr()] = name
            grads[name] = make_gradient(param.detach().numpy().astype(np.float64), modes[step % 4], rng)
            param.grad = torch.tensor(grads[name].astype("float32"))
        reference.step()
        keras_optimizer.apply(
            [to_keras_layout(name, grads[name].astype("float32")) for name in params],
            list(keras_variables.values()),
        )
    worst = 0.0
    for name, param in torch_params.items():
        expected = to_keras_layout(name, param.detach().numpy().astype(np.float64))
        got = keras.ops.convert_to_numpy(keras_variables[name].value)
        worst = max(worst, np.abs(got - expected).max() / np.abs(expected).max())
    keras_counts = {path.split("/")[-1]: counts for path, counts in keras_optimizer.projection_counts().items()}
    reference_counts = {name: c for name, c in counter.counts.items() if len(shapes[name]) > 1}
    return worst, keras_counts, reference_counts


ADAMP_CASES = {
    "defaults": {},
    "weight_decay": {"weight_decay": 1e-2},
    "nesterov_weight_decay": {"weight_decay": 1e-2, "nesterov": True},
    "betas_delta_wd_ratio": {"betas": (0.8, 0.99), "delta": 0.2, "wd_ratio": 0.5, "weight_decay": 5e-2},
}


@pytest.mark.parametrize("case", ADAMP_CASES)
def test_adamp_matches_the_adamp_package(case, rng):
    kwargs = {"lr": 1e-2, **ADAMP_CASES[case]}
    betas = kwargs.get("betas", (0.9, 0.999))
    optimizer = AdamP(
        learning_rate=kwargs["lr"],
        beta_1=betas[0],
        beta_2=betas[1],
        weight_decay=kwargs.get("weight_decay"),
        nesterov=kwargs.get("nesterov", False),
        delta=kwargs.get("delta", 0.1),
        wd_ratio=kwargs.get("wd_ratio", 0.1),
    )
    worst, counts, reference_counts = run_against_reference(adamp.AdamP, kwargs, optimizer, rng)
    assert worst < 1e-5, f"max difference {worst:.2e} relative to max |p|"
    assert counts == reference_counts
    for name in ("dense", "conv"):  # every branch fired
        assert counts[name]["channel"] > 0 and counts[name]["layer"] > 0
        assert counts[name]["channel"] + counts[name]["layer"] < STEPS


SGDP_CASES = {
    "plain": {},
    "momentum_buffer_alias": {"momentum": 0.9, "weight_decay": 1e-2},
    "nesterov": {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
    "dampening_delta_wd_ratio": {
        "momentum": 0.5,
        "dampening": 0.1,
        "weight_decay": 5e-2,
        "delta": 0.2,
        "wd_ratio": 0.5,
    },
}


@pytest.mark.parametrize("case", SGDP_CASES)
def test_sgdp_matches_the_adamp_package(case, rng):
    kwargs = {"lr": 0.03, **SGDP_CASES[case]}
    optimizer = SGDP(kwargs["lr"], **{k: v for k, v in kwargs.items() if k != "lr"})
    worst, counts, reference_counts = run_against_reference(adamp.SGDP, kwargs, optimizer, rng)
    assert worst < 1e-5, f"max difference {worst:.2e} relative to max |p|"
    assert counts == reference_counts
    assert all(counts[name]["channel"] > 0 and counts[name]["layer"] > 0 for name in counts)


def test_depthwise_and_embedding_channel_axes_match_torch_layouts(rng):
    # torch depthwise weight (in * mult, 1, kh, kw): a channel per (in, mult) pair, Keras axes (2, 3).
    shapes = {"depthwise": (8, 1, 3, 3), "embeddings": (12, 6)}
    optimizer = AdamP(learning_rate=1e-2, weight_decay=1e-2, channel_axes={"depthwise": (2, 3)})
    worst, counts, reference_counts = run_against_reference(
        adamp.AdamP, {"lr": 1e-2, "weight_decay": 1e-2}, optimizer, rng, shapes
    )
    assert worst < 1e-5
    assert counts == reference_counts


@pytest.mark.parametrize("alias", [True, False])
def test_sgdp_buffer_behaviours_match_numpy(alias, rng):
    p = rng.standard_normal((6, 10))
    buf = np.zeros_like(p)
    variable = keras.Variable(p.T.astype("float32"))
    optimizer = SGDP(0.1, momentum=0.9, weight_decay=1e-2, clovaai_buffer_alias=alias)
    for step in range(30):
        g = make_gradient(p, ["channel", "plain", "layer"][step % 3], rng)
        p, buf = oracle.sgdp_step(p, g, buf, 0.1, 0.9, 0.0, False, 1e-2, 0.1, 0.1, 1e-8, alias)
        optimizer.apply([g.T.astype("float32")], [variable])
    got = keras.ops.convert_to_numpy(variable.value).T
    assert np.abs(got - p).max() / np.abs(p).max() < 1e-5


def test_exclude_from_weight_decay_is_honoured(rng):
    kernel = keras.Variable(rng.standard_normal((5, 4)).astype("float32"), name="kernel")
    epsilon = keras.Variable(np.float32(0.01), name="epsilon")
    optimizer = SGDP(0.1, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_names=["epsilon"])
    optimizer.apply([np.zeros((5, 4), "float32"), np.float32(0.0)], [kernel, epsilon])
    assert float(keras.ops.convert_to_numpy(epsilon.value)) == np.float32(0.01)
    # A zero gradient has cosine 0: the projection fires, so the decay is lr * wd * wd_ratio.
    assert not np.allclose(keras.ops.convert_to_numpy(kernel.value), 0)


def test_channel_axes_for_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="renamed")(x)
    x = keras.layers.SeparableConv2D(5, 1, name="separable")(x)
    x = keras.layers.Reshape((16, 5))(x)
    x = keras.layers.MultiHeadAttention(2, 3, name="attention")(x, x)
    x = keras.layers.Dense(3, name="dense")(x)
    tokens = keras.Input((4,), dtype="int32")
    e = keras.layers.Embedding(10, 3, name="embedding")(tokens)
    model = keras.Model([inputs, tokens], [x, e])
    model.build([(None, 8, 8, 3), (None, 4)])
    axes = channel_axes_for_model(model)
    assert axes["conv/kernel"] == (3,)
    assert axes["renamed/kernel"] == (2, 3)
    assert axes["separable/depthwise_kernel"] == (2, 3)
    assert axes["separable/pointwise_kernel"] == (3,)
    assert axes["attention/query/kernel"] == (1, 2)  # (d, heads, head_dim)
    assert axes["attention/attention_output/kernel"] == (2,)  # (heads, head_dim, d)
    assert axes["dense/kernel"] == (1,)
    assert axes["embedding/embeddings"] == (0,)


@pytest.mark.parametrize("optimizer_cls", [AdamP, SGDP])
def test_fit_with_jit_compile(optimizer_cls, rng):
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(20, 8),
            keras.layers.Flatten(),
            keras.layers.Dense(16, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(3),
        ]
    )
    optimizer = optimizer_cls(learning_rate=0.05, weight_decay=1e-3)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    before = [keras.ops.convert_to_numpy(w.value).copy() for w in model.trainable_weights]
    history = model.fit(rng.integers(0, 20, (32, 6)), rng.integers(0, 3, 32), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    for weight, old in zip(model.trainable_weights, before):
        assert not np.array_equal(keras.ops.convert_to_numpy(weight.value), old), weight.path


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: AdamP(beta_1=1.5), ValueError, "beta_1"),
        (lambda: AdamP(channel_axes=3), TypeError, "channel_axes"),
        (lambda: SGDP(0.1, momentum=1.0), ValueError, "momentum"),
        (lambda: SGDP(0.1, nesterov="no"), TypeError, "nesterov"),
        (lambda: SGDP(0.1, delta=-1.0), ValueError, "delta"),
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_serialization():
    check_serialization(AdamP(weight_decay=1e-2, channel_axes={"dense/kernel": [1]}, nesterov=True))
    check_serialization(SGDP(0.1, momentum=0.9, clovaai_buffer_alias=False))
