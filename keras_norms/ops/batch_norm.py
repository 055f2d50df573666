"""Test-time batch-statistics calibration (alpha-BN; You, Li, Zhao, arXiv 2110.04065)."""

from collections.abc import Sequence

from keras_norms.ops.statistics import masked_moments, unbiased_variance
from keras_norms.ops.types import Tensor


def calibrated_moments(
    x: Tensor,
    axes: Sequence[int],
    source_mean: Tensor,
    source_variance: Tensor,
    test_weight: float,
    weights: Tensor | None = None,
    synchronized: bool = False,
) -> tuple[Tensor, Tensor]:
    """`(1 - a) * source + a * test` for the mean and the variance; `a = test_weight`.

    The test statistics are the current batch's over `axes` (masked positions excluded), with the
    *unbiased* variance (`n / (n - 1)`), as the common reference implementation's inner
    `BatchNorm2d(momentum=1)` gives. With one value per channel (`n = 1`) the unbiased variance
    is undefined; the biased one (0) is used instead. `synchronized`: over the global batch of a
    data-parallel step (`masked_moments`).
    """
    mean, variance, count = masked_moments(x, axes, weights, synchronized)
    variance = unbiased_variance(variance, count)
    mean = (1.0 - test_weight) * source_mean + test_weight * mean
    variance = (1.0 - test_weight) * source_variance + test_weight * variance
    return mean, variance
