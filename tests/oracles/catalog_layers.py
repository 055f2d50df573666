"""Float64 numpy oracles of the catalog layers (docs/references/layers.md).

Written from the formulas there (NormLinear, the cosine classifier, AF-KAN, SNNK, TempNet);
analytic in their inputs (branches on real parts) so that complex-step differentiation gives exact
gradients.
"""

import numpy as np


def softplus(x):
    return np.log1p(np.exp(x))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def norm_linear(x, kernel, bias=None):
    positive = softplus(kernel)
    y = x @ (positive / positive.sum(axis=0, keepdims=True))
    return y if bias is None else y + bias


def l2_normalize(x, axis=-1, epsilon=1e-12):
    return x / np.sqrt(np.maximum(np.real(np.sum(x * x, axis=axis, keepdims=True)), epsilon))


def cosine_logits(x, kernel, scale=None):
    if scale is not None:
        x = scale * l2_normalize(x)
    return x @ l2_normalize(kernel, axis=0)


def layer_norm(x, gamma, beta, epsilon):
    """LayerNorm over the last axis (population variance)."""
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def silu(x):
    return x * sigmoid(x)


FUNCTIONS = {
    "quad1": lambda u, v: (u * v) ** 2,
    "quad2": lambda u, v: u * v + u**2 + v**2,
    "sum": lambda u, v: u + v,
    "prod": lambda u, v: u * v,
    "sum_prod": lambda u, v: u + v + u * v,
    "cubic1": lambda u, v: (u + v) * (u**2 + v**2),
    "cubic2": lambda u, v: (u * v) ** 3,
}


def afkan(
    x,
    low,
    high,
    score_kernel,
    score_bias,
    temperature,
    kernel,
    gamma=None,
    beta=None,
    func="quad1",
    func_norm="none",
    activation=silu,
):
    """AF_KANLayer.global_attn for x of shape (B, D); LayerNorm when gamma is given."""
    f = FUNCTIONS[func](activation(x[..., None] - low), activation(high - x[..., None]))
    if func_norm == "global":
        f = f / np.sqrt(np.sum(f * f))
        f = (f - f.real.min()) / (f.real.max() - f.real.min())
    elif func_norm == "per_sample":
        low_f = f.real.min(axis=(-2, -1), keepdims=True)
        f = (f - low_f) / (f.real.max(axis=(-2, -1), keepdims=True) - low_f)
    scores = (f @ score_kernel)[..., 0] + score_bias
    t = temperature if np.real(temperature) > 1 else 1.0
    scores = scores / t
    attention = np.exp(scores - scores.real.max(-1, keepdims=True))
    attention = attention / attention.sum(-1, keepdims=True)
    r = attention * f.sum(-1)
    if gamma is not None:
        r = layer_norm(r, gamma, beta, 1e-5)
    return activation(r) @ kernel


def relu_features(x, projection, floor=0.0):
    z = x @ projection.T
    return np.where(np.real(z) > floor, z, floor) / np.sqrt(projection.shape[0])


def tempnet(z, kernel_1, bias_1, kernel_2, bias_2, log_scale, last_kernel, last_bias, tau_min, tau_max):
    x = z / np.sqrt(np.sum(z * z, -1, keepdims=True))
    h = sigmoid(x @ kernel_1 + bias_1) @ kernel_2 + bias_2
    scaled = h / np.exp(log_scale)
    w = np.exp(scaled - scaled.real.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    d = ((w - 1 / h.shape[-1]) * h) @ last_kernel + last_bias
    return tau_min + (tau_max - tau_min) * sigmoid(d)
