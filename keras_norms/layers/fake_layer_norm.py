"""FakeLayerNormalization: a LayerNorm that can be switched to divide by a frozen scalar instead.

Paper: Baroni, Khara, Schaeffer, Subkhankulov, Heimersheim, "Transformers Don't Need LayerNorm at
Inference Time", arXiv 2507.02559 (after Heimersheim, "You can remove GPT2's LayerNorm by
fine-tuning", arXiv 2409.13710). Reference: submarat/removing-layer-norm.
"""

import keras
from keras import ops

from keras_norms.layers.base import check_bool
from keras_norms.layers.base import check_number
from keras_norms.layers.base import last_axis_size
from keras_norms.ops.statistics import upcast


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

    Example:

    >>> norm = keras_norms.layers.FakeLayerNormalization()
    >>> norm.set_fake()   # from now on: (x - mean) / sigma * gamma + beta
    """

    def __init__(self, epsilon=1e-5, momentum=0.9, sigma=1.0, fake=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = check_number("epsilon", epsilon, minimum=0.0)
        self.momentum = check_number("momentum", momentum, minimum=0.0, maximum=1.0)
        self.sigma_initial = check_number("sigma", sigma, minimum=0.0)
        if self.sigma_initial <= 0:
            raise ValueError(f"`sigma` must be > 0. Received: sigma={sigma!r}")
        self.fake_initial = check_bool("fake", fake)
        self.supports_masking = True
        self.autocast = False

    def build(self, input_shape):
        width = last_axis_size(input_shape)
        self.gamma = self.add_weight(name="gamma", shape=(width,), initializer="ones", autocast=False)
        self.beta = self.add_weight(name="beta", shape=(width,), initializer="zeros", autocast=False)
        self.sigma = self.add_weight(
            name="sigma", shape=(), initializer=keras.initializers.Constant(self.sigma_initial),
            trainable=False, autocast=False,
        )
        self.is_fake = self.add_weight(
            name="is_fake", shape=(), initializer=keras.initializers.Constant(float(self.fake_initial)),
            trainable=False, autocast=False,
        )

    def set_fake(self, fake=True):
        """Switches the layer to fake (True) or back to real (False) mode."""
        self.is_fake.assign(1.0 if check_bool("fake", fake) else 0.0)

    def call(self, inputs, training=None):
        x = upcast(inputs)
        mean = ops.mean(x, axis=-1, keepdims=True)
        centered = x - mean
        token_std = ops.sqrt(ops.mean(ops.square(centered), axis=-1, keepdims=True) + self.epsilon)
        is_fake = ops.cast(self.is_fake, x.dtype)
        sigma = ops.cast(self.sigma, x.dtype)
        if training:
            # Track sigma only while real; a fake layer keeps its frozen value.
            observed = ops.stop_gradient(ops.mean(token_std))
            updated = self.momentum * sigma + (1.0 - self.momentum) * observed
            self.sigma.assign(ops.where(is_fake > 0, sigma, updated))
        denominator = is_fake * ops.stop_gradient(sigma) + (1.0 - is_fake) * token_std
        y = centered / denominator * self.gamma + self.beta
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
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
