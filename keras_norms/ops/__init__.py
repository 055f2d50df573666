"""The math of keras-norms, as functions of `keras.ops` tensors: one formula, one place."""

from keras_norms.ops.activations import crrelu, hermite_series, interpolate
from keras_norms.ops.dtypes import upcast
from keras_norms.ops.evonorm import evonorm_b0, evonorm_b1, evonorm_b2, evonorm_s
from keras_norms.ops.filter_response import filter_response_normalization, frn, tlu
from keras_norms.ops.kan import afkan_features, afkan_global_attention
from keras_norms.ops.layer_norm import layer_normalization
from keras_norms.ops.linear import l2_normalize, normalized_linear_kernel, orthogonal_transform
from keras_norms.ops.losses import log_mean_logistic_loss, log_softplus, tau_dro_cross_entropy, z_loss
from keras_norms.ops.power_norm import group_scaling, power_normalization
from keras_norms.ops.projection import project_update
from keras_norms.ops.random_features import relu_random_features
from keras_norms.ops.rms import crms_normalization, rms_normalization
from keras_norms.ops.statistics import masked_mean_square, masked_moments
from keras_norms.ops.temperature import tempnet_temperature

__all__ = [
    "afkan_features",
    "afkan_global_attention",
    "crms_normalization",
    "crrelu",
    "evonorm_b0",
    "evonorm_b1",
    "evonorm_b2",
    "evonorm_s",
    "filter_response_normalization",
    "frn",
    "group_scaling",
    "hermite_series",
    "interpolate",
    "l2_normalize",
    "layer_normalization",
    "log_mean_logistic_loss",
    "log_softplus",
    "masked_mean_square",
    "masked_moments",
    "normalized_linear_kernel",
    "orthogonal_transform",
    "power_normalization",
    "project_update",
    "relu_random_features",
    "rms_normalization",
    "tau_dro_cross_entropy",
    "tempnet_temperature",
    "upcast",
    "z_loss",
    "tlu",
]
