"""Float64 numpy AdamP and SGDP from docs/references/optimizers.md (SGDP with and without
the buffer alias).

Torch layout: axis 0 indexes channels. SGDP's `alias=False` is timm's behaviour, which has no
installable reference here (timm needs a CUDA torch build); AdamP is also checked against the
authors' `adamp` package.
"""

import numpy as np


def _cosine(g, p, eps):
    dot = np.abs(np.sum(g * p, axis=1))
    return dot / (np.maximum(np.linalg.norm(g, axis=1), eps) * np.maximum(np.linalg.norm(p, axis=1), eps))


def projection(p, g, u, delta, wd_ratio, eps):
    for rows in (p.shape[0], 1):
        p_view, g_view, u_view = (a.reshape(rows, -1) for a in (p, g, u))
        if _cosine(g_view, p_view, eps).max() < delta / np.sqrt(p_view.shape[1]):
            unit = p_view / (np.linalg.norm(p_view, axis=1, keepdims=True) + eps)
            u_view = u_view - unit * np.sum(unit * u_view, axis=1, keepdims=True)
            return u_view.reshape(p.shape), wd_ratio
    return u, 1.0


def sgdp_step(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, delta, wd_ratio, eps, alias):
    buf = momentum * buf + (1 - dampening) * g
    d = g + momentum * buf if nesterov else buf
    ratio = 1.0
    if p.ndim > 1:
        d, ratio = projection(p, g, d, delta, wd_ratio, eps)
    if alias and not nesterov:
        buf = d
    p = p * (1 - lr * weight_decay * ratio / (1 - momentum)) - lr * d
    return p, buf


def adamp_step(p, g, m, v, step, lr, beta_1, beta_2, eps, weight_decay, delta, wd_ratio, nesterov=False):
    """One AdamP step (`step` counts from 1); returns `(p, m, v)`."""
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    denominator = np.sqrt(v) / np.sqrt(1 - beta_2**step) + eps
    u = (beta_1 * m + (1 - beta_1) * g) / denominator if nesterov else m / denominator
    ratio = 1.0
    if p.ndim > 1:
        u, ratio = projection(p, g, u, delta, wd_ratio, eps)
    p = p * (1 - lr * weight_decay * ratio) - lr / (1 - beta_1**step) * u
    return p, m, v
