"""Pallas kernels for JAX on GPU (Triton lowering) and TPU (Mosaic lowering).

Each kernel takes exactly its op's arguments and returns exactly its results (`keras_norms.ops`;
unsupported arguments, e.g. a gain that varies off the normalized axes, go to the op's
reference), computes in float32 inside (float64 stays float64, for the interpreter), and is a
`jax.custom_vjp` whose backward keeps only the inputs and, for EvoNorm-B in training, two
per-channel batch statistics: every per-row, per-sample or per-group statistic is recomputed by
the backward kernel from the tile it reads anyway (arithmetic, no memory traffic). Passes count
the full-size tensors each kernel reads (R) and writes (W); the small statistics (per row, per
(sample, channel), per channel) and their reductions in XLA are not counted.

- `rms_normalization` (over trailing axes, rows `(R, D)`, whole rows per tile):
  `y = x r [* gamma]`, `r = rsqrt(sum(x**2) / D + eps)`. Forward 1 pass (1R 1W). Backward 1 pass
  (2R 1W): `dx = r u - x r**3 sum(u x) / D`, `u = g gamma`, and per-tile partial sums of
  `g x r` for `dgamma`. Keeps `x`, `gamma`.
- `crms_normalization` (the last axis, rows `(R, d)`): `y = z r [* gamma]`,
  `r = rsqrt((sum(z**2) + sum(z)**2) / (d + 1) + eps)`. Forward 1 pass (1R 1W). Backward 1 pass
  (2R 1W): `dz = r u - r**3 (z + sum(z)) sum(u z) / (d + 1)`. Keeps `z`, `gamma`.
- `frn` (`(N, P, C)` or `(N, C, P)`, tiles of one sample's positions and a block of channels):
  `y = x rsqrt(mean_P(x**2) + eps)`, `eps` a float or a tensor that gets its gradient. Forward
  1 pass (1R 1W). Backward 1 pass (2R 1W): `dx = g r - x r**3 sum_P(g x) / P` and per-(sample,
  channel) partials of `deps = -sum(r**3 sum_P(g x)) / 2`. Keeps `x`, `eps`.
- `evonorm_b0`, `evonorm_b1`, `evonorm_b2` (one family, FRN's tiles): `y = x / max(a, right)`,
  `a = sqrt(s2_b + eps)`, right B0 `v x + s`, `s = sqrt(var_i + eps)`; B1 `(x + 1) t`; B2 `t - x`,
  `t = sqrt(m2_i + eps)` (per sample and channel over positions). Training: forward 2 passes
  (statistics, 1R: each sample's mean and variance, from which the batch ones by the law of total
  variance, `s2_b = mean_n(var_i) + var_n(mean_i)`; then 1R 1W); backward 2 passes (the batch
  branch's per-channel `sum(h_a)`, 2R; then `dx`, 2R 1W). Inference: forward 1 pass (1R 1W),
  backward 1 pass (2R 1W). The gradient of `keras_norms.backend.fused.evonorm_b0`, for all three:
  with `d = max(a, right)` and `h = -g x / d**2` split into `h_a` (where `a >= right`: ties go to
  `a`, where autodiff of `maximum` splits them) and `h_r`,
  `dx = g / d + h_r right_x + sum_P(h_r right_s) s_x [+ sum_NP(h_a) (x - mu_b) / (a N P)]`
  (`right_x`: B0 `v`, B1 `t`, B2 `-1`; `right_s s_x`: B0 `(x - mu_i) / (s P)`, B1 `(x + 1) x / (t P)`,
  B2 `x / (t P)`), `dv = sum(h_r x)`, and at inference `d moving_variance = sum(h_a) / (2 a)`.
  Keeps `x`, `v`, and in training the per-channel `a` and batch mean. The returned `s2_b` carries
  no gradient (the layers stop it; its dependence on `x` is in `dx`).
- `evonorm_s` (S0, S1, S2; tiles of one sample's positions and whole channel groups, each
  group's sums taken in the tile through a `(groups, channels)` membership mask, not a reshape
  of the lane dimension): `y = x sigmoid(v x) r`, `r = rsqrt(s2_g + eps)`. Forward 1 pass
  (1R 1W). Backward 1 pass (2R 1W), `keras_norms.backend.fused.evonorm_s`'s formula
  `dx = r g s + v r g s (1 - s) x - r**3 sum_group(g s x) (x - mu_g) / M`, and per-sample partials
  of `dv = sum(r g s (1 - s) x**2)`. Keeps `x`, `v`.
- `power_normalization` (rows `(N T, C)` channels last, FRN's tiles channels first):
  `z = xs rsqrt(normalizer + eps)`, the auxiliary 0. Forward 1 pass (1R 1W). Backward 1 pass
  (2R 1W): `dxs = rb (g_z - g_a nu z)`, per-tile partial sums of `g_z z` and `z**2`, then
  `d scaled_statistic = sum(g_z z) / M + g_a stat (1 - (1 - alpha_bkw) mean(z**2))`,
  `d statistic_scale = g_a`, 0 for `quadratic_mean` and `normalizer`. Keeps the inputs.

Tiles. The "tpu" layout (Mosaic) has blocks whose last two dimensions are the array's or
multiples of (8, 128) (channel blocks of whole groups for EvoNorm-S); a row or a sample's
positions are never split; an edge block past the array's end is padded by Pallas, its writes
dropped and its padding selected out of cross-row sums. The "gpu" layout (Triton) has
power-of-two blocks over the whole row or all positions, with masked loads and stores; it is
chosen with `pallas.triton.CompilerParams`, since Pallas on GPU lowers to Mosaic GPU by default.
A kernel `applies` on its device only for float32 and where its tile fits: 2 MiB per tile on
TPU (VMEM limit raised to 48 MiB), 16384 elements per program on GPU; longer rows and larger
feature maps take the reference (XLA) instead of splitting the reduction.

Verified here (CPU only, jax 0.10.2): every kernel, in both layouts, through Pallas' interpreter
against the reference ops, several and partial tiles included (tests/kernels/test_pallas_norms.py;
measured differences under 5e-7 of max(1, |reference|)); every forward and backward lowers
with `jax.export` for "tpu" (Pallas to Mosaic MLIR) and "cuda" (Pallas to Triton IR). Not
verified: Mosaic's and Triton's compilation of that IR, a run on a device, VMEM and register
budgets (register spills on GPU), speed. Known gaps: on GPU, channels-last tiles narrower than
32 channels read memory uncoalesced, and feature maps past the budget are not tiled along
positions (they take the reference); the backward is not differentiable again (no
second-order gradients through a kernel).
"""

import contextlib
import dataclasses
import functools
import math
import numbers
from collections.abc import Iterator, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import keras
from jax import lax
from jax.experimental import pallas as pl

from keras_norms.backend import kernel_mode, register_kernel
from keras_norms.ops import evonorm as evonorm_ops
from keras_norms.ops import filter_response as frn_ops
from keras_norms.ops import power_norm as power_ops
from keras_norms.ops import rms as rms_ops
from keras_norms.ops.dtypes import statistics_dtype

# TPU: one full-size tile of float32 (a kernel holds up to three, double-buffered, plus temporaries).
_TPU_TILE_BYTES = 2 << 20
_TPU_VMEM_LIMIT_BYTES = 48 << 20
_TPU_ROW_CAP = 1024
# GPU (Triton): elements per program (in registers), a power of two.
_GPU_TILE_ELEMENTS = 1 << 14


# --- Where a kernel lowers --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Target:
    """`layout`: "tpu" (exact blocks) or "gpu" (power-of-two blocks, masked loads and stores);
    `interpret`: Pallas' interpreter, where tile budgets are not enforced."""

    layout: str
    interpret: bool


_overrides: list[_Target] = []
# The layout the interpreter runs ("interpret" mode); tests run both.
_INTERPRET_LAYOUT = "tpu"


@contextlib.contextmanager
def _lowering(layout: str, interpret: bool) -> Iterator[None]:
    """For tests: kernels called inside lower for `layout` (or interpret it), whatever the mode."""
    _overrides.append(_Target(layout, interpret))
    try:
        yield
    finally:
        _overrides.pop()


def _device_target() -> _Target:
    return _Target("gpu" if jax.default_backend() == "gpu" else "tpu", False)


def _current_target() -> _Target:
    if _overrides:
        return _overrides[-1]
    if kernel_mode() == "interpret":
        return _Target(_INTERPRET_LAYOUT, True)
    return _device_target()


def _on_device(x) -> bool:
    """The `applies` test every kernel shares: a float32 array on a GPU or TPU backend, in a
    program on one device. Under a `keras.distribution` over several devices (DataParallel on a
    TPU's cores) XLA partitions the program, and it cannot partition a Pallas call: it would
    gather the global batch onto every device. The XLA path partitions (its batch statistics are
    then global, as documented)."""
    if jax.default_backend() not in ("gpu", "tpu") or getattr(x, "dtype", None) != jnp.float32:
        return False
    distribution = keras.distribution.distribution()
    return distribution is None or len(distribution.device_mesh.devices.flatten()) <= 1


def _compute_dtype(*dtypes) -> str:
    """float32, or float64 if any of `dtypes` is (`keras_norms.ops.dtypes.statistics_dtype`)."""
    return statistics_dtype(*(jnp.dtype(d).name for d in dtypes if d is not None))


def _pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def _static_float(value) -> float | None:
    """`value` as a Python float if it is a concrete number, else None (a tensor)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):  # numpy scalars included
        return float(value)
    return None


# --- Tilings ------------------------------------------------------------------------------------


def _iota(shape, dimension):
    return lax.broadcasted_iota(jnp.int32, shape, dimension)


def _and(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a & b


@dataclasses.dataclass(frozen=True)
class _Rows:
    """`(rows, width)` in tiles `(block_rows, block_width)`; a tile holds whole rows.

    Per-column vectors are `(1, width)` arrays; per-tile partial column sums `(tiles, 1, width)`.
    """

    rows: int
    width: int
    block_rows: int
    block_width: int

    @property
    def grid(self):
        return (pl.cdiv(self.rows, self.block_rows),)

    @property
    def tile(self):
        return (self.block_rows, self.block_width)

    @property
    def shape(self):
        return (self.rows, self.width)

    # The axis of a tile that partial sums reduce.
    reduce_axis = 0

    def data(self):
        return pl.BlockSpec(self.tile, lambda i: (i, 0))

    @property
    def channel_shape(self):
        return (1, self.width)

    def channel(self):
        return pl.BlockSpec((1, self.block_width), lambda i: (0, 0))

    @property
    def partial_shape(self):
        return (self.grid[0], 1, self.width)

    def partial(self):
        return pl.BlockSpec((None, 1, self.block_width), lambda i: (i, 0, 0))

    def masks(self):
        """`(valid, column_valid)` inside a kernel: the tile's elements inside the array (None if all)."""
        row_valid = column_valid = None
        if self.rows % self.block_rows:
            row_valid = pl.program_id(0) * self.block_rows + _iota((self.block_rows, 1), 0) < self.rows
        if self.block_width != self.width:
            column_valid = _iota((1, self.block_width), 1) < self.width
        return _and(row_valid, column_valid), column_valid


def _rows_tiling(rows: int, width: int, target: _Target) -> _Rows | None:
    if rows == 0 or width == 0:  # nothing to tile: the reference handles empty arrays
        return None
    if target.layout == "gpu":
        block_width = _pow2(width)
        if block_width > _GPU_TILE_ELEMENTS and not target.interpret:
            return None
        block_rows = min(_pow2(rows), max(1, _GPU_TILE_ELEMENTS // block_width))
        return _Rows(rows, width, block_rows, block_width)
    fit = min(_TPU_ROW_CAP, _TPU_TILE_BYTES // (4 * width))  # rows per tile
    if rows <= fit:
        block_rows = rows  # the whole array: always a legal block
    elif fit >= 8:
        block_rows = fit // 8 * 8
    elif target.interpret:
        block_rows = min(rows, 8)
    else:
        return None
    return _Rows(rows, width, block_rows, width)


@dataclasses.dataclass(frozen=True)
class _Planes:
    """`(N, P, C)` (channels last) or `(N, C, P)` in tiles of one sample, all `P` positions (padded
    to `block_positions` on GPU) and `block_channels` channels.

    Per-channel vectors are `(1, C)` or `(C, 1)` arrays; per-(sample, channel) statistics and
    partial sums `(N, 1, C)` or `(N, C, 1)`.
    """

    samples: int
    positions: int
    channels: int
    channels_last: bool
    block_positions: int
    block_channels: int

    @property
    def grid(self):
        return (self.samples, pl.cdiv(self.channels, self.block_channels))

    @property
    def tile(self):
        if self.channels_last:
            return (self.block_positions, self.block_channels)
        return (self.block_channels, self.block_positions)

    @property
    def reduce_axis(self):
        return 0 if self.channels_last else 1

    @property
    def shape(self):
        if self.channels_last:
            return (self.samples, self.positions, self.channels)
        return (self.samples, self.channels, self.positions)

    def data(self):
        if self.channels_last:
            return pl.BlockSpec((None, *self.tile), lambda n, j: (n, 0, j))
        return pl.BlockSpec((None, *self.tile), lambda n, j: (n, j, 0))

    @property
    def channel_shape(self):
        return (1, self.channels) if self.channels_last else (self.channels, 1)

    def channel(self):
        if self.channels_last:
            return pl.BlockSpec((1, self.block_channels), lambda n, j: (0, j))
        return pl.BlockSpec((self.block_channels, 1), lambda n, j: (j, 0))

    @property
    def partial_shape(self):
        return (self.samples, *self.channel_shape)

    def partial(self):
        if self.channels_last:
            return pl.BlockSpec((None, 1, self.block_channels), lambda n, j: (n, 0, j))
        return pl.BlockSpec((None, self.block_channels, 1), lambda n, j: (n, j, 0))

    def masks(self):
        """`(valid, channel_valid)` inside a kernel: the tile's elements inside the array (None if all)."""
        position_axis, channel_axis = (0, 1) if self.channels_last else (1, 0)
        position_valid = channel_valid = None
        if self.block_positions != self.positions:
            position_valid = _iota(self.tile, position_axis) < self.positions
        if self.channels % self.block_channels:
            vector = (1, self.block_channels) if self.channels_last else (self.block_channels, 1)
            start = pl.program_id(1) * self.block_channels
            channel_valid = start + _iota(vector, channel_axis) < self.channels
        return _and(position_valid, channel_valid), channel_valid


def _planes_tiling(
    samples: int, positions: int, channels: int, channels_last: bool, target: _Target, group_size: int = 1
) -> _Planes | None:
    """All positions of one sample and a block of channels (whole groups of `group_size`
    contiguous channels, each tile starting on a group), as large as the budget allows."""
    if 0 in (samples, positions, channels):
        return None
    strict = not target.interpret
    if target.layout == "gpu":
        block_positions = _pow2(positions)
        all_channels = _pow2(channels)
        if group_size & (group_size - 1):  # groups of a size no power of two: every channel
            block_channels = all_channels
        else:
            block_channels = min(all_channels, max(group_size, _GPU_TILE_ELEMENTS // block_positions))
        if strict and block_positions * block_channels > _GPU_TILE_ELEMENTS:
            return None
        return _Planes(samples, positions, channels, channels_last, block_positions, block_channels)
    # A lane block (channels last) is a multiple of 128, a sublane block a multiple of 8, or all
    # channels; the last block may run past C.
    unit = math.lcm(128 if channels_last else 8, group_size)
    fit = _TPU_TILE_BYTES // (4 * positions)  # channels per tile
    block_channels = channels if fit >= channels or unit >= channels else max(unit, fit // unit * unit)
    if strict and block_channels * positions * 4 > _TPU_TILE_BYTES:
        return None
    return _Planes(samples, positions, channels, channels_last, positions, block_channels)


# --- Kernel plumbing -----------------------------------------------------------------------------


@functools.cache
def _triton():
    from jax.experimental.pallas import triton as plgpu

    return plgpu


def _load(target: _Target, ref, mask):
    """The tile in `ref`; on GPU the elements outside `mask` (past the array) read as 0."""
    if target.layout == "gpu" and mask is not None:
        return _triton().load(ref, mask=jnp.broadcast_to(mask, ref.shape), other=0.0)
    return ref[...]


def _store(target: _Target, ref, value, mask):
    value = jnp.broadcast_to(value, ref.shape).astype(ref.dtype)
    if target.layout == "gpu" and mask is not None:
        _triton().store(ref, value, mask=jnp.broadcast_to(mask, ref.shape))
    else:
        ref[...] = value


def _sum(value, axis, valid=None):
    """`sum(value, axis)` with dims kept, over the valid elements only (padding may be garbage)."""
    if valid is not None:
        value = jnp.where(valid, value, 0.0)
    return jnp.sum(value, axis=axis, keepdims=True)


def _call(target: _Target, name, kernel, grid, inputs, outputs):
    """`pallas_call` of `kernel` on `inputs` (`(array, BlockSpec)` pairs) giving `outputs`
    (`(shape, dtype, BlockSpec)` triples), with the target's compiler parameters."""
    in_specs = [spec for _, spec in inputs]
    out_shape = [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype, _ in outputs]
    out_specs = [spec for _, _, spec in outputs]
    params = None
    if not target.interpret:
        if target.layout == "gpu":
            tile = max(math.prod(s.block_shape[-2:]) for s in in_specs if s.block_shape is not None)
            params = _triton().CompilerParams(num_warps=4 if tile <= 4096 else 8, num_stages=1)
        else:
            from jax.experimental.pallas import tpu as pltpu

            # Every program writes its own blocks (partial sums included): any order, any core.
            semantics: list[Literal["parallel"]] = ["parallel"] * len(grid)
            params = pltpu.CompilerParams(dimension_semantics=semantics, vmem_limit_bytes=_TPU_VMEM_LIMIT_BYTES)
    function = pl.pallas_call(
        kernel,
        grid=grid,
        in_specs=in_specs,
        out_specs=out_specs,
        out_shape=out_shape,
        interpret=target.interpret,
        compiler_params=params,
        name=name,
    )
    return function(*[array for array, _ in inputs])


def _along(t, shape: Sequence[int], axes: Sequence[int]):
    """`t`, which broadcasts against an array of `shape`, as its values along `axes` flattened to
    a vector (`prod(shape[axes])`); None where `t` varies along another axis or does not broadcast."""
    t = jnp.asarray(t)
    rank = len(shape)
    if t.ndim > rank:
        return None
    padded = (1,) * (rank - t.ndim) + tuple(t.shape)
    for a in range(rank):
        if padded[a] not in ((1, shape[a]) if a in axes else (1,)):
            return None
    kept = tuple(shape[a] for a in axes)
    return jnp.broadcast_to(t.reshape(tuple(padded[a] for a in axes)), kept).reshape(-1)


def _varies_only_along(t, shape: Sequence[int], axes: Sequence[int]) -> bool:
    t_shape = tuple(getattr(t, "shape", ()))
    rank = len(shape)
    if len(t_shape) > rank:
        return False
    padded = (1,) * (rank - len(t_shape)) + t_shape
    return all(padded[a] in ((1, shape[a]) if a in axes else (1,)) for a in range(rank))


def _channel_layout(shape: Sequence[int], channel_axis: int):
    """`(N, P, C, channels_last)` for an array of `shape` batch first with its channels at
    `channel_axis` (last, or 1), the positions the rest; None for another layout."""
    rank = len(shape)
    if rank < 2 or channel_axis not in (1, rank - 1):
        return None
    channels_last = channel_axis == rank - 1
    positions = math.prod(shape[1:-1]) if channels_last else math.prod(shape[2:])
    return shape[0], positions, shape[channel_axis], channels_last


def _spatial_layout(shape: Sequence[int], spatial_axes: Sequence[int]):
    """`(N, P, C, channels_last, channel_axis)` where `spatial_axes` are all axes but batch and channels."""
    rank = len(shape)
    spatial = sorted({a % rank for a in spatial_axes})
    rest = [a for a in range(1, rank) if a not in spatial]
    if len(rest) != 1 or 0 in spatial:
        return None
    layout = _channel_layout(shape, rest[0])
    return None if layout is None else (*layout, rest[0])


# --- RMSNorm and CRMSNorm: rows -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _RowsPlan:
    target: _Target
    tiles: _Rows
    centered: bool  # CRMSNorm: the dropped coordinate -sum(z) counts in the mean square
    epsilon: float
    has_gamma: bool


def _row_rstd(plan: _RowsPlan, x):
    """`(rsqrt(mean square + eps), row sum or None)` per row of a tile (padding reads as 0)."""
    width = plan.tiles.width
    square = jnp.sum(x * x, axis=1, keepdims=True)
    if not plan.centered:
        return lax.rsqrt(square / width + plan.epsilon), None
    total = jnp.sum(x, axis=1, keepdims=True)
    return lax.rsqrt((square + total * total) / (width + 1) + plan.epsilon), total


def _rows_forward_kernel(plan: _RowsPlan):
    target = plan.target

    def kernel(*refs):
        x_ref, *rest = refs
        gamma_ref = rest.pop(0) if plan.has_gamma else None
        (y_ref,) = rest
        valid, column_valid = plan.tiles.masks()
        x = _load(target, x_ref, valid)
        rstd, _ = _row_rstd(plan, x)
        y = x * rstd
        if gamma_ref is not None:
            y = y * _load(target, gamma_ref, column_valid)
        _store(target, y_ref, y, valid)

    return kernel


def _rows_backward_kernel(plan: _RowsPlan):
    target = plan.target

    def kernel(*refs):
        x_ref, g_ref, *rest = refs
        gamma_ref = rest.pop(0) if plan.has_gamma else None
        dx_ref, *partial_ref = rest
        valid, column_valid = plan.tiles.masks()
        x = _load(target, x_ref, valid)
        g = _load(target, g_ref, valid)
        rstd, total = _row_rstd(plan, x)
        u = g if gamma_ref is None else g * _load(target, gamma_ref, column_valid)
        projection = jnp.sum(u * x, axis=1, keepdims=True) * (rstd * rstd * rstd)
        if plan.centered:
            dx = u * rstd - (x + total) * projection / (plan.tiles.width + 1)
        else:
            dx = u * rstd - x * projection / plan.tiles.width
        _store(target, dx_ref, dx, valid)
        if partial_ref:
            _store(target, partial_ref[0], _sum(g * x * rstd, 0, valid), column_valid)

    return kernel


def _rows_forward(plan: _RowsPlan, x, gamma):
    tiles = plan.tiles
    inputs = [(x, tiles.data())] + ([(gamma, tiles.channel())] if plan.has_gamma else [])
    (y,) = _call(
        plan.target,
        "crms_normalization" if plan.centered else "rms_normalization",
        _rows_forward_kernel(plan),
        tiles.grid,
        inputs,
        [(x.shape, x.dtype, tiles.data())],
    )
    return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _rows_norm(plan: _RowsPlan, x, gamma):
    return _rows_forward(plan, x, gamma)


def _rows_norm_fwd(plan, x, gamma):
    return _rows_forward(plan, x, gamma), (x, gamma)


def _rows_norm_bwd(plan, residuals, g):
    x, gamma = residuals
    tiles = plan.tiles
    inputs = [(x, tiles.data()), (g.astype(x.dtype), tiles.data())]
    outputs = [(x.shape, x.dtype, tiles.data())]
    if plan.has_gamma:
        inputs.append((gamma, tiles.channel()))
        outputs.append((tiles.partial_shape, x.dtype, tiles.partial()))
    results = _call(
        plan.target,
        "crms_normalization_backward" if plan.centered else "rms_normalization_backward",
        _rows_backward_kernel(plan),
        tiles.grid,
        inputs,
        outputs,
    )
    dgamma = None if not plan.has_gamma else jnp.sum(results[1], axis=0).astype(gamma.dtype)
    return results[0], dgamma


_rows_norm.defvjp(_rows_norm_fwd, _rows_norm_bwd)


def _rows_plan(x, axes, epsilon, gamma, centered, target) -> _RowsPlan | None:
    shape = tuple(x.shape)
    rank = len(shape)
    if rank == 0 or axes != tuple(range(rank - len(axes), rank)) or not axes:
        return None
    epsilon = _static_float(epsilon)
    if epsilon is None or (gamma is not None and not _varies_only_along(gamma, shape, axes)):
        return None
    width = math.prod(shape[rank - len(axes) :])
    rows = math.prod(shape[: rank - len(axes)])
    tiles = _rows_tiling(rows, width, target)
    if tiles is None:
        return None
    return _RowsPlan(target, tiles, centered, epsilon, gamma is not None)


def _rms_axes(x, axis):
    rank = len(x.shape)
    return tuple(sorted(a % rank for a in ((axis,) if isinstance(axis, int) else axis)))


def _rows_apply(plan: _RowsPlan, x, axes, gamma):
    dtype = _compute_dtype(x.dtype, None if gamma is None else jnp.asarray(gamma).dtype)
    x = jnp.asarray(x).astype(dtype)
    row = None
    if gamma is not None:
        row = _along(gamma, x.shape, axes).astype(dtype).reshape(plan.tiles.channel_shape)
    y = _rows_norm(plan, x.reshape(plan.tiles.rows, plan.tiles.width), row)
    return y.reshape(x.shape)


def _rms_applies(x, axis, epsilon, gamma=None):
    return _on_device(x) and _rows_plan(x, _rms_axes(x, axis), epsilon, gamma, False, _device_target()) is not None


@register_kernel("rms_normalization", backends=("jax",), applies=_rms_applies)
def rms_normalization(x, axis, epsilon, gamma=None):
    """`keras_norms.ops.rms_normalization` over trailing axes: one pass forward, one backward."""
    axes = _rms_axes(x, axis)
    plan = _rows_plan(x, axes, epsilon, gamma, False, _current_target())
    if plan is None:
        return rms_ops.rms_normalization.reference(x, axis, epsilon, gamma)
    return _rows_apply(plan, x, axes, gamma)


def _crms_applies(z, axis, epsilon, gamma=None):
    axes = (axis % len(z.shape),)
    return _on_device(z) and _rows_plan(z, axes, epsilon, gamma, True, _device_target()) is not None


@register_kernel("crms_normalization", backends=("jax",), applies=_crms_applies)
def crms_normalization(z, axis, epsilon, gamma=None):
    """`keras_norms.ops.crms_normalization` over the last axis: one pass forward, one backward."""
    axes = (axis % len(z.shape),)
    plan = _rows_plan(z, axes, epsilon, gamma, True, _current_target())
    if plan is None:
        return rms_ops.crms_normalization.reference(z, axis, epsilon, gamma)
    return _rows_apply(plan, z, axes, gamma)


# --- FRN: per (sample, channel) over positions --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FrnPlan:
    target: _Target
    tiles: _Planes
    epsilon: float | None  # None: a tensor input


def _frn_rstd(plan: _FrnPlan, x, epsilon):
    mean_square = jnp.sum(x * x, axis=plan.tiles.reduce_axis, keepdims=True) / plan.tiles.positions
    return lax.rsqrt(mean_square + epsilon)


def _frn_epsilon(plan: _FrnPlan, refs):
    if plan.epsilon is not None:
        return plan.epsilon, refs
    eps_ref, *refs = refs
    return eps_ref[...], refs


def _frn_forward_kernel(plan: _FrnPlan):
    target = plan.target

    def kernel(x_ref, *refs):
        epsilon, (y_ref,) = _frn_epsilon(plan, refs)
        valid, _ = plan.tiles.masks()
        x = _load(target, x_ref, valid)
        _store(target, y_ref, x * _frn_rstd(plan, x, epsilon), valid)

    return kernel


def _frn_backward_kernel(plan: _FrnPlan):
    target = plan.target
    axis = plan.tiles.reduce_axis

    def kernel(x_ref, g_ref, *refs):
        epsilon, (dx_ref, deps_ref) = _frn_epsilon(plan, refs)
        valid, channel_valid = plan.tiles.masks()
        x = _load(target, x_ref, valid)
        g = _load(target, g_ref, valid)
        rstd = _frn_rstd(plan, x, epsilon)
        projection = jnp.sum(g * x, axis=axis, keepdims=True) * (rstd * rstd * rstd)
        _store(target, dx_ref, g * rstd - x * projection / plan.tiles.positions, valid)
        _store(target, deps_ref, -0.5 * projection, channel_valid)

    return kernel


def _frn_inputs(plan: _FrnPlan, arrays, epsilon):
    inputs = [(a, plan.tiles.data()) for a in arrays]
    if plan.epsilon is None:
        inputs.append((epsilon, pl.BlockSpec((1, 1), lambda n, j: (0, 0))))
    return inputs


def _frn_forward(plan: _FrnPlan, x, epsilon):
    (y,) = _call(
        plan.target,
        "frn",
        _frn_forward_kernel(plan),
        plan.tiles.grid,
        _frn_inputs(plan, [x], epsilon),
        [(x.shape, x.dtype, plan.tiles.data())],
    )
    return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _frn(plan: _FrnPlan, x, epsilon):
    return _frn_forward(plan, x, epsilon)


def _frn_fwd(plan, x, epsilon):
    return _frn_forward(plan, x, epsilon), (x, epsilon)


def _frn_bwd(plan, residuals, g):
    x, epsilon = residuals
    tiles = plan.tiles
    dx, deps = _call(
        plan.target,
        "frn_backward",
        _frn_backward_kernel(plan),
        tiles.grid,
        _frn_inputs(plan, [x, g.astype(x.dtype)], epsilon),
        [(x.shape, x.dtype, tiles.data()), (tiles.partial_shape, x.dtype, tiles.partial())],
    )
    if epsilon is None:
        return dx, None
    return dx, jnp.sum(deps).astype(epsilon.dtype).reshape(epsilon.shape)


_frn.defvjp(_frn_fwd, _frn_bwd)


def _frn_plan(x, epsilon, spatial_axes, weights, target) -> _FrnPlan | None:
    layout = _spatial_layout(tuple(x.shape), spatial_axes)
    if weights is not None or layout is None:
        return None
    samples, positions, channels, channels_last, _ = layout
    static = _static_float(epsilon)
    if static is None and math.prod(getattr(epsilon, "shape", ())) != 1:
        return None
    tiles = _planes_tiling(samples, positions, channels, channels_last, target)
    return None if tiles is None else _FrnPlan(target, tiles, static)


def _frn_applies(x, epsilon, *, spatial_axes, weights=None):
    return _on_device(x) and _frn_plan(x, epsilon, spatial_axes, weights, _device_target()) is not None


@register_kernel("frn", backends=("jax",), applies=_frn_applies)
def frn(x, epsilon, *, spatial_axes, weights=None):
    """`keras_norms.ops.frn` unmasked: one pass forward, one backward; a tensor `epsilon` gets its gradient."""
    plan = _frn_plan(x, epsilon, spatial_axes, weights, _current_target())
    if plan is None:
        return frn_ops.frn.reference(x, epsilon, spatial_axes=spatial_axes, weights=weights)
    x = jnp.asarray(x)
    out_dtype = jnp.result_type(x, epsilon)
    dtype = _compute_dtype(out_dtype)
    eps = None
    if plan.epsilon is None:
        eps = jnp.asarray(epsilon).astype(dtype).reshape(1, 1)
    y = _frn(plan, x.astype(dtype).reshape(plan.tiles.shape), eps)
    return y.reshape(x.shape).astype(out_dtype)


# --- EvoNorm-B0, B1, B2 -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _EvoBPlan:
    target: _Target
    tiles: _Planes
    variant: str  # "b0", "b1", "b2"
    epsilon: float
    training: bool


def _evonorm_b_right(plan: _EvoBPlan, x, v, valid):
    """`(right, mean, scale)` of a tile: `right` per element, and the per-(sample, channel) mean
    (B0; 0 for B1, B2) and square root `s` (B0) or `t` (B1, B2) that `right` depends on."""
    axis, positions = plan.tiles.reduce_axis, plan.tiles.positions
    if plan.variant == "b0":
        mean = jnp.sum(x, axis=axis, keepdims=True) / positions
        deviation = x - mean
        scale = jnp.sqrt(_sum(deviation * deviation, axis, valid) / positions + plan.epsilon)
        return v * x + scale, mean, scale
    scale = jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True) / positions + plan.epsilon)
    right = (x + 1.0) * scale if plan.variant == "b1" else scale - x
    return right, 0.0, scale


def _evonorm_b_refs(plan: _EvoBPlan, refs, count):
    """Splits `refs` into `count` full-size refs, `v` (B0) and the rest."""
    data, refs = refs[:count], refs[count:]
    if plan.variant == "b0":
        return data, refs[0], refs[1:]
    return data, None, refs


def _evonorm_b_statistics_kernel(plan: _EvoBPlan):
    """Training, forward pass 1: each sample's mean and variance per channel."""
    target, axis, positions = plan.target, plan.tiles.reduce_axis, plan.tiles.positions

    def kernel(x_ref, mean_ref, variance_ref):
        valid, channel_valid = plan.tiles.masks()
        x = _load(target, x_ref, valid)
        mean = jnp.sum(x, axis=axis, keepdims=True) / positions
        deviation = x - mean
        _store(target, mean_ref, mean, channel_valid)
        _store(target, variance_ref, _sum(deviation * deviation, axis, valid) / positions, channel_valid)

    return kernel


def _evonorm_b_forward_kernel(plan: _EvoBPlan):
    target = plan.target

    def kernel(*refs):
        (x_ref,), v_ref, (a_ref, y_ref) = _evonorm_b_refs(plan, refs, 1)
        valid, channel_valid = plan.tiles.masks()
        x = _load(target, x_ref, valid)
        v = None if v_ref is None else _load(target, v_ref, channel_valid)
        right, _, _ = _evonorm_b_right(plan, x, v, valid)
        _store(target, y_ref, x / jnp.maximum(_load(target, a_ref, channel_valid), right), valid)

    return kernel


def _evonorm_b_split(plan: _EvoBPlan, refs):
    """In a backward kernel: the tile's `x`, `g`, `v`, `a`, `right`, `d`, `h_r`, `h_a` and the rest."""
    (x_ref, g_ref), v_ref, (a_ref, *rest) = _evonorm_b_refs(plan, refs, 2)
    valid, channel_valid = plan.tiles.masks()
    x = _load(plan.target, x_ref, valid)
    g = _load(plan.target, g_ref, valid)
    v = None if v_ref is None else _load(plan.target, v_ref, channel_valid)
    a = _load(plan.target, a_ref, channel_valid)
    right, mean, scale = _evonorm_b_right(plan, x, v, valid)
    d = jnp.maximum(a, right)
    h = -g * x / (d * d)
    # Where a >= right the denominator is the batch term (ties to it, as the fused path does).
    on_a = a >= right
    h_a = jnp.where(on_a, h, 0.0)
    h_r = jnp.where(on_a, 0.0, h)
    values = dict(x=x, g=g, v=v, a=a, d=d, h_a=h_a, h_r=h_r, mean=mean, scale=scale)
    return values, valid, channel_valid, rest


def _evonorm_b_batch_kernel(plan: _EvoBPlan):
    """Training, backward pass 1: `sum_P(h_a)` per (sample, channel), for the batch branch."""
    target, axis = plan.target, plan.tiles.reduce_axis

    def kernel(*refs):
        values, valid, channel_valid, (sum_ref,) = _evonorm_b_split(plan, refs)
        _store(target, sum_ref, _sum(values["h_a"], axis, valid), channel_valid)

    return kernel


def _evonorm_b_backward_kernel(plan: _EvoBPlan):
    """`dx`, and per (sample, channel) `sum_P(h_r x)` (B0's `dv`) and at inference `sum_P(h_a)`."""
    target, axis, positions = plan.target, plan.tiles.reduce_axis, plan.tiles.positions

    def kernel(*refs):
        values, valid, channel_valid, rest = _evonorm_b_split(plan, refs)
        if plan.training:
            mean_b_ref, coefficient_ref, dx_ref, *outputs = rest
        else:
            dx_ref, *outputs = rest
        x, h_r, scale = values["x"], values["h_r"], values["scale"]
        dx = values["g"] / values["d"]
        # The element's own `right` and the per-sample square root it holds.
        if plan.variant == "b0":
            dx = dx + values["v"] * h_r + _sum(h_r, axis, valid) * (x - values["mean"]) / (scale * positions)
        elif plan.variant == "b1":
            dx = dx + scale * h_r + _sum(h_r * (x + 1.0), axis, valid) * x / (scale * positions)
        else:
            dx = dx - h_r + _sum(h_r, axis, valid) * x / (scale * positions)
        if plan.training:  # the batch variance's dependence on x
            mean_b = _load(target, mean_b_ref, channel_valid)
            dx = dx + _load(target, coefficient_ref, channel_valid) * (x - mean_b)
        _store(target, dx_ref, dx, valid)
        if plan.variant == "b0":
            dv_ref, *outputs = outputs
            _store(target, dv_ref, _sum(h_r * x, axis, valid), channel_valid)
        if not plan.training:
            _store(target, outputs[0], _sum(values["h_a"], axis, valid), channel_valid)

    return kernel


def _evonorm_b_inputs(plan: _EvoBPlan, arrays, v, a):
    tiles = plan.tiles
    inputs = [(t, tiles.data()) for t in arrays]
    if plan.variant == "b0":
        inputs.append((v, tiles.channel()))
    return inputs + [(a, tiles.channel())]


def _evonorm_b_forward(plan: _EvoBPlan, x, v, a):
    (y,) = _call(
        plan.target,
        f"evonorm_{plan.variant}",
        _evonorm_b_forward_kernel(plan),
        plan.tiles.grid,
        _evonorm_b_inputs(plan, [x], v, a),
        [(x.shape, x.dtype, plan.tiles.data())],
    )
    return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _evonorm_b(plan: _EvoBPlan, x, v, a, mean_b):
    return _evonorm_b_forward(plan, x, v, a)


def _evonorm_b_fwd(plan, x, v, a, mean_b):
    return _evonorm_b_forward(plan, x, v, a), (x, v, a, mean_b)


def _evonorm_b_bwd(plan, residuals, g):
    x, v, a, mean_b = residuals
    tiles = plan.tiles
    g = g.astype(x.dtype)
    inputs = _evonorm_b_inputs(plan, [x, g], v, a)
    partial = (tiles.partial_shape, x.dtype, tiles.partial())
    outputs = [(x.shape, x.dtype, tiles.data())]
    outputs += [partial] if plan.variant == "b0" else []
    if plan.training:
        (batch_sums,) = _call(
            plan.target,
            f"evonorm_{plan.variant}_backward_batch",
            _evonorm_b_batch_kernel(plan),
            tiles.grid,
            inputs,
            [partial],
        )
        coefficient = jnp.sum(batch_sums, axis=0) / (a * (tiles.samples * tiles.positions))
        inputs = inputs + [(mean_b, tiles.channel()), (coefficient, tiles.channel())]
    else:
        outputs.append(partial)
    dx, *sums = _call(
        plan.target,
        f"evonorm_{plan.variant}_backward",
        _evonorm_b_backward_kernel(plan),
        tiles.grid,
        inputs,
        outputs,
    )
    dv = None if v is None else jnp.sum(sums.pop(0), axis=0)
    # Training: `a` and the batch mean came from x with the gradient stopped (it is in dx).
    da = jnp.zeros_like(a) if plan.training else jnp.sum(sums.pop(0), axis=0)
    return dx, dv, da, None if mean_b is None else jnp.zeros_like(mean_b)


_evonorm_b.defvjp(_evonorm_b_fwd, _evonorm_b_bwd)


def _evonorm_b_plan(variant, x, v, spatial_axes, epsilon, moving_variance, weights, synchronized, target):
    del synchronized  # the op's `applicable` sends several replicas to the reference
    shape = tuple(x.shape)
    layout = _spatial_layout(shape, spatial_axes)
    epsilon = _static_float(epsilon)
    if weights is not None or layout is None or epsilon is None:
        return None
    samples, positions, channels, channels_last, channel_axis = layout
    for t in (v, moving_variance):
        if t is not None and not _varies_only_along(t, shape, (channel_axis,)):
            return None
    tiles = _planes_tiling(samples, positions, channels, channels_last, target)
    if tiles is None:
        return None
    return _EvoBPlan(target, tiles, variant, epsilon, moving_variance is None)


def _evonorm_b_call(variant, x, v, spatial_axes, epsilon, moving_variance, weights, synchronized):
    plan = _evonorm_b_plan(
        variant, x, v, spatial_axes, epsilon, moving_variance, weights, synchronized, _current_target()
    )
    if plan is None:
        reference = {"b0": evonorm_ops.evonorm_b0, "b1": evonorm_ops.evonorm_b1, "b2": evonorm_ops.evonorm_b2}
        extra = (v,) if variant == "b0" else ()
        return reference[variant].reference(
            x,
            *extra,
            spatial_axes=spatial_axes,
            epsilon=epsilon,
            moving_variance=moving_variance,
            weights=weights,
            synchronized=synchronized,
        )
    x = jnp.asarray(x)
    shape = tuple(x.shape)
    tiles = plan.tiles
    channel_axis = _spatial_layout(shape, spatial_axes)[4]
    out_dtype = jnp.result_type(*(t for t in (x, v, moving_variance) if t is not None))
    dtype = _compute_dtype(out_dtype)
    x3 = x.astype(dtype).reshape(tiles.shape)

    def channel_vector(t):
        return _along(t, shape, (channel_axis,)).astype(dtype).reshape(tiles.channel_shape)

    v_vector = None if v is None else channel_vector(v)
    kept = [1] * len(shape)
    kept[channel_axis] = tiles.channels
    if plan.training:
        mean_i, variance_i = _call(
            plan.target,
            f"evonorm_{variant}_statistics",
            _evonorm_b_statistics_kernel(plan),
            tiles.grid,
            [(lax.stop_gradient(x3), tiles.data())],
            [(tiles.partial_shape, dtype, tiles.partial())] * 2,
        )
        # The law of total variance over equal counts, as `batch_moments_of_instances`.
        mean_b = jnp.mean(mean_i, axis=0)
        variance_b = jnp.mean(variance_i, axis=0) + jnp.mean(jnp.square(mean_i - mean_b), axis=0)
        a = jnp.sqrt(variance_b + plan.epsilon)
        y = _evonorm_b(plan, x3, v_vector, a, mean_b)
        count = jnp.asarray(tiles.samples * tiles.positions, x.dtype)
        s2_b = variance_b.astype(x.dtype).reshape(kept)
        return y.reshape(shape).astype(out_dtype), s2_b, count
    a = jnp.sqrt(channel_vector(moving_variance) + plan.epsilon)
    y = _evonorm_b(plan, x3, v_vector, a, None)
    return y.reshape(shape).astype(out_dtype), moving_variance, None


def _evonorm_b_applies(variant):
    def applies(x, v=None, *, spatial_axes, epsilon, moving_variance=None, weights=None, synchronized=False):
        plan = _evonorm_b_plan(
            variant, x, v, spatial_axes, epsilon, moving_variance, weights, synchronized, _device_target()
        )
        return _on_device(x) and plan is not None

    return applies


@register_kernel("evonorm_b0", backends=("jax",), applies=_evonorm_b_applies("b0"))
def evonorm_b0(x, v, *, spatial_axes, epsilon, moving_variance=None, weights=None, synchronized=False):
    """`keras_norms.ops.evonorm_b0` unmasked on one replica (training: two passes each way)."""
    return _evonorm_b_call("b0", x, v, spatial_axes, epsilon, moving_variance, weights, synchronized)


@register_kernel("evonorm_b1", backends=("jax",), applies=_evonorm_b_applies("b1"))
def evonorm_b1(x, *, spatial_axes, epsilon, moving_variance=None, weights=None, synchronized=False):
    """`keras_norms.ops.evonorm_b1` unmasked on one replica."""
    return _evonorm_b_call("b1", x, None, spatial_axes, epsilon, moving_variance, weights, synchronized)


@register_kernel("evonorm_b2", backends=("jax",), applies=_evonorm_b_applies("b2"))
def evonorm_b2(x, *, spatial_axes, epsilon, moving_variance=None, weights=None, synchronized=False):
    """`keras_norms.ops.evonorm_b2` unmasked on one replica."""
    return _evonorm_b_call("b2", x, None, spatial_axes, epsilon, moving_variance, weights, synchronized)


# --- EvoNorm-S: per sample and channel group ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _EvoSPlan:
    target: _Target
    tiles: _Planes  # whole channel groups per tile
    groups: int
    epsilon: float
    centered: bool
    has_v: bool


def _group_total(plan: _EvoSPlan, per_channel):
    """Each channel's group sum of `per_channel` (`(1, C)` or `(C, 1)`), through a membership mask
    (no reshape of the lane dimension, which Mosaic restricts)."""
    tiles = plan.tiles
    size = tiles.channels // plan.groups
    # A tile starts on a group boundary and holds whole groups (and, past C, padding).
    block_groups = pl.cdiv(tiles.block_channels, size)
    if plan.target.layout == "gpu":
        block_groups = _pow2(block_groups)
    channel_axis = 1 if tiles.channels_last else 0
    shape = (block_groups, tiles.block_channels) if tiles.channels_last else (tiles.block_channels, block_groups)
    channel = _iota(shape, channel_axis)
    start = _iota(shape, 1 - channel_axis) * size
    member = (channel >= start) & (channel < start + size)
    # Selects, not products with 0/1: the padding past C may hold NaN (TPU edge tiles).
    totals = jnp.sum(jnp.where(member, per_channel, 0.0), axis=channel_axis, keepdims=True)
    return jnp.sum(jnp.where(member, totals, 0.0), axis=1 - channel_axis, keepdims=True)


def _evonorm_s_statistics(plan: _EvoSPlan, x, valid):
    """Per channel: its group's mean (0 unless centered) and `rsqrt(s2_g + eps)`."""
    tiles = plan.tiles
    axis = tiles.reduce_axis
    count = tiles.positions * (tiles.channels // plan.groups)
    mean = 0.0
    if plan.centered:
        mean = _group_total(plan, jnp.sum(x, axis=axis, keepdims=True)) / count
    deviation = x - mean
    variance = _group_total(plan, _sum(deviation * deviation, axis, valid)) / count
    return mean, lax.rsqrt(variance + plan.epsilon), count


def _evonorm_s_refs(plan: _EvoSPlan, refs, count):
    data, refs = refs[:count], refs[count:]
    if plan.has_v:
        return data, refs[0], refs[1:]
    return data, None, refs


def _evonorm_s_forward_kernel(plan: _EvoSPlan):
    target = plan.target

    def kernel(*refs):
        (x_ref,), v_ref, (y_ref,) = _evonorm_s_refs(plan, refs, 1)
        valid, channel_valid = plan.tiles.masks()
        x = _load(target, x_ref, valid)
        _, rstd, _ = _evonorm_s_statistics(plan, x, valid)
        gate_input = x if v_ref is None else _load(target, v_ref, channel_valid) * x
        _store(target, y_ref, x * jax.nn.sigmoid(gate_input) * rstd, valid)

    return kernel


def _evonorm_s_backward_kernel(plan: _EvoSPlan):
    target, axis = plan.target, plan.tiles.reduce_axis

    def kernel(*refs):
        (x_ref, g_ref), v_ref, (dx_ref, *dv_ref) = _evonorm_s_refs(plan, refs, 2)
        valid, channel_valid = plan.tiles.masks()
        x = _load(target, x_ref, valid)
        g = _load(target, g_ref, valid)
        v = 1.0 if v_ref is None else _load(target, v_ref, channel_valid)
        mean, rstd, count = _evonorm_s_statistics(plan, x, valid)
        gate = jax.nn.sigmoid(v * x)
        gated = g * gate
        slope = rstd * gated * (1.0 - gate) * x  # shared by dx and dv
        total = _group_total(plan, _sum(gated * x, axis, valid))
        dx = rstd * gated + v * slope - rstd * rstd * rstd * total / count * (x - mean)
        _store(target, dx_ref, dx, valid)
        if dv_ref:
            _store(target, dv_ref[0], _sum(slope * x, axis, valid), channel_valid)

    return kernel


def _evonorm_s_inputs(plan: _EvoSPlan, arrays, v):
    inputs = [(t, plan.tiles.data()) for t in arrays]
    return inputs + ([(v, plan.tiles.channel())] if plan.has_v else [])


def _evonorm_s_forward(plan: _EvoSPlan, x, v):
    (y,) = _call(
        plan.target,
        "evonorm_s",
        _evonorm_s_forward_kernel(plan),
        plan.tiles.grid,
        _evonorm_s_inputs(plan, [x], v),
        [(x.shape, x.dtype, plan.tiles.data())],
    )
    return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _evonorm_s(plan: _EvoSPlan, x, v):
    return _evonorm_s_forward(plan, x, v)


def _evonorm_s_fwd(plan, x, v):
    return _evonorm_s_forward(plan, x, v), (x, v)


def _evonorm_s_bwd(plan, residuals, g):
    x, v = residuals
    tiles = plan.tiles
    outputs = [(x.shape, x.dtype, tiles.data())]
    if plan.has_v:
        outputs.append((tiles.partial_shape, x.dtype, tiles.partial()))
    dx, *dv = _call(
        plan.target,
        "evonorm_s_backward",
        _evonorm_s_backward_kernel(plan),
        tiles.grid,
        _evonorm_s_inputs(plan, [x, g.astype(x.dtype)], v),
        outputs,
    )
    return dx, (jnp.sum(dv[0], axis=0) if plan.has_v else None)


_evonorm_s.defvjp(_evonorm_s_fwd, _evonorm_s_bwd)


def _evonorm_s_plan(x, v, channel_axis, groups, epsilon, centered, apply_act, weights, target):
    shape = tuple(x.shape)
    rank = len(shape)
    epsilon = _static_float(epsilon)
    if weights is not None or not apply_act or epsilon is None or rank < 2:
        return None
    channel_axis %= rank
    layout = _channel_layout(shape, channel_axis)
    if layout is None or groups < 1 or shape[channel_axis] % groups:
        return None
    if v is not None and not _varies_only_along(v, shape, (channel_axis,)):
        return None
    samples, positions, channels, channels_last = layout
    tiles = _planes_tiling(samples, positions, channels, channels_last, target, group_size=channels // groups)
    if tiles is None:
        return None
    return _EvoSPlan(target, tiles, groups, epsilon, bool(centered), v is not None)


def _evonorm_s_applies(x, v=None, *, channel_axis, groups, epsilon, centered=True, apply_act=True, weights=None):
    plan = _evonorm_s_plan(x, v, channel_axis, groups, epsilon, centered, apply_act, weights, _device_target())
    return _on_device(x) and plan is not None


@register_kernel("evonorm_s", backends=("jax",), applies=_evonorm_s_applies)
def evonorm_s(x, v=None, *, channel_axis, groups, epsilon, centered=True, apply_act=True, weights=None):
    """`keras_norms.ops.evonorm_s` unmasked with the activation: one pass forward, one backward."""
    plan = _evonorm_s_plan(x, v, channel_axis, groups, epsilon, centered, apply_act, weights, _current_target())
    if plan is None:
        return evonorm_ops.evonorm_s.reference(
            x,
            v,
            channel_axis=channel_axis,
            groups=groups,
            epsilon=epsilon,
            centered=centered,
            apply_act=apply_act,
            weights=weights,
        )
    x = jnp.asarray(x)
    shape = tuple(x.shape)
    out_dtype = jnp.result_type(*(t for t in (x, v) if t is not None))
    dtype = _compute_dtype(out_dtype)
    tiles = plan.tiles
    v_vector = None
    if v is not None:
        v_vector = _along(v, shape, (channel_axis % len(shape),)).astype(dtype).reshape(tiles.channel_shape)
    y = _evonorm_s(plan, x.astype(dtype).reshape(tiles.shape), v_vector)
    return y.reshape(shape).astype(out_dtype)


# --- PowerNorm -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _PowerPlan:
    target: _Target
    tiles: _Rows | _Planes  # rows (channels last) or channels-first planes
    epsilon: float
    alpha_bkw: float
    positions: int  # elements per channel


def _power_forward_kernel(plan: _PowerPlan):
    target = plan.target

    def kernel(xs_ref, scale_ref, z_ref):
        valid, channel_valid = plan.tiles.masks()
        xs = _load(target, xs_ref, valid)
        _store(target, z_ref, xs * _load(target, scale_ref, channel_valid), valid)

    return kernel


def _power_backward_kernel(plan: _PowerPlan):
    """`dxs = rb g - c z` (`c = g_a nu rb` per channel) and per-tile partial sums of `g z`, `z**2`."""
    target, axis = plan.target, plan.tiles.reduce_axis

    def kernel(xs_ref, g_ref, scale_ref, rb_ref, c_ref, dxs_ref, gz_ref, zz_ref):
        valid, channel_valid = plan.tiles.masks()
        xs = _load(target, xs_ref, valid)
        g = _load(target, g_ref, valid)
        z = xs * _load(target, scale_ref, channel_valid)
        dxs = _load(target, rb_ref, channel_valid) * g - _load(target, c_ref, channel_valid) * z
        _store(target, dxs_ref, dxs, valid)
        _store(target, gz_ref, _sum(g * z, axis, valid), channel_valid)
        _store(target, zz_ref, _sum(z * z, axis, valid), channel_valid)

    return kernel


def _power_forward(plan: _PowerPlan, xs, normalizer):
    tiles = plan.tiles
    scale = lax.rsqrt(normalizer + plan.epsilon).reshape(tiles.channel_shape)
    (z,) = _call(
        plan.target,
        "power_normalization",
        _power_forward_kernel(plan),
        tiles.grid,
        [(xs, tiles.data()), (scale, tiles.channel())],
        [(xs.shape, xs.dtype, tiles.data())],
    )
    return z


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _power(plan: _PowerPlan, xs, quadratic_mean, normalizer, scaled_statistic, statistic_scale):
    return _power_forward(plan, xs, normalizer), jnp.zeros((), xs.dtype)


def _power_fwd(plan, xs, quadratic_mean, normalizer, scaled_statistic, statistic_scale):
    outputs = (_power_forward(plan, xs, normalizer), jnp.zeros((), xs.dtype))
    return outputs, (xs, quadratic_mean, normalizer, scaled_statistic, statistic_scale)


def _power_bwd(plan, residuals, upstream):
    xs, quadratic_mean, normalizer, scaled_statistic, statistic_scale = residuals
    g, g_aux = upstream
    tiles = plan.tiles
    statistic = scaled_statistic / statistic_scale
    rb = lax.rsqrt(quadratic_mean + plan.epsilon)
    nu = (1.0 - plan.alpha_bkw) * statistic
    g_aux = g_aux.astype(xs.dtype)
    vectors = [lax.rsqrt(normalizer + plan.epsilon), rb, g_aux * nu * rb]
    dxs, gz, zz = _call(
        plan.target,
        "power_normalization_backward",
        _power_backward_kernel(plan),
        tiles.grid,
        [(xs, tiles.data()), (g.astype(xs.dtype), tiles.data())]
        + [(t.reshape(tiles.channel_shape), tiles.channel()) for t in vectors],
        [(xs.shape, xs.dtype, tiles.data())] + [(tiles.partial_shape, xs.dtype, tiles.partial())] * 2,
    )
    gz = jnp.sum(gz, axis=0).reshape(-1)
    decay = 1.0 - (1.0 - plan.alpha_bkw) * jnp.sum(zz, axis=0).reshape(-1) / plan.positions
    d_statistic = gz / plan.positions + g_aux * statistic * decay
    d_scale = jnp.broadcast_to(g_aux, statistic_scale.shape)
    zeros = jnp.zeros_like(quadratic_mean)
    return dxs, zeros, jnp.zeros_like(normalizer), d_statistic.astype(scaled_statistic.dtype), d_scale


_power.defvjp(_power_fwd, _power_bwd)


def _power_plan(
    xs, quadratic_mean, normalizer, scaled_statistic, statistic_scale, epsilon, alpha_bkw, reduce_axes, target
):
    shape = tuple(xs.shape)
    rank = len(shape)
    if rank < 2:
        return None
    reduced = sorted({a % rank for a in reduce_axes})
    rest = [a for a in range(rank) if a not in reduced]
    epsilon, alpha_bkw = _static_float(epsilon), _static_float(alpha_bkw)
    if len(rest) != 1 or epsilon is None or alpha_bkw is None or rest[0] == 0:
        return None
    channel_axis = rest[0]
    for t in (quadratic_mean, normalizer, scaled_statistic):
        if not _varies_only_along(t, shape, (channel_axis,)):
            return None
    if math.prod(getattr(statistic_scale, "shape", ())) != 1:
        return None
    samples, positions, channels, channels_last = _channel_layout(shape, channel_axis)
    count = samples * positions
    if channels_last:
        tiles: _Rows | _Planes | None = _rows_tiling(count, channels, target)
    else:
        tiles = _planes_tiling(samples, positions, channels, False, target)
    if tiles is None:
        return None
    return _PowerPlan(target, tiles, epsilon, alpha_bkw, count)


def _power_applies(
    xs,
    quadratic_mean,
    normalizer,
    scaled_statistic,
    statistic_scale,
    *,
    epsilon,
    alpha_bkw,
    reduce_axes,
    synchronized=False,
):
    plan = _power_plan(
        xs,
        quadratic_mean,
        normalizer,
        scaled_statistic,
        statistic_scale,
        epsilon,
        alpha_bkw,
        reduce_axes,
        _device_target(),
    )
    return _on_device(xs) and plan is not None


@register_kernel("power_normalization", backends=("jax",), applies=_power_applies)
def power_normalization(
    xs,
    quadratic_mean,
    normalizer,
    scaled_statistic,
    statistic_scale,
    *,
    epsilon,
    alpha_bkw,
    reduce_axes,
    synchronized=False,
):
    """`keras_norms.ops.power_normalization` on one replica: `(z, auxiliary)` with the reference's
    values and gradients, one pass forward and one backward."""
    tensors = (xs, quadratic_mean, normalizer, scaled_statistic, statistic_scale)
    plan = _power_plan(*tensors, epsilon, alpha_bkw, reduce_axes, _current_target())
    if plan is None:
        return power_ops.power_normalization.reference(
            *tensors, epsilon=epsilon, alpha_bkw=alpha_bkw, reduce_axes=reduce_axes, synchronized=synchronized
        )
    xs = jnp.asarray(xs)
    shape = tuple(xs.shape)
    out_dtype = jnp.result_type(xs, normalizer)
    aux_dtype = jnp.result_type(xs, quadratic_mean, scaled_statistic, statistic_scale)
    dtype = _compute_dtype(out_dtype, aux_dtype)
    channel_axis = [a for a in range(len(shape)) if a not in {r % len(shape) for r in reduce_axes}][0]
    vectors = [_along(t, shape, (channel_axis,)).astype(dtype) for t in (quadratic_mean, normalizer, scaled_statistic)]
    scale = jnp.asarray(statistic_scale)
    z, auxiliary = _power(plan, xs.astype(dtype).reshape(plan.tiles.shape), *vectors, scale.astype(dtype).reshape(()))
    return z.reshape(shape).astype(out_dtype), auxiliary.reshape(scale.shape).astype(aux_dtype)
