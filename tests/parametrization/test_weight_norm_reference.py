"""WeightNormalization against `torch.nn.utils.parametrizations.weight_norm`, in float64, on the torch run."""

import keras
import numpy as np
import pytest

from keras_norms.parametrization import WeightNormalization
from tests.parametrization.test_weight_norm import DENSE_FLOAT64_TOLERANCE, TORCH_TOLERANCE


@pytest.mark.parametrize(
    "kind, tolerance",
    # Keras 3.15's `ops.matmul` computes float64 in float32 (JAX's default without x64), so Dense
    # agrees to float32 rounding only; EinsumDense computes the same map in float64.
    [("einsum_dense", TORCH_TOLERANCE), ("dense", DENSE_FLOAT64_TOLERANCE), ("conv2d", TORCH_TOLERANCE)],
)
def test_matches_torch_weight_norm(kind, tolerance, rng):
    """float64 against torch.nn.utils.parametrizations.weight_norm (dim=0), outputs and gradients."""
    import torch

    if kind == "conv2d":
        module = torch.nn.Conv2d(3, 5, 3, stride=2).double()
        layer, x_keras = keras.layers.Conv2D(5, 3, strides=2, dtype="float64"), rng.standard_normal((2, 7, 7, 3))
        to_torch_input = lambda a: np.transpose(a, (0, 3, 1, 2))
        to_keras_output = lambda a: np.transpose(a, (0, 2, 3, 1))
        to_keras_kernel = lambda w: np.transpose(w, (2, 3, 1, 0))  # (out, in, kh, kw) -> (kh, kw, in, out)
    else:
        module = torch.nn.Linear(4, 5).double()
        if kind == "dense":
            layer = keras.layers.Dense(5, dtype="float64")
        else:
            layer = keras.layers.EinsumDense("ab,bc->ac", output_shape=5, bias_axes="c", dtype="float64")
        x_keras = rng.standard_normal((6, 4))
        to_torch_input = to_keras_output = lambda a: a
        to_keras_kernel = lambda w: np.transpose(w)  # (out, in) -> (in, out)
    reference = torch.nn.utils.parametrizations.weight_norm(module, dim=0)
    g_torch, v_torch = reference.parametrizations.weight.original0, reference.parametrizations.weight.original1
    with torch.no_grad():
        g_torch.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, g_torch.shape)))
        v_torch.copy_(torch.from_numpy(rng.standard_normal(v_torch.shape)))
    wrapper = WeightNormalization(layer, data_init=False)
    wrapper.build(x_keras.shape)
    wrapper.g.assign(g_torch.detach().numpy().reshape(-1))
    wrapper.v.assign(to_keras_kernel(v_torch.detach().numpy()))
    wrapper.layer.bias.assign(reference.bias.detach().numpy())

    x_torch = torch.from_numpy(to_torch_input(x_keras)).requires_grad_(True)
    y_torch = reference(x_torch)
    upstream = rng.standard_normal(tuple(y_torch.shape))
    dx_torch, dg_torch, dv_torch = torch.autograd.grad(y_torch, [x_torch, g_torch, v_torch], torch.from_numpy(upstream))

    # torch's own autograd on the Keras side too (vjp_numpy sums its loss in float32).
    x = torch.from_numpy(x_keras).requires_grad_(True)
    y = wrapper(x)
    sources = [x, wrapper.g.value, wrapper.v.value]
    dx, dg, dv = torch.autograd.grad(y, sources, torch.from_numpy(to_keras_output(upstream)))
    numpy = lambda tensor: tensor.detach().numpy()
    references = {
        "outputs": to_keras_output(numpy(y_torch)),
        "inputs": to_keras_output(numpy(dx_torch)),
        "g": numpy(dg_torch).reshape(-1),
        "v": to_keras_kernel(numpy(dv_torch)),
    }
    for name, got in {"outputs": numpy(y), "inputs": numpy(dx), "g": numpy(dg), "v": numpy(dv)}.items():
        assert got.dtype == np.float64, name
        np.testing.assert_allclose(got, references[name], rtol=tolerance, atol=tolerance, err_msg=name)


# weight_normalize, reparametrize, fold_reparametrizations
