"""keras-norms: research normalization layers for Keras 3, on TensorFlow, JAX and PyTorch."""

from keras_norms import activations
from keras_norms import losses
from keras_norms import layers
from keras_norms import ops
from keras_norms import optimizers
from keras_norms import surgery
from keras_norms.registry import get
from keras_norms.registry import names

__version__ = "0.1.0.dev0"

__all__ = ["activations", "get", "layers", "losses", "names", "ops", "optimizers", "surgery"]
