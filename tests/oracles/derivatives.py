"""Exact derivatives of the float64 oracles by complex-step differentiation.

For an analytic `f`, `f(a + i*h*e_k).imag / h == df/da_k + O(h**2)` with no subtractive
cancellation, so `h = 1e-30` gives derivatives exact to float64 rounding.
"""

import numpy as np

_STEP = 1e-30


def complex_step_vjp(function, arrays, upstream):
    """Gradients of `sum(function(*arrays) * upstream)` with respect to each of `arrays`."""
    arrays = [np.asarray(a, dtype=np.complex128) for a in arrays]
    gradients = []
    for index, array in enumerate(arrays):
        gradient = np.zeros(array.shape)
        for position in np.ndindex(array.shape):
            perturbed = array.copy()
            perturbed[position] += 1j * _STEP
            inputs = arrays[:index] + [perturbed] + arrays[index + 1 :]
            gradient[position] = np.sum(function(*inputs).imag * upstream) / _STEP
        gradients.append(gradient)
    return gradients
