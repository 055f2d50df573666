"""Loss formulas: Z-loss, the log of a mean logistic loss, and the DRO loss of TempNet."""

from keras import ops

from keras_norms.ops.dtypes import upcast
from keras_norms.ops.statistics import masked_moments
from keras_norms.ops.types import Tensor

# Below this, log(softplus(u)) = u to float32 and float64 precision, and softplus(u) underflows.
_LOG_SOFTPLUS_LINEAR_BELOW = -20.0


def _take_label(values, labels):
    labels = ops.expand_dims(ops.cast(labels, "int32"), -1)
    return ops.squeeze(ops.take_along_axis(values, labels, axis=-1), -1)


def z_loss(labels: Tensor, logits: Tensor, a: float, b: float, epsilon: float) -> Tensor:
    """Z-loss (de Brebisson & Vincent, arXiv 1604.08859): `softplus(a * (b - z_label)) / a`.

    `z = (o - mean(o)) / sqrt(var(o) + epsilon)` over the last axis (population variance), so the
    loss is invariant to `o -> alpha * o + beta` (alpha > 0) up to `epsilon`, which keeps the
    gradient finite when all logits are equal. Returns one loss per position, in float32 (float64
    for float64 logits).
    """
    logits = upcast(logits)
    mean, variance, _ = masked_moments(logits, (len(logits.shape) - 1,))
    z = (logits - mean) * ops.rsqrt(variance + epsilon)
    return ops.softplus(a * (b - _take_label(z, labels))) / a


def log_softplus(u: Tensor) -> Tensor:
    """`log(softplus(u))` without underflow: equal to `u` below -20, where softplus(u) = exp(u)."""
    linear = u < _LOG_SOFTPLUS_LINEAR_BELOW
    safe = ops.where(linear, _LOG_SOFTPLUS_LINEAR_BELOW, u)
    return ops.where(linear, u, ops.log(ops.softplus(safe)))


def log_mean_logistic_loss(labels: Tensor, logits: Tensor) -> Tensor:
    """`log(mean_i log(1 + exp(-m_i)))`, `m_i = (2 y_i - 1) * logit_i`, for any margin size.

    Computed as `logsumexp_i(log_softplus(-m_i)) - log(n)`: the mean loss of a separable problem
    underflows long before its logarithm does. Labels are 0/1; every element counts as a sample.
    """
    logits = upcast(logits)
    # (n,) labels against (n, 1) logits, as a Dense(1) gives: one label per logit.
    labels = ops.reshape(ops.cast(labels, logits.dtype), ops.shape(logits))
    margins = (2.0 * labels - 1.0) * logits
    log_losses = ops.reshape(log_softplus(-margins), (-1,))
    count = ops.cast(ops.shape(log_losses)[0], logits.dtype)
    return ops.logsumexp(log_losses) - ops.log(count)


def tau_dro_cross_entropy(labels: Tensor, logits: Tensor, tau: Tensor, rho: float, log_vocab_size: float) -> Tensor:
    """KL-DRO cross-entropy of TempNet (Qiu et al., ICML 2024), one loss per position.

    For V logits::

        tau * CE(logits / tau, label) + (rho - log V) * tau
            = -logit_label + tau * log(mean_j exp(logit_j / tau)) + rho * tau

    `tau` has one value per position (a trailing axis of 1 is allowed); gradients reach it.
    """
    logits = upcast(logits)
    tau = upcast(tau)
    if len(tau.shape) == len(logits.shape):
        tau = ops.squeeze(tau, -1)
    log_normalizer = ops.logsumexp(logits / ops.expand_dims(tau, -1), axis=-1)
    cross_entropy = log_normalizer - _take_label(logits, labels) / tau
    return tau * cross_entropy + (rho - log_vocab_size) * tau
