"""`with_residuals(forward, backward)`: a differentiable function that keeps only chosen residuals.

`keras.ops.custom_gradient` lets the backward close over anything the forward computed; on JAX,
`jax.custom_gradient` then moves every part of the backward that does not depend on the upstream
gradient (a sigmoid and its derivative, say) into the forward and stores it, which costs memory
and time. Here the forward returns `(output, residuals)` explicitly and the backward sees only
those residuals, through each backend's own mechanism:

- JAX: `jax.custom_vjp`;
- TensorFlow: `tf.custom_gradient` (the gradient closes over the residuals alone);
- torch: a `torch.autograd.Function` that saves the residuals with `save_for_backward`.

`forward(*inputs) -> (output, residuals)` and `backward(residuals, upstream) -> input gradients`
are written in Keras ops; every input must be a float tensor that gets a gradient. The output may
be a tuple of tensors; `backward` then gets a tuple of upstream gradients, one per output.
"""

import functools

from keras import backend as keras_backend


def with_residuals(forward, backward):
    backend = keras_backend.backend()
    if backend == "jax":
        return _jax(forward, backward)
    if backend == "tensorflow":
        return _tensorflow(forward, backward)
    if backend == "torch":
        return _torch(forward, backward)
    raise NotImplementedError(f"No residual-choosing custom gradient for backend {backend!r}.")


def _jax(forward, backward):
    import jax

    @jax.custom_vjp
    def function(*inputs):
        return forward(*inputs)[0]

    def function_forward(*inputs):
        return forward(*inputs)

    def function_backward(residuals, upstream):
        # The barrier keeps XLA from sharing the backward's recomputation with the forward
        # (common-subexpression elimination), which would store it after all (as jax.checkpoint).
        residuals = jax.lax.optimization_barrier(residuals)
        return tuple(backward(residuals, upstream))

    function.defvjp(function_forward, function_backward)
    return function


def _tensorflow(forward, backward):
    import tensorflow as tf

    @tf.custom_gradient
    def function(*inputs):
        output, residuals = forward(*inputs)

        def gradient(*upstream):
            return list(backward(residuals, upstream if isinstance(output, tuple) else upstream[0]))

        return output, gradient

    return function


def _torch(forward, backward):
    function = _torch_function()
    return lambda *inputs: function.apply(forward, backward, *inputs)


@functools.cache
def _torch_function():
    import torch

    class WithResiduals(torch.autograd.Function):
        @staticmethod
        def forward(ctx, forward, backward, *inputs):
            output, residuals = forward(*inputs)
            ctx.backward = backward
            ctx.save_for_backward(*residuals)
            return output

        @staticmethod
        def backward(ctx, *upstream):
            upstream = upstream if len(upstream) > 1 else upstream[0]
            return (None, None, *ctx.backward(ctx.saved_tensors, upstream))

    return WithResiduals
