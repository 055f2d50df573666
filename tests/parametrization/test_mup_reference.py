"""muP against Microsoft's `mup` 1.0.0 (torch): the same models, the same steps, on every backend.

The cross-check (docs/parametrization/mup.md): the same MLP and pre-LN Transformer block in torch
(`mup.MuReadout`, `mup.set_base_shapes`, `MuAdam`/`MuSGD`) and in Keras (`MuReadout`,
`MuMultiHeadAttention`, `set_base_shapes`, `mu_optimizer`), base width 64, at widths 128 and 256,
torch's weights copied into Keras, float64 on both sides, the same batches: the per-weight
learning-rate multipliers are identical, and every parameter stays close to torch's over several
steps: within 1e-6 of the parameter's largest entry.

What keeps the comparison about muP and not about float rounding:
- Adam's epsilon sits elsewhere in Keras (added to `sqrt(v)` before the bias correction) than in
  torch (after); the difference changes the step of every small gradient. So the torch side runs
  `MuAdam(impl=KerasAdam)`, mup's own extension point, with Keras' formula (written out below).
- float64 everywhere, torch's default dtype too (its Adam keeps the step count in it). Three
  places stay float32, found here, all in Keras: on torch a float64 `matmul` runs in float32 (the
  64-to-32 dtype rule); on jax, even with x64, a float64 Dense computes in float32 (outputs off by
  3e-8); on tensorflow `ops.cast(0.999, "float64")` goes through float32 (Adam's bias correction
  off by 6e-6 of a step), so Adam's betas here are exact in float32 (0.875, 1 - 2**-10). Adam
  divides each gradient entry by its own size plus epsilon, so a small entry carries its float32
  error amplified into its step (with Keras' default epsilon 1e-7: up to 3e-4 here, by seed);
  epsilon 1e-4 on both sides bounds that.
- On tensorflow, Embedding gradients are IndexedSlices and Keras' Adam updates such a variable
  sparsely ("lazy" Adam: absent rows keep their moments, repeated rows are squared per
  occurrence); every batch holds each token exactly once, where that equals dense Adam.
- The tanh MLP and bias-free attention keep gradients away from zero (a key bias has a zero
  gradient: softmax ignores it), and torch's parameters are copied, not aliased, into Keras (jax
  may share a contiguous numpy buffer, which torch's in-place step would then move too).
"""

import contextlib
import math

import keras
import mup
import numpy as np
import pytest
import torch

from keras_norms import parametrization
from keras_norms.parametrization import MuMultiHeadAttention, MuReadout
from tests.catalogue.test_dtypes import float64_enabled
from tests.parametrization.test_mup import BASE_WIDTH, D_IN, D_OUT, keras_mlp

VOCAB, LENGTH, HEADS = 24, 6, 2
ATTENTION_MULT = math.sqrt(BASE_WIDTH // HEADS)  # muP and standard attention agree at the base width
RELATIVE_TOLERANCE = 1e-6
STEPS = 3  # on torch (float32 matmuls) the Transformer with Adam reaches 9e-7 in 4 steps, 26 runs measured
ADAM_EPSILON = 1e-4  # bounds Adam's amplification of float32 corners (docstring); gradients here are ~1e-2
ADAM_BETAS = (0.875, 1 - 2**-10)  # exact in float32: tensorflow's Keras rounds them through float32


class KerasAdam(torch.optim.Optimizer):
    """torch Adam in Keras' form: `p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta_1, beta_2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["step"] += 1
                t = state["step"]
                state["m"].mul_(beta_1).add_(p.grad, alpha=1 - beta_1)
                state["v"].mul_(beta_2).addcmul_(p.grad, p.grad, value=1 - beta_2)
                alpha = group["lr"] * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
                p.sub_(alpha * state["m"] / (state["v"].sqrt() + group["eps"]))


@contextlib.contextmanager
def floatx(dtype):
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


# ---- the two architectures, in torch (the reference) and in Keras --------------------------------


class TorchMLP(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.hidden_1 = torch.nn.Linear(D_IN, width)
        self.hidden_2 = torch.nn.Linear(width, width)
        self.readout = mup.MuReadout(width, D_OUT)

    def forward(self, x):
        return self.readout(torch.tanh(self.hidden_2(torch.tanh(self.hidden_1(x)))))


class TorchBlock(torch.nn.Module):
    """Token embedding, one pre-LN block (causal attention, GELU MLP), final norm, readout."""

    def __init__(self, width):
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, width)
        self.norm_1, self.norm_2, self.norm_3 = (torch.nn.LayerNorm(width) for _ in range(3))
        self.query, self.key, self.value, self.output = (torch.nn.Linear(width, width, bias=False) for _ in range(4))
        self.up, self.down = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)
        self.readout = mup.MuReadout(width, VOCAB)
        self.head_dim = width // HEADS

    def forward(self, tokens):
        x = self.embedding(tokens)
        h = self.norm_1(x)

        def heads(t):
            return t.reshape(*t.shape[:2], HEADS, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.query(h)), heads(self.key(h)), heads(self.value(h))
        scores = q @ k.transpose(-1, -2) * (ATTENTION_MULT / self.head_dim)  # muP: 1/d, not 1/sqrt(d)
        causal = torch.ones(LENGTH, LENGTH, dtype=torch.bool).tril()
        attended = (scores.masked_fill(~causal, -torch.inf).softmax(-1) @ v).transpose(1, 2).reshape(x.shape)
        x = x + self.output(attended)
        x = x + self.down(torch.nn.functional.gelu(self.up(self.norm_2(x))))
        return self.readout(self.norm_3(x))


def keras_block(width):
    f64 = {"dtype": "float64"}
    tokens = keras.Input((LENGTH,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, width, name="embedding", **f64)(tokens)
    h = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_1", **f64)(x)
    attention = MuMultiHeadAttention(
        HEADS, width // HEADS, attention_mult=ATTENTION_MULT, use_bias=False, name="attention", **f64
    )
    x = keras.layers.Add(**f64)([x, attention(h, h, use_causal_mask=True)])
    h = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_2", **f64)(x)
    h = keras.layers.Dense(4 * width, activation="gelu", name="up", **f64)(h)
    x = keras.layers.Add(**f64)([x, keras.layers.Dense(width, name="down", **f64)(h)])
    h = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_3", **f64)(x)
    return keras.Model(tokens, MuReadout(VOCAB, name="readout", **f64)(h))


def pairs(torch_model, keras_model):
    """(torch parameter, Keras variable, torch -> Keras layout) for every weight."""

    def linear(name, layer):
        module = getattr(torch_model, name)
        return [(module.weight, layer.kernel, lambda w: w.T), (module.bias, layer.bias, lambda w: w)]

    if isinstance(torch_model, TorchMLP):
        return [p for name in ("hidden_1", "hidden_2", "readout") for p in linear(name, keras_model.get_layer(name))]
    width = torch_model.head_dim * HEADS
    attention = keras_model.get_layer("attention")
    result = [(torch_model.embedding.weight, keras_model.get_layer("embedding").embeddings, lambda w: w)]
    for name in ("norm_1", "norm_2", "norm_3"):
        norm, layer = getattr(torch_model, name), keras_model.get_layer(name)
        result += [(norm.weight, layer.gamma, lambda w: w), (norm.bias, layer.beta, lambda w: w)]
    for name, dense in (
        ("query", attention.query_dense),
        ("key", attention.key_dense),
        ("value", attention.value_dense),
    ):
        result.append((getattr(torch_model, name).weight, dense.kernel, lambda w: w.T.reshape(width, HEADS, -1)))
    result.append((torch_model.output.weight, attention.output_dense.kernel, lambda w: w.T.reshape(HEADS, -1, width)))
    for name in ("up", "down", "readout"):
        result += linear(name, keras_model.get_layer(name))
    return result


ARCHITECTURES = {"mlp": (TorchMLP, keras_mlp), "transformer_block": (TorchBlock, keras_block)}
OPTIMIZERS = {
    # (mup optimizer, its kwargs, Keras optimizer)
    "adam": (
        mup.MuAdam,
        {"lr": 1e-2, "betas": ADAM_BETAS, "eps": ADAM_EPSILON, "impl": KerasAdam},
        lambda: keras.optimizers.Adam(1e-2, *ADAM_BETAS, epsilon=ADAM_EPSILON),
    ),
    "sgd": (mup.MuSGD, {"lr": 5e-2, "momentum": 0.9}, lambda: keras.optimizers.SGD(5e-2, momentum=0.9)),
}


def batch(architecture, rng):
    if architecture == "mlp":
        return rng.standard_normal((16, D_IN)), rng.standard_normal((16, D_OUT))
    # Every token exactly once per batch: no embedding row has a zero gradient, and on tensorflow,
    # where Embedding gradients are IndexedSlices, Keras' Adam squares each occurrence separately
    # and leaves absent rows' moments alone (sparse, "lazy" Adam); with one occurrence per row that
    # is dense Adam.
    tokens = rng.permutation(VOCAB)
    return tokens.reshape(4, LENGTH), rng.integers(0, VOCAB, (4, LENGTH))


def torch_loss(architecture, outputs, y):
    if architecture == "mlp":
        return torch.nn.functional.mse_loss(outputs, torch.tensor(y))
    return torch.nn.functional.cross_entropy(outputs.reshape(-1, VOCAB), torch.tensor(y).reshape(-1))


@pytest.mark.parametrize("width", [128, 256])
@pytest.mark.parametrize("optimizer_name", OPTIMIZERS)
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_matches_the_mup_package(architecture, optimizer_name, width, rng, request):
    torch_cls, keras_fn = ARCHITECTURES[architecture]
    mup_optimizer, mup_kwargs, keras_optimizer = OPTIMIZERS[optimizer_name]
    torch.manual_seed(int(rng.integers(2**31)))
    torch.set_default_dtype(torch.float64)
    request.addfinalizer(lambda: torch.set_default_dtype(torch.float32))
    torch_model = torch_cls(width).double()
    mup.set_base_shapes(torch_model, torch_cls(BASE_WIDTH))
    reference = mup_optimizer(torch_model.parameters(), **mup_kwargs)  # impl= is mup's extension point
    group_lr = {id(p): group["lr"] / mup_kwargs["lr"] for group in reference.param_groups for p in group["params"]}

    with float64_enabled(), floatx("float64"):  # else fit's data adapter rounds x and y to float32
        keras_model = keras_fn(width)
        shapes = parametrization.set_base_shapes(keras_model, keras_fn(BASE_WIDTH))
        weights = pairs(torch_model, keras_model)
        assert len(weights) == len(keras_model.trainable_variables)
        for parameter, variable, layout in weights:
            # A copy: jax may alias a contiguous numpy buffer, and torch steps its parameters in place.
            variable.assign(np.array(layout(parameter.detach().numpy())))
        # The per-weight learning rates: mup's parameter groups against our multipliers.
        optimizer = parametrization.mu_optimizer(keras_optimizer(), shapes)
        for parameter, variable, _ in weights:
            assert optimizer.multipliers.get(variable.path, 1.0) == pytest.approx(group_lr[id(parameter)], rel=1e-12)
        assert keras_model.get_layer("readout").width_mult == width / BASE_WIDTH

        loss = "mse" if architecture == "mlp" else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        keras_model.compile(optimizer=optimizer, loss=loss)
        worst = 0.0
        for _ in range(STEPS):
            x, y = batch(architecture, rng)
            reference.zero_grad()
            torch_loss(architecture, torch_model(torch.tensor(x)), y).backward()
            reference.step()
            keras_model.train_on_batch(x, y)
            for parameter, variable, layout in weights:
                expected = layout(parameter.detach().numpy())
                got = keras.ops.convert_to_numpy(variable.value)
                worst = max(worst, float(np.max(np.abs(got - expected)) / np.max(np.abs(expected))))
    assert worst <= RELATIVE_TOLERANCE, f"largest relative difference from mup: {worst:.3g}"
