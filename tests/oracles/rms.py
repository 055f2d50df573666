"""RMSNorm and CRMSNorm in float64 numpy, from docs/references/normalization.md (RMSNorm, CRMSNorm)."""

import numpy as np


def _affine(y, gamma, beta, zero_centered_gamma):
    if gamma is not None:
        y = y * (1 + gamma if zero_centered_gamma else gamma)
    return y if beta is None else y + beta


def rms_norm(x, axes, epsilon, gamma=None, beta=None, zero_centered_gamma=False):
    """`x / sqrt(mean(x**2, axes) + eps) * gamma + beta`; gamma and beta already broadcastable."""
    y = x / np.sqrt(np.mean(x**2, axis=axes, keepdims=True) + epsilon)
    return _affine(y, gamma, beta, zero_centered_gamma)


def crms_norm(z, epsilon, gamma=None, beta=None, zero_centered_gamma=False):
    """CRMSNorm over the last axis: `z` holds d-1 coordinates of a zero-mean d-vector."""
    d = z.shape[-1] + 1
    mean_square = (np.sum(z**2, axis=-1, keepdims=True) + np.sum(z, axis=-1, keepdims=True) ** 2) / d
    return _affine(z / np.sqrt(mean_square + epsilon), gamma, beta, zero_centered_gamma)


def pre_norm_decoder_block(x, weights, num_heads, norm, epsilon, padding_mask):
    """`PreNormDecoderBlock` with a ReLU MLP: causal self-attention hiding padded keys, then the MLP.

    `weights` holds float64 arrays in Keras layouts: `wq, wk, wv` (d, H, hd), `bq, bk, bv` (H, hd),
    `wo` (H, hd, d), `bo`, `w1, b1, w2, b2`. No query row may have every key hidden.
    """
    normalize = crms_norm if norm == "crms" else (lambda v, eps: rms_norm(v, -1, eps))
    length = x.shape[1]
    visible = np.tril(np.ones((length, length), bool))[None] & padding_mask.astype(bool)[:, None, :]
    h = normalize(x, epsilon)
    q, k, v = (np.einsum("bsd,dhk->bshk", h, weights[f"w{n}"]) + weights[f"b{n}"] for n in "qkv")
    scores = np.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(q.shape[-1])
    scores = np.where(visible[:, None], scores, -np.inf)
    probabilities = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    attended = np.einsum("bhqs,bshk->bqhk", probabilities, v)
    x = x + np.einsum("bqhk,hkd->bqd", attended, weights["wo"]) + weights["bo"]
    h = np.maximum(normalize(x, epsilon) @ weights["w1"] + weights["b1"], 0)
    return x + h @ weights["w2"] + weights["b2"]
