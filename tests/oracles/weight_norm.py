"""Float64 oracle of weight normalization (arXiv 1602.07868) with its analytic gradients.

Kernels in Keras' layout: Dense `(in, out)`, Conv2D `(kh, kw, in, out)`, Conv2DTranspose
`(kh, kw, out, in)`; images channels-last; `"valid"` padding, no dilation.

Backward pass of `w = g * v / ||v||` (the norm over every axis but the output one), given the
gradient `dw` of the kernel, with `u = v / ||v||`:

    dg = sum_{other axes}(dw * u)
    dv = g / ||v|| * (dw - u * dg)

(the paper's equation 3: the gradient of `v` is the kernel gradient scaled by `g / ||v||` with its
component along `v` projected out).
"""

import numpy as np


def _per_unit(values, rank, output_axis):
    shape = [1] * rank
    shape[output_axis] = -1
    return np.reshape(values, shape)


def _other_axes(rank, output_axis):
    return tuple(axis for axis in range(rank) if axis != output_axis % rank)


def weight_norm_kernel(v, g, output_axis=-1):
    """`g * v / ||v||`, `g` of shape `(units,)` along `output_axis` of `v`."""
    norm = np.sqrt(np.sum(v**2, axis=_other_axes(v.ndim, output_axis), keepdims=True))
    return _per_unit(g, v.ndim, output_axis) * v / norm


def weight_norm_vjp(v, g, dw, output_axis=-1):
    """`(dg, dv)` from the kernel gradient `dw`."""
    axes = _other_axes(v.ndim, output_axis)
    norm = np.sqrt(np.sum(v**2, axis=axes, keepdims=True))
    u = v / norm
    dg = np.sum(dw * u, axis=axes)
    dv = _per_unit(g, v.ndim, output_axis) / norm * (dw - u * _per_unit(dg, v.ndim, output_axis))
    return dg, dv


# The wrapped layers' linear maps `y = f(x, w)` and their input and kernel gradients.


def dense(x, w):
    return x @ w


def dense_vjp(x, w, dy):
    return dy @ w.T, np.reshape(x, (-1, x.shape[-1])).T @ np.reshape(dy, (-1, dy.shape[-1]))


def _windows(x, kernel_size, strides):
    """`x[n, i*s + a, j*s + b, c]` as an array `(n, out_h, out_w, kh, kw, c)`."""
    (kh, kw), (sh, sw) = kernel_size, strides
    out_h = (x.shape[1] - kh) // sh + 1
    out_w = (x.shape[2] - kw) // sw + 1
    rows = (np.arange(out_h) * sh)[:, None] + np.arange(kh)[None, :]  # (out_h, kh)
    cols = (np.arange(out_w) * sw)[:, None] + np.arange(kw)[None, :]  # (out_w, kw)
    return x[:, rows[:, None, :, None], cols[None, :, None, :], :], rows, cols


def conv2d(x, w, strides=(1, 1)):
    """`y[n, i, j, o] = sum_{a, b, c} x[n, i*s + a, j*s + b, c] * w[a, b, c, o]`."""
    windows, _, _ = _windows(x, w.shape[:2], strides)
    return np.einsum("nijabc,abco->nijo", windows, w)


def conv2d_vjp(x, w, dy, strides=(1, 1)):
    windows, rows, cols = _windows(x, w.shape[:2], strides)
    dw = np.einsum("nijabc,nijo->abco", windows, dy)
    dwindows = np.einsum("nijo,abco->nijabc", dy, w)
    dx = np.zeros_like(x)
    np.add.at(dx, (slice(None), rows[:, None, :, None], cols[None, :, None, :], slice(None)), dwindows)
    return dx, dw


def conv2d_transpose(x, w, strides=(1, 1)):
    """The transpose of `conv2d`: `y[n, i*s + a, j*s + b, o] += x[n, i, j, c] * w[a, b, o, c]`."""
    (kh, kw), (sh, sw) = w.shape[:2], strides
    n, h, width, _ = x.shape
    y = np.zeros((n, (h - 1) * sh + kh, (width - 1) * sw + kw, w.shape[2]), x.dtype)
    rows = (np.arange(h) * sh)[:, None] + np.arange(kh)[None, :]
    cols = (np.arange(width) * sw)[:, None] + np.arange(kw)[None, :]
    np.add.at(
        y,
        (slice(None), rows[:, None, :, None], cols[None, :, None, :], slice(None)),
        np.einsum("nijc,aboc->nijabo", x, w),
    )
    return y


def conv2d_transpose_vjp(x, w, dy, strides=(1, 1)):
    # Reading `dy` at the positions each input pixel wrote to is the convolution of `dy`.
    windows, _, _ = _windows(dy, w.shape[:2], strides)  # (n, h, w, kh, kw, out)
    return np.einsum("nijabo,aboc->nijc", windows, w), np.einsum("nijabo,nijc->aboc", windows, x)
