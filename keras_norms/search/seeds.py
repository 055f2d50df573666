"""Named seed genomes: BN+ReLU and the six EvoNorms of the paper, as points of the search space.

Each is exact: `EvolvedNormAct(SEEDS[name])` computes what the hand-written layer computes
(tests/search/test_seeds.py checks outputs, gradients and moving statistics on every backend).

- `bn_relu`: `relu(v1 * (x - mean_b) / sqrt(var_b + eps) + v0)` with `max(., zero)` as the ReLU,
  `v1`/`v0` in the roles of BatchNormalization's `gamma`/`beta`; equal to
  `BatchNormalization` + `ReLU` when the layer's own affine is off (`center=False, scale=False`),
  or at its initial values.
- `evonorm_b1`: the constant 1 of `(x + 1)` is `exp(zero)`; B1 has no trainable `v`.
"""

from keras_norms.search.genome import Genome, parse

SEED_TEXTS: dict[str, str] = {
    "bn_relu": "max(add(mul(v1, div(add(x, neg(mean_batch(x))), sqrt(variance_batch(x)))), v0), zero)",
    "evonorm_b0": "div(x, max(sqrt(variance_batch(x)), add(mul(v1, x), sqrt(variance_instance(x)))))",
    "evonorm_b1": "div(x, max(sqrt(variance_batch(x)), mul(add(x, exp(zero)), sqrt(mean_square_instance(x)))))",
    "evonorm_b2": "div(x, max(sqrt(variance_batch(x)), add(sqrt(mean_square_instance(x)), neg(x))))",
    "evonorm_s0": "div(mul(x, sigmoid(mul(v1, x))), sqrt(variance_group(x)))",
    "evonorm_s1": "div(mul(x, sigmoid(x)), sqrt(variance_group(x)))",
    "evonorm_s2": "div(mul(x, sigmoid(x)), sqrt(mean_square_group(x)))",
}

SEEDS: dict[str, Genome] = {name: parse(text) for name, text in SEED_TEXTS.items()}
