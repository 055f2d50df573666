"""Forward and backward passes of a Keras layer by the current backend's own autodiff.

Keras 3 has no backend-neutral `grad`, so tests (against float64 oracles), benchmarks
(forward+backward timing) and the search's stability protocol share this one helper instead of
each writing three. `keras_norms.testing` re-exports it.
"""

import inspect

import keras
import numpy as np
from keras import ops


def vjp_function(layer, training=True, jit=False, mask=None):
    """Returns `f(x, upstream) -> (outputs, input_gradient, weight_gradients)`.

    The gradients are those of `sum(outputs * upstream) + sum(layer.losses)` (the losses the
    layer adds in the call, as `model.fit` counts them) with respect to `x` and to
    `layer.trainable_variables` (in that order), computed by `jax.grad`, `tf.GradientTape` or
    `torch.autograd`. With `jit=True` the pass is compiled: `jax.jit`, `tf.function` with XLA,
    `torch.compile`. State the layer updates in the pass (moving statistics) is written back.
    `layer` may be any built Keras layer or model; `mask`, if given, is passed to its call.
    """
    call_parameters = inspect.signature(layer.call).parameters
    # stateless_call forwards keyword arguments as given; only pass those `call` takes.
    call_kwargs = {"training": training} if "training" in call_parameters else {}
    if mask is not None:
        call_kwargs["mask"] = mask
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_vjp(layer, call_kwargs, jit)
    if backend == "tensorflow":
        return _tensorflow_vjp(layer, call_kwargs, jit)
    if backend == "torch":
        return _torch_vjp(layer, call_kwargs, jit)
    raise ValueError(f"vjp_function supports jax, tensorflow and torch. Received backend={backend!r}")


def _loss(outputs, upstream, added_losses=()):
    loss = ops.sum(ops.cast(outputs, "float32") * ops.cast(upstream, "float32"))
    for added in added_losses:
        loss = loss + ops.cast(added, "float32")
    return loss


def _jax_vjp(layer, call_kwargs, jit):
    import jax

    def loss_fn(x, trainable, non_trainable, upstream):
        outputs, non_trainable, losses = layer.stateless_call(
            trainable, non_trainable, x, return_losses=True, **call_kwargs
        )
        return _loss(outputs, upstream, losses), (outputs, non_trainable)

    grad_fn = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
    if jit:
        grad_fn = jax.jit(grad_fn)

    def f(x, upstream):
        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]
        (_, (outputs, new_state)), (dx, dweights) = grad_fn(x, trainable, non_trainable, upstream)
        for variable, value in zip(layer.non_trainable_variables, new_state):
            variable.assign(value)
        return outputs, dx, list(dweights)

    if jit:  # for memory_analysis(): f.lower(x, upstream).compile()
        # jax.jit's wrapper has `.lower`; mypy sees `value_and_grad`'s plain Callable type.
        lower = grad_fn.lower  # type: ignore[attr-defined]
        f.lower = lambda x, upstream: lower(  # type: ignore[attr-defined]
            x,
            [v.value for v in layer.trainable_variables],
            [v.value for v in layer.non_trainable_variables],
            upstream,
        )
    return f


def _tensorflow_vjp(layer, call_kwargs, jit):
    import tensorflow as tf

    def f(x, upstream):
        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, **call_kwargs)
            loss = _loss(outputs, upstream, layer.losses)
        sources = [x] + [v.value for v in layer.trainable_variables]
        dx, *dweights = tape.gradient(loss, sources)
        return outputs, dx, dweights

    return tf.function(f, jit_compile=True) if jit else f


def _torch_vjp(layer, call_kwargs, jit):
    import torch

    def forward(x):
        return layer(x, **call_kwargs)

    if jit:
        forward = torch.compile(forward)

    def f(x, upstream):
        x = ops.convert_to_tensor(x).detach().requires_grad_(True)
        outputs = forward(x)
        weights = [v.value for v in layer.trainable_variables]
        loss = _loss(outputs, upstream, layer.losses)
        dx, *dweights = torch.autograd.grad(loss, [x] + weights)
        return outputs, dx, dweights

    return f


def vjp_numpy(layer, x, upstream, training=True, mask=None):
    """`vjp_function` evaluated once, eagerly, with every result as a numpy array."""
    outputs, dx, dweights = vjp_function(layer, training=training, mask=mask)(
        ops.convert_to_tensor(x), ops.convert_to_tensor(upstream)
    )
    to_numpy = ops.convert_to_numpy
    return to_numpy(outputs), to_numpy(dx), [np.asarray(to_numpy(g)) for g in dweights]


def gradient_numpy(function, *arrays):
    """`function(*tensors)` (a scalar) and its gradients with respect to each array, as numpy.

    For checking functions that are not layers (losses) by the backend's own autodiff.
    """
    backend = keras.backend.backend()
    tensors = [ops.convert_to_tensor(a) for a in arrays]
    if backend == "jax":
        import jax

        value, gradients = jax.value_and_grad(function, argnums=tuple(range(len(tensors))))(*tensors)
    elif backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            for tensor in tensors:
                tape.watch(tensor)
            value = function(*tensors)
        gradients = tape.gradient(value, tensors)
    elif backend == "torch":
        import torch

        tensors = [t.detach().requires_grad_(True) for t in tensors]
        value = function(*tensors)
        gradients = torch.autograd.grad(value, tensors)
    else:
        raise ValueError(f"gradient_numpy supports jax, tensorflow and torch. Received {backend!r}")
    to_numpy = ops.convert_to_numpy
    return float(to_numpy(value)), [np.asarray(to_numpy(g), dtype=np.float64) for g in gradients]
