"""Keras layers of keras-norms, one file per family; the math lives in `keras_norms.ops`."""

from keras_norms.layers.evonorm import EvoNormB0
from keras_norms.layers.evonorm import EvoNormB1
from keras_norms.layers.evonorm import EvoNormB2
from keras_norms.layers.evonorm import EvoNormS0
from keras_norms.layers.evonorm import EvoNormS0a
from keras_norms.layers.evonorm import EvoNormS1
from keras_norms.layers.evonorm import EvoNormS1a
from keras_norms.layers.evonorm import EvoNormS2
from keras_norms.layers.evonorm import EvoNormS2a
from keras_norms.layers.power_norm import PowerNormalization
from keras_norms.layers.rms_norm import CRMSNormalization
from keras_norms.layers.rms_norm import RMSNormalization

__all__ = [
    "CRMSNormalization",
    "EvoNormB0",
    "EvoNormB1",
    "EvoNormB2",
    "EvoNormS0",
    "EvoNormS0a",
    "EvoNormS1",
    "EvoNormS1a",
    "EvoNormS2",
    "EvoNormS2a",
    "PowerNormalization",
    "RMSNormalization",
]
