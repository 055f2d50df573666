"""Random-feature maps of SNNK (Sehanobish et al., ICLR 2024, arXiv 2310.13225)."""

from keras import ops

from keras_norms.ops.dtypes import matmul, maximum
from keras_norms.ops.types import Tensor


def relu_random_features(x: Tensor, projection: Tensor, floor: float) -> Tensor:
    """`m**-0.5 * max(x G^T, floor)` for a `(m, d)` projection `G`: features of the arc-cosine kernel.

    `<phi(x), phi(w)>` estimates `E_g[relu(g.x) relu(g.w)]` without bias (for `floor = 0`),
    not `relu(w.x)`.
    """
    num_features = projection.shape[0]
    return maximum(matmul(x, ops.transpose(projection)), floor) * num_features**-0.5
