"""Keras layers of keras-norms, one file per family; the math lives in `keras_norms.ops`."""

from keras_norms.layers.alpha_batch_norm import AlphaBatchNormalization
from keras_norms.layers.evonorm import (
    EvoNormB0,
    EvoNormB1,
    EvoNormB2,
    EvoNormS0,
    EvoNormS0a,
    EvoNormS1,
    EvoNormS1a,
    EvoNormS2,
    EvoNormS2a,
)
from keras_norms.layers.fake_layer_norm import FakeLayerNormalization
from keras_norms.layers.filter_response import TLU, FilterResponseNormalization
from keras_norms.layers.hyperspherical import CosineClassifier, L2Normalize, add_class_prototypes
from keras_norms.layers.kan import AFKANDense
from keras_norms.layers.normalized_linear import NormLinear, OrthoTransform, compute_orthotrans_basis
from keras_norms.layers.power_norm import PowerNormalization
from keras_norms.layers.random_features import SNNKDense
from keras_norms.layers.rms_norm import CRMSNormalization, RMSNormalization
from keras_norms.layers.temperature import TempNet

__all__ = [
    "AFKANDense",
    "AlphaBatchNormalization",
    "CRMSNormalization",
    "CosineClassifier",
    "EvoNormB0",
    "EvoNormB1",
    "EvoNormB2",
    "EvoNormS0",
    "EvoNormS0a",
    "EvoNormS1",
    "EvoNormS1a",
    "EvoNormS2",
    "EvoNormS2a",
    "FakeLayerNormalization",
    "FilterResponseNormalization",
    "L2Normalize",
    "NormLinear",
    "OrthoTransform",
    "PowerNormalization",
    "RMSNormalization",
    "SNNKDense",
    "TLU",
    "TempNet",
    "add_class_prototypes",
    "compute_orthotrans_basis",
]
