"""The math of keras-norms, as functions of `keras.ops` tensors: one formula, one place."""

from keras_norms.ops.evonorm import evonorm_b0
from keras_norms.ops.evonorm import evonorm_b1
from keras_norms.ops.evonorm import evonorm_b2
from keras_norms.ops.evonorm import evonorm_s
from keras_norms.ops.power_norm import group_scaling
from keras_norms.ops.power_norm import power_normalization
from keras_norms.ops.rms import crms_normalization
from keras_norms.ops.rms import rms_normalization
from keras_norms.ops.statistics import masked_mean_square
from keras_norms.ops.statistics import masked_moments
from keras_norms.ops.statistics import upcast

__all__ = [
    "crms_normalization",
    "evonorm_b0",
    "evonorm_b1",
    "evonorm_b2",
    "evonorm_s",
    "group_scaling",
    "masked_mean_square",
    "masked_moments",
    "power_normalization",
    "rms_normalization",
    "upcast",
]
