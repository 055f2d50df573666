"""PowerNorm in float64 numpy, from docs/references/normalization.md, section 'PowerNorm' (the authors' code).

Layout (batch, time, channels); `mask` is (batch, time), True for valid tokens (the code's
`pad_mask` is its negation, time-major).
"""

import numpy as np

GROUP_SCALING_EPSILON = 1e-5


def group_scaling(x, groups):
    """Returns `(xs, r)`: `xs = x * r`, `r = 1 / sqrt(mean_group(x**2) + 1e-5)` per token and group."""
    grouped = x.reshape(*x.shape[:-1], groups, -1)
    r = 1.0 / np.sqrt(np.mean(grouped**2, axis=-1, keepdims=True) + GROUP_SCALING_EPSILON)
    r = np.broadcast_to(r, grouped.shape).reshape(x.shape)
    return x * r, r


def group_scaling_backward(xs, r, dxs, groups):
    """`dX = r * (dxs - xs * mean_group(dxs * xs))`: ordinary autodiff through GroupScaling."""
    product = (dxs * xs).reshape(*xs.shape[:-1], groups, -1)
    group_mean = np.broadcast_to(product.mean(axis=-1, keepdims=True), product.shape).reshape(xs.shape)
    return r * (dxs - xs * group_mean)


class PowerNorm:
    """`MaskPowerNorm` with its state: `running_phi`, `ema_gz` and `iters`."""

    def __init__(self, channels, weight, bias, *, eps, alpha_fwd, alpha_bkw, warmup_iters, groups):
        self.weight, self.bias = weight.astype(np.float64), bias.astype(np.float64)
        self.eps, self.alpha_fwd, self.alpha_bkw = eps, alpha_fwd, alpha_bkw
        self.warmup_iters, self.groups = warmup_iters, groups
        self.running_phi = np.ones(channels)
        self.ema_gz = np.zeros(channels)
        self.iters = 0

    def train_step(self, x, mask, gy):
        """Forward in training mode and the approximate backward for upstream `gy`.

        Returns `(y, dx, dweight, dbias)` and updates the state as the code does.
        """
        xs, r = group_scaling(x, self.groups)
        self.iters += 1
        valid = xs[mask]  # (valid tokens, channels)
        psi2 = np.mean(valid**2, axis=0)
        phi = psi2 if self.iters <= self.warmup_iters else self.running_phi
        z = xs / np.sqrt(phi + self.eps)
        y = self.weight * z + self.bias
        if self.iters < self.warmup_iters:
            self.running_phi = self.running_phi * (self.iters - 1) / self.iters + psi2 / self.iters
        self.running_phi = self.alpha_fwd * self.running_phi + (1 - self.alpha_fwd) * psi2

        g = gy * self.weight
        approximate = g - (1 - self.alpha_bkw) * self.ema_gz * z
        dxs = approximate / np.sqrt(psi2 + self.eps)
        self.ema_gz = self.ema_gz + np.mean(approximate * z, axis=(0, 1))
        dweight = np.sum(gy * z, axis=(0, 1))
        dbias = np.sum(gy, axis=(0, 1))
        return y, group_scaling_backward(xs, r, dxs, self.groups), dweight, dbias

    def inference(self, x):
        xs, _ = group_scaling(x, self.groups)
        return self.weight * xs / np.sqrt(self.running_phi + self.eps) + self.bias
