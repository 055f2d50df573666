"""Bad constructor arguments: one row per case, each raising a named error at construction.

A row is `(component, arguments, error, message fragment)`. Rows for numbers and bools are
generated from `NUMBERS` (the domain of every numeric argument) and from the signatures (every
bool argument gets a non-bool), so a component added later is covered as soon as it is listed;
`test_every_public_argument_has_a_domain` fails until it is. The fragment is `name=value` as the
message must print it: the argument and the value received.
"""

import inspect
import math
import re

import pytest

from tests.catalogue.components import CONSTRUCTORS, make, public_components

NAN, INF = math.nan, math.inf
# What each domain rejects, beyond NaN and +-inf: values of the right type, then of the wrong type.
DOMAINS = {
    "finite": ((), ("1e-5",)),
    "positive": ((-1.0, 0.0), ("1e-5",)),
    "epsilon": ((-1.0, 0.0, 1e-45, 1e-21), ("1e-5",)),  # >= 1e-20
    "nonnegative": ((-1.0,), ("1e-5",)),
    "nonzero": ((0.0,), ("1e-5",)),
    "fraction": ((-0.5, 1.5), ("0.5",)),  # [0, 1]
    "fraction_open": ((-0.5, 1.0), ("0.5",)),  # [0, 1)
    "int>=0": ((-1,), (2.5, NAN, True)),
    "int>=1": ((0, -1), (2.5, NAN, True)),
    "int>=2": ((1,), (2.5, NAN)),
    "axis": ((), (1.5, "-1", None)),  # any int; the rank is checked at build time
}

# The domain of every numeric argument of every public component.
NUMBERS = {
    **{f"EvoNorm{v}": {"epsilon": "epsilon", "momentum": "fraction", "axis": "axis"} for v in ("B0", "B1", "B2")},
    **{
        f"EvoNorm{v}": {"epsilon": "epsilon", "groups": "int>=1", "group_size": "int>=1", "axis": "axis"}
        for v in ("S0", "S1", "S2", "S0a", "S1a", "S2a")
    },
    "EvolvedNormAct": {"epsilon": "epsilon", "momentum": "fraction", "groups": "int>=1", "axis": "axis"},
    "RMSNormalization": {"epsilon": "epsilon", "axis": "axis"},
    "CRMSNormalization": {"epsilon": "epsilon", "axis": "axis"},
    "FilterResponseNormalization": {"epsilon": "epsilon", "axis": "axis"},
    "TLU": {"axis": "axis"},
    "PowerNormalization": {
        "epsilon": "epsilon",
        "alpha_fwd": "fraction",
        "alpha_bkw": "fraction",
        "warmup_steps": "int>=0",
        "groups": "int>=1",
        "axis": "axis",
    },
    "AlphaBatchNormalization": {
        "test_weight": "fraction",
        "epsilon": "epsilon",
        "momentum": "fraction",
        "axis": "axis",
    },
    "FakeLayerNormalization": {"epsilon": "epsilon", "momentum": "fraction", "sigma": "positive"},
    "L2Normalize": {"scale": "nonzero", "epsilon": "epsilon", "axis": "axis"},
    "CosineClassifier": {"num_classes": "int>=1", "scale": "positive", "epsilon": "epsilon"},
    "NormLinear": {"units": "int>=1"},
    "OrthoTransform": {"axis": "axis"},
    "AFKANDense": {"units": "int>=1", "grid_size": "int>=1", "spline_order": "int>=0"},
    "SNNKDense": {"units": "int>=1", "num_random_features": "int>=1", "relu_floor": "finite", "seed": "int>=0"},
    "TempNet": {"hidden_units": "int>=1", "tau_min": "positive", "tau_max": "finite", "dropout": "fraction_open"},
    "PreNormDecoderBlock": {
        "num_heads": "int>=1",
        "head_dim": "int>=1",
        "intermediate_dim": "int>=1",
        "dropout": "fraction_open",
        "epsilon": "epsilon",
    },
    "crrelu": {"epsilon": "finite"},
    "InterpolatedActivation": {"alpha": "fraction"},
    "dual_activation_stats": {"tolerance": "nonnegative", "num_points": "int>=2"},
    "compute_orthotrans_basis": {"lag": "int>=2", "min_variance": "nonnegative"},
    "ZLoss": {"a": "positive", "b": "finite", "epsilon": "epsilon"},
    "TauDROCrossEntropy": {"rho": "nonnegative", "vocab_size": "int>=2"},
    "AdamP": {
        "learning_rate": "nonnegative",
        "beta_1": "fraction_open",
        "beta_2": "fraction_open",
        "epsilon": "epsilon",
        "weight_decay": "nonnegative",
        "delta": "nonnegative",
        "wd_ratio": "nonnegative",
    },
    "SGDP": {
        "learning_rate": "nonnegative",
        "momentum": "fraction_open",
        "dampening": "fraction",
        "weight_decay": "nonnegative",
        "epsilon": "epsilon",
        "delta": "nonnegative",
        "wd_ratio": "nonnegative",
    },
}
# Arguments with a number default that are not numbers to check (none yet).
NOT_NUMBERS = {}

# Everything else: enum-like strings, structures and combinations, one row each.
OTHER_ROWS = [
    ("AFKANDense", {"base_activation": "swish2"}, ValueError, "base_activation='swish2'"),
    ("AFKANDense", {"func": "quad3"}, ValueError, "func='quad3'"),
    ("AFKANDense", {"func_norm": "batch"}, ValueError, "func_norm='batch'"),
    ("AFKANDense", {"norm": "group"}, ValueError, "norm='group'"),
    ("CosineClassifier", {"weight_norm": "spectral"}, ValueError, "weight_norm='spectral'"),
    ("CosineClassifier", {"learnable_scale": True}, ValueError, "scale=None"),
    ("PreNormDecoderBlock", {"norm": "layer"}, ValueError, "norm='layer'"),
    ("InterpolatedActivation", {"fn_a": "relu7"}, ValueError, "fn_a='relu7'"),
    ("InterpolatedActivation", {"fn_b": 3}, TypeError, "fn_b=3"),
    ("InterpolatedActivation", {"alpha": 0.0, "trainable_alpha": True}, ValueError, "alpha=0.0"),
    ("LogMeanLoss", {"base": "hinge"}, TypeError, "base='hinge'"),
    ("LogMeanLoss", {"base": 3}, TypeError, "base=3"),
    ("EvoNormB0", {"gamma_initializer": "onez"}, ValueError, "onez"),
    ("EvoNormB1", {"v_initializer": "ones"}, TypeError, "v_initializer"),
    ("EvolvedNormAct", {"genome": "div(x, frob(x))"}, ValueError, "unknown name 'frob'"),
    ("EvolvedNormAct", {"genome": "sqrt(x, x)"}, ValueError, "takes 1 input"),
    ("EvolvedNormAct", {"genome": 3}, TypeError, "Received: 3"),
    ("EvolvedNormAct", {"v1_initializer": "onez"}, ValueError, "onez"),
    ("RMSNormalization", {"axis": "last"}, TypeError, "axis='last'"),
    ("RMSNormalization", {"axis": []}, TypeError, "axis=[]"),
    ("CRMSNormalization", {"axis": [1, 2]}, TypeError, "axis=[1, 2]"),
    ("OrthoTransform", {"basis": [[1.0, 0.0]]}, ValueError, "basis"),
    ("OrthoTransform", {"basis": [[math.nan]]}, ValueError, "basis"),
    ("OrthoTransform", {"offset_axes": 1}, TypeError, "offset_axes=1"),
    ("OrthoTransform", {"offset_axes": [1.5]}, TypeError, "offset_axes=1.5"),
    ("SNNKDense", {"init_from_kernel": [[1.0, 2.0]]}, ValueError, "init_from_kernel"),
    ("HermiteActivation", {"coefficients": []}, ValueError, "coefficients"),
    ("HermiteActivation", {"coefficients": [[0.5]]}, ValueError, "coefficients"),
    ("HermiteActivation", {"coefficients": [0.5, math.nan]}, ValueError, "coefficients[1]=nan"),
    ("HermiteActivation", {"coefficients": [math.inf]}, ValueError, "coefficients[0]=inf"),
    ("HermiteActivation", {"coefficients": ["a"]}, TypeError, "coefficients[0]='a'"),
    ("TempNet", {"tau_min": 2.0, "tau_max": 1.0}, ValueError, "tau_max=1.0"),
    ("dual_activation_stats", {"num_points": 3}, ValueError, "num_points=3"),
    ("dual_activation_stats", {"activation": "tanh"}, ValueError, "coefficients"),
    ("AlphaBatchNormalization", {"renorm": True}, ValueError, "renorm=True"),
    ("AdamP", {"channel_axes": 3}, TypeError, "channel_axes=3"),
    ("SGDP", {"channel_axes": "last"}, TypeError, "channel_axes='last'"),
    ("TauDROCrossEntropy", {"reduction": "average"}, ValueError, "average"),
]


def _number_rows():
    for component, arguments in NUMBERS.items():
        for argument, domain in arguments.items():
            rejected, wrong_type = DOMAINS[domain]
            floating = not domain.startswith("int") and domain != "axis"
            for value in ((NAN, INF, -INF) if floating else ()) + rejected:
                shown = repr(float(value)) if floating else repr(value)
                yield component, {argument: value}, ValueError, f"{argument}={shown}"
            for value in wrong_type:
                yield component, {argument: value}, TypeError, f"{argument}={value!r}"


def _bool_rows():
    for component in public_components():
        for name, parameter in _parameters(component).items():
            if isinstance(parameter.default, bool):
                yield component, {name: "yes"}, TypeError, f"{name}='yes'"


def _parameters(component):
    """The keyword arguments of a component, its keras_norms base classes' included."""
    obj = CONSTRUCTORS[component]
    if not inspect.isclass(obj):
        return dict(inspect.signature(obj).parameters)
    parameters = {}
    for cls in obj.__mro__:
        if cls.__module__.startswith("keras_norms") and "__init__" in vars(cls):
            for name, parameter in inspect.signature(cls.__init__).parameters.items():
                parameters.setdefault(name, parameter)
    return {n: p for n, p in parameters.items() if n not in ("self", "kwargs", "args")}


ROWS = [*_number_rows(), *_bool_rows(), *OTHER_ROWS]


def _id(row):
    component, arguments, _, _ = row
    return f"{component}-" + "-".join(f"{k}={v!r}" for k, v in arguments.items())


@pytest.mark.parametrize("component, arguments, error, fragment", ROWS, ids=[_id(r) for r in ROWS])
def test_bad_argument_raises_at_construction(component, arguments, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        make(component, **arguments)


def test_every_public_argument_has_a_domain():
    """Every argument with a number default (and every required number) is in NUMBERS."""
    missing = []
    for component in public_components():
        for name, parameter in _parameters(component).items():
            number = isinstance(parameter.default, (int, float)) and not isinstance(parameter.default, bool)
            if number and name not in NUMBERS.get(component, {}) and name not in NOT_NUMBERS.get(component, ()):
                missing.append(f"{component}.{name}")
    assert not missing, f"give these arguments a domain in NUMBERS: {missing}"


def test_every_public_component_has_rows():
    covered = {row[0] for row in ROWS}
    assert not set(public_components()) - covered, set(public_components()) - covered
