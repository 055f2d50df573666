"""Activation functions and their layers."""

from keras_norms.activations.crrelu import CRReLU, crrelu
from keras_norms.activations.hermite import DualActivationStats, HermiteActivation, dual_activation_stats
from keras_norms.activations.interpolated import InterpolatedActivation

__all__ = [
    "CRReLU",
    "DualActivationStats",
    "HermiteActivation",
    "InterpolatedActivation",
    "crrelu",
    "dual_activation_stats",
]
