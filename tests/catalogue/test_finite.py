"""No NaN leaves a documented input range: all-zero and constant inputs, the smallest epsilon.

An epsilon of 0 (refused since: `tests/catalogue/test_bad_arguments.py`) turned all-zero input
into NaN for 14 norms and constant input into inf for EvoNormB2/S0/S1; every epsilon allowed now
keeps outputs and gradients finite.
"""

import numpy as np
import pytest
from keras import ops

from keras_norms.arguments import SMALLEST_EPSILON
from keras_norms.testing import vjp_function
from tests.catalogue.components import EXAMPLES, make, to_float64

CONSTANTS = (0.0, 2.0)
# Layers with an epsilon under a square root or a division, and an input that fits them.
EPSILON_LAYERS = {
    **{f"EvoNorm{v}": {"shape": (2, 3, 3, 8)} for v in ("B0", "B1", "B2")},
    **{f"EvoNorm{v}": {"shape": (2, 3, 3, 8), "groups": 4} for v in ("S0", "S1", "S2", "S0a", "S1a", "S2a")},
    "EvolvedNormAct": {"shape": (2, 3, 3, 8)},
    "RMSNormalization": {"shape": (2, 3, 8)},
    "CRMSNormalization": {"shape": (2, 3, 8)},
    "FilterResponseNormalization": {"shape": (2, 3, 3, 8)},
    "PowerNormalization": {"shape": (2, 3, 8)},
    "AlphaBatchNormalization": {"shape": (4, 8)},
    "FakeLayerNormalization": {"shape": (2, 3, 8)},
    "L2Normalize": {"shape": (4, 8)},
    "CosineClassifier": {"shape": (4, 8), "scale": 2.0},
    "PreNormDecoderBlock": {"shape": (2, 3, 8)},
}


def assert_finite(*tensors):
    for tensor in tensors:
        assert np.all(np.isfinite(to_float64(tensor))), "non-finite values"


@pytest.mark.parametrize("value", CONSTANTS)
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_zero_and_constant_inputs_give_finite_outputs(name, value, rng):
    shape, run = EXAMPLES[name]
    assert_finite(run(ops.convert_to_tensor(np.full(shape, value, "float32")), None, rng).outputs)


@pytest.mark.parametrize("value", CONSTANTS)
@pytest.mark.parametrize("name", sorted(EPSILON_LAYERS))
def test_smallest_epsilon_keeps_outputs_and_gradients_finite(name, value):
    arguments = dict(EPSILON_LAYERS[name])
    shape = arguments.pop("shape")
    layer = make(name, epsilon=SMALLEST_EPSILON, **arguments)
    x = ops.convert_to_tensor(np.full(shape, value, "float32"))
    layer.build(shape)
    outputs, dx, dweights = vjp_function(layer)(x, ops.ones_like(layer(x, training=True)))
    assert_finite(outputs, dx, *dweights)
