"""Sums over the replicas of a data-parallel step, on the distribution engine of each backend.

Batch statistics must be reduced over the *global* batch, as sums and counts (never as means of
per-replica means: masks and uneven shards make those wrong). `cross_replica_sum` adds a
per-replica partial sum over all replicas, differentiably; with one replica it returns its input.

- TensorFlow: inside a `tf.distribute` replica context (MirroredStrategy, TPUStrategy, ...) with
  more than one replica, a `ReplicaContext.all_reduce(SUM)`; its gradient is all-reduced too.
- PyTorch: when a `torch.distributed` process group of more than one process is initialized (as
  under DDP), `torch.distributed.nn.functional.all_reduce`, whose backward all-reduces the
  gradient. Every process must then make the same calls (as DDP training does).
- JAX: nothing to do. `keras.distribution` (DataParallel, ModelParallel) compiles one program
  over the global, sharded batch, so a sum over the batch axis is already global: XLA inserts
  the collective.
"""

import warnings

from keras import backend

from keras_norms.ops.types import Tensor


def replica_count() -> int:
    """How many replicas `cross_replica_sum` adds over (1 outside a multi-replica context)."""
    if backend.backend() == "tensorflow":
        import tensorflow as tf

        if tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context():
            return tf.distribute.get_replica_context().num_replicas_in_sync
    elif backend.backend() == "torch":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size()
    return 1


def cross_replica_sum(x: Tensor) -> Tensor:
    """`x` summed over the replicas of the current data-parallel step (see the module docstring)."""
    if replica_count() == 1:
        return x
    if backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, x)
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_reduce

    # The public differentiable all-reduce; torch 2.13 points to a private module instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(x, op=dist.ReduceOp.SUM)
