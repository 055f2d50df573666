"""Argument and input checks shared by every keras-norms component.

Every check raises `TypeError` (wrong kind of value) or `ValueError` (right kind, wrong value)
with a message that names the argument, the value received and what is expected, at
construction or build time, so that nothing fails later inside a backend or silently computes
something else. Numbers must be finite: Python comparisons are False for NaN, so a range check
written as `value < minimum` alone would let `nan` through.

This module sits below `ops`, `layers`, `activations`, `losses` and `optimizers`, and imports
none of them.
"""

import math
import numbers
from collections.abc import Sequence
from typing import Any, TypeVar

_T = TypeVar("_T")


def check_bool(name: str, value: object) -> bool:
    """Returns `value` if it is a bool, or raises naming the argument."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def check_number(
    name: str,
    value: object,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
) -> float:
    """Returns `value` as a float if it is a finite real number in the range, or raises.

    The range is closed by default; `exclusive_minimum` / `exclusive_maximum` open an end
    (`check_number("epsilon", eps, 0.0, exclusive_minimum=True)` asks for `eps > 0`).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    value = float(value)
    low = "-inf" if minimum is None else minimum
    high = "inf" if maximum is None else maximum
    interval = f"{'(' if exclusive_minimum or minimum is None else '['}{low}, {high}"
    interval += ")" if exclusive_maximum or maximum is None else "]"
    too_low = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    too_high = maximum is not None and (value >= maximum if exclusive_maximum else value > maximum)
    if not math.isfinite(value) or too_low or too_high:
        raise ValueError(f"`{name}` must be a finite number in {interval}. Received: {name}={value!r}")
    return value


def check_positive(name: str, value: object) -> float:
    """`check_number(name, value)` with `value > 0`, e.g. an epsilon under a square root."""
    return check_number(name, value, 0.0, exclusive_minimum=True)


# The smallest epsilon allowed. On an all-zero (or constant) input a norm divides by sqrt(eps) and
# its backward pass by sqrt(eps)**3: below ~1e-25 that overflows float32 and NaN comes out; below
# 1.2e-38 eps vanishes in float32 altogether. 1e-20 leaves room (tests/catalogue/test_finite.py).
SMALLEST_EPSILON = 1e-20


def check_epsilon(name: str, value: object) -> float:
    """An epsilon that keeps a square root or a division away from 0: `value >= 1e-20`."""
    return check_number(name, value, SMALLEST_EPSILON)


def check_fraction(name: str, value: object, exclusive_maximum: bool = False) -> float:
    """`check_number(name, value)` in `[0, 1]` (or `[0, 1)`), e.g. a momentum or a rate."""
    return check_number(name, value, 0.0, 1.0, exclusive_maximum=exclusive_maximum)


def check_int(name: str, value: object, minimum: int | None = None) -> int:
    """Returns `value` as an int if it is an integer `>= minimum`, or raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}")
    return int(value)


def check_choice(name: str, value: _T, choices: Sequence[_T]) -> _T:
    """Returns `value` if it is one of `choices`, or raises listing them."""
    if not any(value is choice or (type(value) is type(choice) and value == choice) for choice in choices):
        raise ValueError(f"`{name}` must be one of {tuple(choices)}. Received: {name}={value!r}")
    return value


def normalize_axis(name: str, axis: object, rank: int) -> int:
    """Returns a non-batch `axis` as an index in [1, rank), or raises naming the value and the rank."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"`{name}` must be an int. Received: {name}={axis!r}")
    index = int(axis)
    if not -rank < index < rank or index % rank == 0:
        raise ValueError(
            f"`{name}` must be a non-batch axis of the rank-{rank} input: an int in "
            f"[1, {rank - 1}] or [{1 - rank}, -1]. Received: {name}={axis}"
        )
    return index % rank


def check_min_rank(layer_name: str, input_shape: Sequence[int | None], minimum: int) -> None:
    """Raises unless the input has a batch axis and at least `minimum` axes in all."""
    if len(input_shape) < minimum:
        raise ValueError(
            f"{layer_name} expects inputs of rank >= {minimum} (a batch axis first). "
            f"Received: input_shape={tuple(input_shape)}"
        )


def last_axis_size(input_shape: Sequence[int | None]) -> int:
    """The size of the input's last axis, which a layer's weights depend on; raises if unknown."""
    if len(input_shape) < 2:
        raise ValueError(
            "The input must have a batch axis and a feature axis (rank >= 2). "
            f"Received: input_shape={tuple(input_shape)}"
        )
    size = input_shape[-1]
    if size is None:
        raise ValueError(f"The last axis of the input must be known. Received: input_shape={tuple(input_shape)}")
    return size


def check_mask(layer_name: str, mask: Any, input_shape: Sequence[int | None], feature_axes: Sequence[int]) -> None:
    """Raises unless `mask` has the input's shape without `feature_axes`, where sizes are known.

    Keras masks cover positions (batch, time, space): the input's shape without its channels or
    features axis. Sizes unknown when the layer is traced are not compared.
    """
    expected = [size for axis, size in enumerate(input_shape) if axis not in feature_axes]
    received = list(mask.shape)
    matches = len(received) == len(expected) and all(
        a is None or b is None or a == b for a, b in zip(received, expected)
    )
    if not matches:
        raise ValueError(
            f"{layer_name} expects a mask of the input's shape without axis "
            f"{', '.join(map(str, feature_axes))}: {tuple(expected)}. Received: "
            f"mask.shape={tuple(received)}, inputs.shape={tuple(input_shape)}"
        )
