"""Activation functions and their layers."""

from keras_norms.activations.crrelu import CRReLU
from keras_norms.activations.crrelu import crrelu
from keras_norms.activations.hermite import DualActivationStats
from keras_norms.activations.hermite import HermiteActivation
from keras_norms.activations.hermite import dual_activation_stats
from keras_norms.activations.interpolated import InterpolatedActivation

__all__ = [
    "CRReLU",
    "DualActivationStats",
    "HermiteActivation",
    "InterpolatedActivation",
    "crrelu",
    "dual_activation_stats",
]
