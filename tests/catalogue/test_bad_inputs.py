"""Bad inputs: one row per case, each raising a named error at build or call time.

A row is `(component, arguments, call, error, message fragment)`; `call` gives the input shape,
an optional mask shape, the training flag and, for inputs that only fail on a second call, the
shape of the first. Inputs are random float32, masks all True: only shapes are wrong.
"""

import dataclasses
import re

import numpy as np
import pytest
from keras import ops

from tests.catalogue.components import EXAMPLES, make, public_components


@dataclasses.dataclass(frozen=True)
class Call:
    shape: tuple
    mask: tuple = None
    training: bool = True
    first: tuple = None  # a shape the layer is called on (and built with) first

    def __repr__(self):
        parts = [f"x{self.shape}"] + [f"{k}{v}" for k, v in (("mask", self.mask), ("after", self.first)) if v]
        return "-".join(parts)


EVONORMS = [
    "EvoNormB0",
    "EvoNormB1",
    "EvoNormB2",
    "EvoNormS0",
    "EvoNormS1",
    "EvoNormS2",
    "EvoNormS0a",
    "EvoNormS1a",
    "EvoNormS2a",
]
FEATURE_MAPS = EVONORMS + ["FilterResponseNormalization", "EvolvedNormAct"]
MASK = "mask of the input's shape without axis"


def _feature_map_rows(name):
    groups = {"groups": 4} if name.startswith(("EvoNormS", "Evolved")) else {}
    return [
        (name, groups, Call((4, 8)), ValueError, "rank 3 to 5"),
        (name, groups, Call((2, 3, 3, 3, 3, 8)), ValueError, "rank 3 to 5"),
        (name, {**groups, "axis": 4}, Call((2, 3, 3, 8)), ValueError, "axis=4"),
        (name, {**groups, "axis": 0}, Call((2, 3, 3, 8)), ValueError, "axis=0"),
        (name, {**groups, "axis": -5}, Call((2, 3, 3, 8)), ValueError, "axis=-5"),
        (name, groups, Call((2, 3, 3, 8), mask=(2, 3)), ValueError, MASK),  # rank
        (name, groups, Call((2, 3, 3, 8), mask=(2, 3, 4)), ValueError, MASK),  # size
        (name, groups, Call((2, 3, 3, 8), mask=(3, 3, 3)), ValueError, MASK),  # batch
        (name, groups, Call((2, 3, 3, 8), first=(2, 3, 3, 4)), ValueError, "incompatible"),  # channels
    ]


def _dense_rows(name, arguments=None):
    """Layers whose weights follow the last axis: a batch axis, then the same size on every call."""
    arguments = arguments or {}
    return [
        (name, arguments, Call((6,)), ValueError, "rank >= 2"),
        (name, arguments, Call((2, 5), first=(2, 6)), ValueError, "incompatible"),
    ]


ROWS = [
    *(row for name in FEATURE_MAPS for row in _feature_map_rows(name)),
    ("EvoNormS0", {"groups": 3}, Call((2, 3, 3, 8)), ValueError, "groups=3"),
    ("EvoNormS2a", {"group_size": 3}, Call((2, 3, 3, 8)), ValueError, "group_size=3"),
    ("EvoNormS1", {"groups": 16}, Call((2, 3, 8)), ValueError, "groups=16"),
    ("EvolvedNormAct", {"groups": 3}, Call((2, 3, 3, 8)), ValueError, "groups=3"),
    ("TLU", {}, Call((6,)), ValueError, "rank-1"),
    ("TLU", {"axis": 3}, Call((2, 3, 8)), ValueError, "axis=3"),
    ("TLU", {}, Call((2, 3, 8), first=(2, 3, 6)), ValueError, "incompatible"),
    ("RMSNormalization", {}, Call((8,)), ValueError, "rank-1"),
    ("RMSNormalization", {"axis": 3}, Call((2, 3, 8)), ValueError, "axis=3"),
    ("RMSNormalization", {"axis": [-1, 2]}, Call((2, 3, 8)), ValueError, "repeat"),
    ("RMSNormalization", {}, Call((2, 3, 8), mask=(2,)), ValueError, MASK),
    ("RMSNormalization", {}, Call((2, 3, 8), mask=(2, 4)), ValueError, MASK),
    ("RMSNormalization", {}, Call((2, 3, 8), mask=(3, 3)), ValueError, MASK),
    ("RMSNormalization", {}, Call((2, 3, 6), first=(2, 3, 8)), ValueError, "incompatible"),
    ("RMSNormalization", {"axis": 1}, Call((2, 8), first=(2, 8, 3)), ValueError, "incompatible"),
    ("CRMSNormalization", {"axis": 3}, Call((2, 3, 8)), ValueError, "axis=3"),
    ("CRMSNormalization", {}, Call((2, 3, 8), mask=(2, 4)), ValueError, MASK),
    ("PowerNormalization", {}, Call((2, 3, 3, 8)), ValueError, "(batch, time, features)"),
    ("PowerNormalization", {}, Call((8,)), ValueError, "(batch, time, features)"),
    ("PowerNormalization", {"axis": 0}, Call((2, 3, 8)), ValueError, "axis=0"),
    ("PowerNormalization", {"groups": 3}, Call((2, 3, 8)), ValueError, "groups=3"),
    ("PowerNormalization", {}, Call((2, 3, 8), mask=(2, 3, 8)), ValueError, MASK),
    ("PowerNormalization", {}, Call((2, 3, 8), mask=(2, 4)), ValueError, MASK),
    ("PowerNormalization", {}, Call((2, 3, 8), mask=(3, 3)), ValueError, MASK),
    ("PowerNormalization", {}, Call((2, 3, 8), mask=(2, 4), training=False), ValueError, MASK),
    ("AlphaBatchNormalization", {"axis": 5}, Call((2, 3, 3, 8)), ValueError, "axis=5"),
    ("AlphaBatchNormalization", {"axis": 0}, Call((2, 8)), ValueError, "axis=0"),
    ("AlphaBatchNormalization", {}, Call((2, 3, 3, 8), mask=(2, 3)), ValueError, MASK),
    ("AlphaBatchNormalization", {}, Call((2, 3, 3, 8), mask=(2, 3, 4)), ValueError, MASK),
    ("AlphaBatchNormalization", {}, Call((2, 3, 3, 8), mask=(3, 3, 3)), ValueError, MASK),
    ("FakeLayerNormalization", {}, Call((8,)), ValueError, "rank >= 2"),
    ("FakeLayerNormalization", {}, Call((2, 3, 8), mask=(2,)), ValueError, MASK),
    ("FakeLayerNormalization", {}, Call((2, 3, 8), mask=(2, 4)), ValueError, MASK),
    ("FakeLayerNormalization", {}, Call((2, 3, 8), mask=(3, 3)), ValueError, MASK),
    ("FakeLayerNormalization", {}, Call((2, 3, 6), first=(2, 3, 8)), ValueError, "incompatible"),
    ("L2Normalize", {"axis": 3}, Call((2, 8)), ValueError, "axis=3"),
    ("L2Normalize", {"axis": 0}, Call((2, 8)), ValueError, "axis=0"),
    ("L2Normalize", {}, Call((8,)), ValueError, "rank-1"),
    *_dense_rows("CosineClassifier"),
    *_dense_rows("NormLinear"),
    *_dense_rows("AFKANDense"),
    *_dense_rows("SNNKDense"),
    *_dense_rows("TempNet"),
    ("SNNKDense", {"init_from_kernel": np.ones((5, 3))}, Call((2, 6)), ValueError, "5 input rows"),
    ("OrthoTransform", {}, Call((2, 5)), ValueError, "basis size 4"),
    ("OrthoTransform", {"axis": 5}, Call((2, 4)), ValueError, "axis=5"),
    ("OrthoTransform", {"offset_axes": [3]}, Call((2, 4)), ValueError, "offset_axes=3"),
    ("OrthoTransform", {}, Call((2, 3, 4), first=(2, 4)), ValueError, "incompatible"),
    ("PreNormDecoderBlock", {}, Call((2, 8)), ValueError, "(batch, time, features)"),
]
# Components that take any shape: element-wise activations, losses, optimizers, functions.
SHAPE_FREE = {
    "CRReLU",
    "crrelu",
    "HermiteActivation",
    "InterpolatedActivation",
    "dual_activation_stats",
    "compute_orthotrans_basis",
    "LogMeanLoss",
    "TauDROCrossEntropy",
    "ZLoss",
    "AdamP",
    "SGDP",
}


def _call(layer, call, rng):
    kwargs = {"training": call.training}  # Keras drops it for layers whose call takes none
    if call.mask is not None:
        kwargs["mask"] = ops.convert_to_tensor(np.ones(call.mask, bool))
    x = ops.convert_to_tensor(rng.standard_normal(call.shape).astype("float32"))
    return layer(x, **kwargs)


@pytest.mark.parametrize(
    "component, arguments, call, error, fragment", ROWS, ids=[f"{r[0]}-{r[1]}-{r[2]!r}" for r in ROWS]
)
def test_bad_input_raises_at_build_or_call(component, arguments, call, error, fragment, rng):
    layer = make(component, **arguments)
    if call.first is not None:
        _call(layer, Call(call.first, training=call.training), rng)
    with pytest.raises(error, match=re.escape(fragment)):
        _call(layer, call, rng)


def test_every_public_layer_has_shape_rows():
    covered = {row[0] for row in ROWS}
    missing = set(public_components()) - covered - SHAPE_FREE
    assert not missing, f"add bad-input rows for {sorted(missing)}"
    assert set(EXAMPLES) >= covered
