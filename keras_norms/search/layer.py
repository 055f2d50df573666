"""`EvolvedNormAct`: the Keras layer a genome compiles to."""

from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

from keras_norms.arguments import check_bool, check_fraction, check_int
from keras_norms.layers.base import NormalizationBase
from keras_norms.ops.dtypes import upcast
from keras_norms.ops.evolved import evolved_graph, split_aggregate
from keras_norms.ops.types import ConstraintLike, InitializerLike, RegularizerLike, Shape, Tensor
from keras_norms.search.genome import Genome, parse

# Initial moving value of each batch statistic, as Keras' BatchNormalization initializes its own.
_MOVING_INITIALIZERS = {"mean": "zeros", "mean_square": "ones", "variance": "ones"}


@keras.saving.register_keras_serializable(package="keras_norms")
class EvolvedNormAct(NormalizationBase):
    """A normalization-activation layer defined by a genome of the EvoNorm search space.

    `y = graph(x; v0, v1) * gamma + beta`

    `graph` is the genome's DAG of primitives (`keras_norms.search.genome`) over the input `x`, a
    constant zero and the per-channel vectors `v0` (init 0) and `v1` (init 1), each created only
    when the genome uses it. Batch aggregates (`mean_batch`, `mean_square_batch`,
    `variance_batch`) use the current batch in training and keep a moving average for inference,
    as `EvoNormB0` does with its batch variance, synchronized across replicas alike. Statistics
    are in float32 under mixed precision. Paper: Liu, Brock, Simonyan, Le, "Evolving
    Normalization-Activation Layers", arXiv 2004.02967.

    Args:
        genome: A `Genome` or its text form, e.g.
            `"div(x, max(sqrt(variance_batch(x)), add(mul(v1, x), sqrt(variance_instance(x)))))"`
            (EvoNorm-B0); `keras_norms.search.SEEDS` has BN+ReLU and the six EvoNorms.
        axis: The channels axis: -1 for channels-last (default), 1 for channels-first. Inputs
            have rank 3 to 5.
        epsilon: Guards every division and root (see `keras_norms.ops.evolved`).
        groups: Channel groups of the `*_group` aggregates; must divide the channels when the
            genome has one.
        momentum: Keras convention, `moving = momentum * moving + (1 - momentum) * batch`, for
            every batch aggregate (default 0.9 as `EvoNormB0`; Keras' BatchNormalization: 0.99).
        apply_act: If False, skip the graph and return `x * gamma + beta`, as the EvoNorm layers
            do (model surgery uses it for a BatchNormalization no activation follows).
        center, scale: Whether to add `beta` / multiply by `gamma` after the graph.
        synchronized: Batch aggregates over the global batch of a data-parallel step (as
            `EvoNormB0`'s `synchronized`).
        beta_initializer, gamma_initializer, v0_initializer, v1_initializer: Initializers
            (zeros, ones, zeros, ones).
        beta_regularizer, gamma_regularizer, v_regularizer: Optional regularizers (`v_*` for
            both `v0` and `v1`).
        beta_constraint, gamma_constraint, v_constraint: Optional constraints.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A tensor of rank 3 to 5.
        training: Batch aggregates use the batch and update their moving averages when True
            (and the layer is trainable), the moving averages otherwise.
        mask: Optional boolean tensor of the input's shape without the channels axis; masked
            positions are left out of every aggregate over positions.

    Example:

    >>> layer = keras_norms.search.EvolvedNormAct(keras_norms.search.SEEDS["evonorm_b0"])
    >>> layer(keras.random.normal((8, 16, 16, 32)), training=True).shape
    (8, 16, 16, 32)
    """

    def __init__(
        self,
        genome: Genome | str,
        axis: int = -1,
        epsilon: float = 1e-5,
        groups: int = 32,
        momentum: float = 0.9,
        apply_act: bool = True,
        center: bool = True,
        scale: bool = True,
        synchronized: bool = True,
        beta_initializer: InitializerLike = "zeros",
        gamma_initializer: InitializerLike = "ones",
        v0_initializer: InitializerLike = "zeros",
        v1_initializer: InitializerLike = "ones",
        beta_regularizer: RegularizerLike = None,
        gamma_regularizer: RegularizerLike = None,
        v_regularizer: RegularizerLike = None,
        beta_constraint: ConstraintLike = None,
        gamma_constraint: ConstraintLike = None,
        v_constraint: ConstraintLike = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
            **kwargs,
        )
        self.genome = parse(genome)
        self.axis = check_int("axis", axis)
        self.groups = check_int("groups", groups, minimum=1)
        self.momentum = check_fraction("momentum", momentum)
        self.synchronized = check_bool("synchronized", synchronized)
        self.apply_act = check_bool("apply_act", apply_act)
        self.v0_initializer = initializers.get(v0_initializer)
        self.v1_initializer = initializers.get(v1_initializer)
        self.v_regularizer = regularizers.get(v_regularizer)
        self.v_constraint = constraints.get(v_constraint)
        self.v0: keras.Variable | None = None
        self.v1: keras.Variable | None = None
        self.moving: dict[int, keras.Variable] = {}  # node index -> moving batch statistic

    def build(self, input_shape: Shape) -> None:
        rank = len(input_shape)
        channels = self._build_feature_map(input_shape)
        if self.apply_act and self.genome.uses_groups and channels % self.groups:
            divisors = [g for g in range(1, channels + 1) if channels % g == 0]
            raise ValueError(
                f"`groups` must divide the number of channels ({channels}, axis={self.axis}) for the "
                f"genome's group aggregates. Received: groups={self.groups}. Pass groups in {divisors}"
            )
        self._build_affine((channels,))
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={self._channel_axis: channels})
        if not self.apply_act:
            return
        for name, initializer in (("v0", self.v0_initializer), ("v1", self.v1_initializer)):
            if self.genome.uses_input(name):
                variable = self._add_parameter(name, (channels,), initializer, self.v_regularizer, self.v_constraint)
                setattr(self, name, variable)
        for position, node in enumerate(self.genome.nodes):
            statistic, index_set = split_aggregate(node.primitive)
            if index_set == "batch":
                index = 4 + position
                self.moving[index] = self.add_weight(
                    name=f"moving_{statistic}_{index}",
                    shape=(channels,),
                    initializer=_MOVING_INITIALIZERS[statistic],
                    trainable=False,
                    autocast=False,
                    aggregation="mean",  # replicas write the same (synchronized) update
                )

    def call(self, inputs: Tensor, training: bool | None = None, mask: Tensor | None = None) -> Tensor:
        x = upcast(inputs, self.compute_dtype)
        if not self.apply_act:
            return ops.cast(self._affine(x), self.compute_dtype)
        rank = len(x.shape)
        weights = self._position_weights(mask, inputs, x.dtype)
        training = bool(training and self.trainable)
        v0 = self._parameter(self.v0, rank, x.dtype) if self.v0 is not None else ops.zeros((1,) * rank, x.dtype)
        v1 = self._parameter(self.v1, rank, x.dtype) if self.v1 is not None else ops.ones((1,) * rank, x.dtype)
        moving = None if training else {i: self._parameter(v, rank, x.dtype) for i, v in self.moving.items()}
        y, batch_statistics = evolved_graph(
            x,
            [(node.primitive, node.inputs) for node in self.genome.nodes],
            v0=v0,
            v1=v1,
            channel_axis=self._channel_axis,
            groups=self.groups,
            epsilon=self.epsilon,
            moving=moving,
            weights=weights,
            synchronized=self.synchronized,
        )
        # Read every moving value before assigning any (assign last; see DESIGN's torch lesson).
        updates = []
        for index, value in batch_statistics.items():
            variable = self.moving[index]
            current = ops.convert_to_tensor(variable)
            value = ops.cast(ops.reshape(ops.stop_gradient(value), (-1,)), current.dtype)
            updates.append((variable, self.momentum * current + (1.0 - self.momentum) * value))
        for variable, new in updates:
            variable.assign(new)
        return ops.cast(self._affine(y), self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "genome": str(self.genome),
                "axis": self.axis,
                "groups": self.groups,
                "momentum": self.momentum,
                "apply_act": self.apply_act,
                "synchronized": self.synchronized,
                "v0_initializer": initializers.serialize(self.v0_initializer),
                "v1_initializer": initializers.serialize(self.v1_initializer),
                "v_regularizer": regularizers.serialize(self.v_regularizer),
                "v_constraint": constraints.serialize(self.v_constraint),
            }
        )
        return config
