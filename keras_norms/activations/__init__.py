"""Activation functions and their layers."""

from keras_norms.activations.crrelu import CRReLU
from keras_norms.activations.crrelu import crrelu

__all__ = ["CRReLU", "crrelu"]
