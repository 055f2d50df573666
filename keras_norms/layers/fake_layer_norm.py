"""FakeLayerNormalization: a LayerNorm that can be switched to divide by a frozen scalar instead.

Paper: Baroni, Khara, Schaeffer, Subkhankulov, Heimersheim, "Transformers Don't Need LayerNorm at
Inference Time", arXiv 2507.02559 (after Heimersheim, "You can remove GPT2's LayerNorm by
fine-tuning", arXiv 2409.13710). Reference: submarat/removing-layer-norm.
"""

from typing import Any

import keras
from keras import ops

from keras_norms.arguments import check_bool, check_epsilon, check_fraction, check_mask, check_positive
from keras_norms.layers.base import build_feature_axis
from keras_norms.ops.dtypes import upcast
from keras_norms.ops.statistics import mask_weights, masked_mean, masked_moments
from keras_norms.ops.types import Shape, Tensor


@keras.saving.register_keras_serializable(package="keras_norms")
class FakeLayerNormalization(keras.layers.Layer):
    """LayerNorm over the last axis ("real") or `(x - mean(x)) / sigma * gamma + beta` ("fake").

    Real mode is `LayerNormalization(epsilon=1e-5)`. While real and training, the layer tracks
    `sigma <- momentum * sigma + (1 - momentum) * mean_tokens(sqrt(var(x) + epsilon))`, the
    reference's `EXP_RECOMPUTE_STD_ON_REAL` mode (its default without that flag reads a global
    std from a precomputed file; this is the running mean of per-token stds, a different number,
    chosen on purpose). Switching to fake (`set_fake()`, or the `LayerNormRemovalSchedule`
    callback) freezes `sigma`: a non-trainable scalar with no gradient. The fake map is linear
    in `x` (centering is kept), so `keras_norms.surgery.export_without_layernorm` folds it into
    the next layer. The mode is a variable, so switching needs no recompilation.

    Args:
        epsilon: Of the real LayerNorm and of the tracked std (1e-5, GPT-2's).
        momentum: Of the tracked `sigma` (0.9, the reference config's).
        sigma: Initial `sigma` (e.g. from a std measured on the original model).
        fake: Start in fake mode.
        **kwargs: Base layer keyword arguments.

    Call arguments:
        inputs: A tensor of rank >= 2, normalized over its last axis.
        training: Python boolean: track `sigma` when True (and the layer is real).
        mask: Optional boolean tensor of the input's shape without the last axis, True for valid
            tokens. Padded tokens are left out of the tracked `sigma` (per-token outputs do not
            depend on it); the mask is passed on to the next layer.

    Example:

    >>> norm = keras_norms.layers.FakeLayerNormalization()
    >>> norm.set_fake()   # from now on: (x - mean) / sigma * gamma + beta
    """

    def __init__(
        self, epsilon: float = 1e-5, momentum: float = 0.9, sigma: float = 1.0, fake: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.epsilon = check_epsilon("epsilon", epsilon)
        self.momentum = check_fraction("momentum", momentum)
        self.sigma_initial = check_positive("sigma", sigma)
        self.fake_initial = check_bool("fake", fake)
        self.supports_masking = True
        self.autocast = False

    def build(self, input_shape: Shape) -> None:
        width = build_feature_axis(self, input_shape)
        self.gamma = self.add_weight(name="gamma", shape=(width,), initializer="ones", autocast=False)
        self.beta = self.add_weight(name="beta", shape=(width,), initializer="zeros", autocast=False)
        self.sigma = self.add_weight(
            name="sigma",
            shape=(),
            initializer=keras.initializers.Constant(self.sigma_initial),
            trainable=False,
            autocast=False,
        )
        self.is_fake = self.add_weight(
            name="is_fake",
            shape=(),
            initializer=keras.initializers.Constant(float(self.fake_initial)),
            trainable=False,
            autocast=False,
        )

    def set_fake(self, fake: bool = True) -> None:
        """Switches the layer to fake (True) or back to real (False) mode."""
        self.is_fake.assign(1.0 if check_bool("fake", fake) else 0.0)

    def call(self, inputs: Tensor, training: bool | None = None, mask: Tensor | None = None) -> Tensor:
        x = upcast(inputs, self.compute_dtype)
        rank = len(x.shape)
        if mask is not None:
            check_mask("FakeLayerNormalization", mask, x.shape, (rank - 1,))
        mean, variance, _ = masked_moments(x, (rank - 1,))
        centered = x - mean
        token_std = ops.sqrt(variance + self.epsilon)
        is_fake = ops.cast(self.is_fake, x.dtype)
        sigma = ops.cast(self.sigma, x.dtype)
        if training:
            # Track sigma only while real (over the valid tokens); a fake layer keeps its frozen value.
            weights = None if mask is None else mask_weights(mask, rank - 1, x.dtype)
            observed = ops.stop_gradient(ops.reshape(masked_mean(token_std, tuple(range(rank)), weights), ()))
            updated = self.momentum * sigma + (1.0 - self.momentum) * observed
            self.sigma.assign(ops.cast(ops.where(is_fake > 0, sigma, updated), self.sigma.dtype))
        denominator = is_fake * ops.stop_gradient(sigma) + (1.0 - is_fake) * token_std
        y = centered / denominator * ops.cast(self.gamma, x.dtype) + ops.cast(self.beta, x.dtype)
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "epsilon": self.epsilon,
                "momentum": self.momentum,
                "sigma": self.sigma_initial,
                "fake": self.fake_initial,
            }
        )
        return config
