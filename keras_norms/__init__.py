"""keras-norms: research normalization layers for Keras 3, on TensorFlow, JAX and PyTorch."""

from keras_norms import activations, backend, layers, losses, ops, optimizers, parametrization, surgery, testing
from keras_norms.registry import get, names

__version__ = "0.1.0.dev0"

__all__ = [
    "activations",
    "backend",
    "get",
    "layers",
    "losses",
    "names",
    "ops",
    "optimizers",
    "parametrization",
    "surgery",
    "testing",
]
