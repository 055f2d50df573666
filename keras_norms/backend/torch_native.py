"""Fast paths that call torch's own fused kernels (registered for the torch backend only)."""

from keras_norms.backend import register
from keras_norms.ops.dtypes import upcast


@register("rms_normalization", backends=("torch",))
def rms_normalization(x, axes, epsilon, gamma=None):
    """`x * rsqrt(mean(x**2, axes) + epsilon) [* gamma]` by `torch.nn.functional.rms_norm`.

    One kernel on CUDA, the gain included (as `keras.layers.RMSNormalization` does on torch).
    `axes` must be the trailing axes of `x` (the layer checks) and `gamma` their shape; statistics
    in float32 at least.
    """
    import torch.nn.functional as F

    x = upcast(x)
    if gamma is not None:
        gamma = gamma.to(x.dtype)
    return F.rms_norm(x, tuple(x.shape[a] for a in axes), weight=gamma, eps=epsilon)
