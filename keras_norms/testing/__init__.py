"""Test utilities for keras-norms components, usable for any Keras layer on jax, tensorflow and torch."""

from keras_norms.backend.autodiff import gradient_numpy, vjp_function, vjp_numpy
from keras_norms.testing.layer_checker import check_layer
from keras_norms.testing.serialization import check_serialization

__all__ = ["check_layer", "check_serialization", "gradient_numpy", "vjp_function", "vjp_numpy"]
