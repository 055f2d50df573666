"""Keras layers of keras-norms, one file per family; the math lives in `keras_norms.ops`."""

from keras_norms.layers.alpha_batch_norm import AlphaBatchNormalization
from keras_norms.layers.evonorm import EvoNormB0
from keras_norms.layers.evonorm import EvoNormB1
from keras_norms.layers.evonorm import EvoNormB2
from keras_norms.layers.evonorm import EvoNormS0
from keras_norms.layers.evonorm import EvoNormS0a
from keras_norms.layers.evonorm import EvoNormS1
from keras_norms.layers.evonorm import EvoNormS1a
from keras_norms.layers.evonorm import EvoNormS2
from keras_norms.layers.evonorm import EvoNormS2a
from keras_norms.layers.fake_layer_norm import FakeLayerNormalization
from keras_norms.layers.filter_response import TLU
from keras_norms.layers.filter_response import FilterResponseNormalization
from keras_norms.layers.hyperspherical import CosineClassifier
from keras_norms.layers.hyperspherical import L2Normalize
from keras_norms.layers.hyperspherical import add_class_prototypes
from keras_norms.layers.kan import AFKANDense
from keras_norms.layers.normalized_linear import NormLinear
from keras_norms.layers.normalized_linear import OrthoTransform
from keras_norms.layers.normalized_linear import compute_orthotrans_basis
from keras_norms.layers.power_norm import PowerNormalization
from keras_norms.layers.random_features import SNNKDense
from keras_norms.layers.rms_norm import CRMSNormalization
from keras_norms.layers.rms_norm import RMSNormalization
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
