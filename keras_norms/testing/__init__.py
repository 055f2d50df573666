"""Test utilities for keras-norms layers, usable for any Keras layer on jax, tensorflow and torch."""

from keras_norms.testing.autodiff import vjp_function
from keras_norms.testing.autodiff import vjp_numpy
from keras_norms.testing.layer_checker import check_layer

__all__ = ["check_layer", "vjp_function", "vjp_numpy"]
