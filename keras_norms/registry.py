"""Layers by name, so that examples, benchmarks and model surgery can take a string.

>>> layer = keras_norms.get("evonorm_s0", groups=8)
"""

from typing import Any

import keras

from keras_norms import activations, layers
from keras_norms.search.layer import EvolvedNormAct

_LAYERS: dict[str, type[keras.layers.Layer]] = {
    "afkan_dense": layers.AFKANDense,
    "alpha_batch_norm": layers.AlphaBatchNormalization,
    "cosine_classifier": layers.CosineClassifier,
    "crrelu": activations.CRReLU,
    "fake_layer_norm": layers.FakeLayerNormalization,
    "filter_response_norm": layers.FilterResponseNormalization,
    "hermite_activation": activations.HermiteActivation,
    "interpolated_activation": activations.InterpolatedActivation,
    "evolved": EvolvedNormAct,
    "evonorm_b0": layers.EvoNormB0,
    "evonorm_b1": layers.EvoNormB1,
    "evonorm_b2": layers.EvoNormB2,
    "evonorm_s0": layers.EvoNormS0,
    "evonorm_s1": layers.EvoNormS1,
    "evonorm_s2": layers.EvoNormS2,
    "evonorm_s0a": layers.EvoNormS0a,
    "evonorm_s1a": layers.EvoNormS1a,
    "evonorm_s2a": layers.EvoNormS2a,
    "l2_normalize": layers.L2Normalize,
    "norm_linear": layers.NormLinear,
    "ortho_transform": layers.OrthoTransform,
    "power_norm": layers.PowerNormalization,
    "rms_norm": layers.RMSNormalization,
    "crms_norm": layers.CRMSNormalization,
    "snnk_dense": layers.SNNKDense,
    "temp_net": layers.TempNet,
    "tlu": layers.TLU,
}


def names() -> list[str]:
    """The registered layer names, sorted."""
    return sorted(_LAYERS)


def layer_class(name: str) -> type[keras.layers.Layer]:
    """The class registered as `name` (case-insensitive; `-` or `_`)."""
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string. Received: name={name!r}")
    key = name.lower().replace("-", "_")
    if key not in _LAYERS:
        raise ValueError(f"Unknown layer name: name={name!r}. Expected one of {names()}")
    return _LAYERS[key]


def get(name: str, **kwargs: Any) -> keras.layers.Layer:
    """Builds the layer registered as `name` (case-insensitive; `-` or `_`) with `kwargs`."""
    return layer_class(name)(**kwargs)
