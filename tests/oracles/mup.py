"""float64 numpy references for muP: Keras' Adam and SGD updates with a per-variable learning rate.

Keras' Adam (keras/src/optimizers/adam.py): `m += (1 - b1) (g - m)`, `v += (1 - b2) (g^2 - v)`,
`p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`; Keras' SGD with momentum:
`u = momentum u - lr g`, `p += u`. muP's per-variable rate replaces `lr` by `lr * multiplier`.
"""

import numpy as np


def adam(params, grads_per_step, learning_rates, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    params = [np.array(p, dtype=np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, (g, lr) in enumerate(zip(grads, learning_rates)):
            m[i] += (1 - beta_1) * (g - m[i])
            v[i] += (1 - beta_2) * (g * g - v[i])
            params[i] -= lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t) * m[i] / (np.sqrt(v[i]) + epsilon)
    return params


def sgd(params, grads_per_step, learning_rates, momentum=0.0):
    params = [np.array(p, dtype=np.float64) for p in params]
    velocity = [np.zeros_like(p) for p in params]
    for grads in grads_per_step:
        for i, (g, lr) in enumerate(zip(grads, learning_rates)):
            velocity[i] = momentum * velocity[i] - lr * g
            params[i] += velocity[i]
    return params
