"""Fast paths that call torch's own fused kernels (registered for the torch backend only)."""

from keras_norms.backend import register
from keras_norms.ops.dtypes import upcast


@register("rms_normalization", backends=("torch",))
def rms_normalization(x, axis, epsilon, gamma=None):
    """`keras_norms.ops.rms_normalization` over trailing axes (the op checks) by `F.rms_norm`.

    One kernel on CUDA, the gain included (as `keras.layers.RMSNormalization` does on torch);
    statistics in float32 at least. `gamma` broadcasts against `x`: it is reshaped to the
    normalized axes' shape.
    """
    import torch.nn.functional as F

    x = upcast(x)
    count = 1 if isinstance(axis, int) else len(axis)
    normalized_shape = tuple(x.shape[len(x.shape) - count :])
    if gamma is not None:
        gamma = gamma.to(x.dtype).reshape(normalized_shape)
    return F.rms_norm(x, normalized_shape, weight=gamma, eps=epsilon)
