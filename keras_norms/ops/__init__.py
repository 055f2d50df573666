"""The math of keras-norms, as functions of `keras.ops` tensors: one formula, one place."""

from keras_norms.ops.activations import crrelu
from keras_norms.ops.activations import hermite_series
from keras_norms.ops.activations import interpolate
from keras_norms.ops.dtypes import upcast
from keras_norms.ops.evonorm import evonorm_b0
from keras_norms.ops.evonorm import evonorm_b1
from keras_norms.ops.evonorm import evonorm_b2
from keras_norms.ops.evonorm import evonorm_s
from keras_norms.ops.filter_response import filter_response_normalization
from keras_norms.ops.filter_response import tlu
from keras_norms.ops.kan import afkan_features
from keras_norms.ops.kan import afkan_global_attention
from keras_norms.ops.linear import l2_normalize
from keras_norms.ops.linear import normalized_linear_kernel
from keras_norms.ops.linear import orthogonal_transform
from keras_norms.ops.losses import log_mean_logistic_loss
from keras_norms.ops.losses import log_softplus
from keras_norms.ops.losses import tau_dro_cross_entropy
from keras_norms.ops.losses import z_loss
from keras_norms.ops.power_norm import group_scaling
from keras_norms.ops.power_norm import power_normalization
from keras_norms.ops.projection import project_update
from keras_norms.ops.random_features import relu_random_features
from keras_norms.ops.rms import crms_normalization
from keras_norms.ops.rms import rms_normalization
from keras_norms.ops.statistics import masked_mean_square
from keras_norms.ops.statistics import masked_moments
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
    "group_scaling",
    "hermite_series",
    "interpolate",
    "l2_normalize",
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
