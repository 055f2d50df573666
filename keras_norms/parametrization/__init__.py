"""Weight parametrizations: muP (width-transferable hyperparameters) and WeightNormalization."""

from keras_norms.parametrization.coord_check import CoordinateSize, coord_check, plot_coord_check
from keras_norms.parametrization.mup import (
    MuMultiHeadAttention,
    MuReadout,
    WidthShape,
    infer_width_shapes,
    mu_optimizer,
    mup_multipliers,
    set_attention_scale,
    set_base_shapes,
)
from keras_norms.parametrization.weight_norm import WeightNormalization

__all__ = [
    "CoordinateSize",
    "MuMultiHeadAttention",
    "MuReadout",
    "WeightNormalization",
    "WidthShape",
    "coord_check",
    "infer_width_shapes",
    "mu_optimizer",
    "mup_multipliers",
    "plot_coord_check",
    "set_attention_scale",
    "set_base_shapes",
]
