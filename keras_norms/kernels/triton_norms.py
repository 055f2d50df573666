"""Triton kernels for torch on CUDA: RMSNorm, CRMSNorm, EvoNorm-B0/B1/B2, EvoNorm-S, FRN, PowerNorm.

Each kernel is one `torch.autograd.Function` with a hand-written backward, registered with
`keras_norms.backend.register_kernel` under its op's name; it takes the op's arguments and returns
the op's results (`keras_norms.ops`). It runs on CUDA tensors outside `torch.compile` (`applies`)
for the arguments it covers (`supports`: dtype, layout, sizes), and on any device through Triton's interpreter
in `kernel_mode() == "interpret"` (built per mode: `triton.jit(fn)` or the interpreter's
`InterpretedFunction(fn)`, so `TRITON_INTERPRET` need not be set). Arguments a kernel does not
cover (float64, a channel axis other than last or 1, a parameter that is not per channel, an empty
tensor) go to the op's graph-level fast path or its reference. Everything computes in float32.

Notation: `x` viewed as (N, P, C) (channels last) or (N, C, P) (channels first) by a free reshape;
statistics are per sample `n` and channel `c` (or channel group). "R" and "W" count reads and
writes of full-size tensors; everything else a kernel touches is per sample, per channel or per
program. The backward keeps only the inputs and the small statistics listed, never a full-size
intermediate.

- `rms_normalization`: `y = x * rsqrt(mean(x^2) + eps) [* gamma]` per row of (rows, D), D the
  product of the trailing normalized axes (float16/bfloat16 input is read as is; `y` is float32,
  as the op upcasts). Keeps `x`, `gamma`, `rstd` (per row). Rows up to `ROW_BLOCK_ELEMENTS` are one
  tile: forward 1R+1W, backward 2R+1W (`dx = rstd g - rstd^3 x sum(g x) / D`, `g = dy gamma`;
  `dgamma` from per-program partial sums). Longer rows stream in chunks: forward 2R+1W, backward
  4R+1W (a row-dot pass, then `dx`).
- `crms_normalization`: the same kernels with `q = (sum(z^2) + sum(z)^2) / (D + 1)`; keeps also
  `sum(z)` per row; `dx = rstd g - rstd^3 (z + sum(z)) sum(g z) / (D + 1)`.
- `evonorm_b0/_b1/_b2`: `y = x / max(a, r)`, `a = sqrt(s2_b + eps)` per channel, `r` = B0
  `v x + sqrt(var_i + eps)`, B1 `(x + 1) sqrt(m2_i + eps)`, B2 `sqrt(m2_i + eps) - x`. Forward
  2R+1W: a moments pass (per sample and channel, Chan's merge of per-tile two-pass moments,
  positions split across programs) and an elementwise pass; the batch variance comes from the
  instance moments (law of total variance). Keeps `x`, `v`, `a`, `s = sqrt(stat_i + eps)`, the
  instance and batch means. Backward 4R+1W: a sums pass (per sample and channel: `sum(h_r w)`,
  `sum(h_a)`, `sum(h_r x)` with `h = -dy x / max(a, r)^2` split by the branch that won), then
  `dx = dy / d + k h_r + L x - O` (`k` = v, s, -1; `L`, `O` per sample and channel, from the sums;
  the batch-variance term in training only). `s2_b` is returned without a gradient, as the
  layers stop it (its dependence on `x` is in `dx`), and at inference `moving_variance` (a
  non-trainable variable in the layers) gets none either.
- `evonorm_s` (S0 with `v`, S1/S2 with `v=None`; `centered` variance or mean square) and `frn`
  (`x * rsqrt(mean_P(x^2) + eps)`, a group of one channel, no gate): per sample and channel
  group, `y = x * gate * rsqrt(stat_g + eps)`. Where the sample's group tile fits
  (`ONE_PASS_ELEMENTS`), one program computes the statistics and writes `y`: forward 1R+1W,
  backward 2R+1W; otherwise forward 2R+1W (moments pass, elementwise pass) and backward 4R+1W
  (sums pass, `dx` pass). Keeps `x`, `v`, group mean and `rstd`. Backward:
  `dx = rstd g s + v rstd g s (1 - s) x - rstd^3 S (x - mean_g) / M`, `S = sum_group(g s x)`,
  `dv = sum(rstd g s (1 - s) x^2)`; FRN's tensor `epsilon` gets `-sum(rstd^3 S) / 2`.
- `power_normalization`: `z = xs * rsqrt(normalizer + eps)` (forward 1R+1W) and the op's
  approximate backward in one pass (2R+1W): `dxs = rb (g_z - g_a nu z)` together with the
  per-channel sums of `g_z z` and `z^2` that `d scaled_statistic` needs (channels last, the
  positions of every sample split across programs). Keeps `xs` and per-channel
  `rsqrt(normalizer + eps)`, `rsqrt(quadratic_mean + eps)` and the statistic; `quadratic_mean`
  and `normalizer` get no gradient, as in the op.

Offsets inside one sample are 32-bit: a sample (or a row) of 2**31 elements or more takes the
fallback. Tunables below are module attributes so that tests can shrink them and reach every
code path with small inputs.
"""

import functools
import math
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from keras_norms import backend as kernel_backend

# The longest row RMSNorm keeps in one tile (one read forward, two backward); longer rows stream.
ROW_BLOCK_ELEMENTS = 16384
# The largest per-sample group tile FRN and EvoNorm-S keep on chip (forward; half of it backward).
ONE_PASS_ELEMENTS = 16384
# The tile of the streaming passes.
TILE_ELEMENTS = 4096
# Programs to aim for: per streaming multiprocessor on CUDA, in all in the interpreter.
PROGRAMS_PER_SM = 4
INTERPRETER_PROGRAMS = 4

_LIMIT = 2**31


# ---------------------------------------------------------------------------------------------
# Kernels. Plain functions, built per mode by `_build`. They use only Triton builtins (reductions
# as `tl.reduce(..., tl.standard._sum_combine)`, which the interpreter maps to numpy sums):
# `tl.sum`, `tl.zeros` and `tl.sigmoid` are themselves `triton.jit` functions that the interpreter
# cannot call unless TRITON_INTERPRET was set before triton was imported.
# ---------------------------------------------------------------------------------------------


def _rms_forward(
    X,
    GAMMA,
    Y,
    RSTD,
    SUMS,
    rows,
    width,
    epsilon,
    inv_count,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
    ONE_BLOCK: tl.constexpr,
    HAS_GAMMA: tl.constexpr,
    COMPRESSED: tl.constexpr,
):
    """`y = x * rsqrt(q + eps) [* gamma]` for BLOCK_R rows; writes `rstd` (and `sum(x)`) per row."""
    first = tl.program_id(0) * BLOCK_R
    row = first + tl.arange(0, BLOCK_R)
    row_ok = row < rows
    # the block's 64-bit offset goes on the pointers; offsets inside the block stay 32-bit
    X += first.to(tl.int64) * width
    Y += first.to(tl.int64) * width
    base = tl.arange(0, BLOCK_R)[:, None] * width
    if ONE_BLOCK:
        col = tl.arange(0, BLOCK_D)
        mask = row_ok[:, None] & (col < width)[None, :]
        x = tl.load(X + base + col[None, :], mask=mask, other=0.0).to(tl.float32)
        square = tl.reduce(x * x, 1, tl.standard._sum_combine)
        total = tl.reduce(x, 1, tl.standard._sum_combine)
        if COMPRESSED:
            square = square + total * total
        rstd = tl.rsqrt(square * inv_count + epsilon)
        y = x * rstd[:, None]
        if HAS_GAMMA:
            y = y * tl.load(GAMMA + col, mask=col < width, other=0.0).to(tl.float32)[None, :]
        tl.store(Y + base + col[None, :], y, mask=mask)
    else:
        square = tl.full([BLOCK_R], 0.0, tl.float32)
        total = tl.full([BLOCK_R], 0.0, tl.float32)
        for start in range(0, width, BLOCK_D):
            col = start + tl.arange(0, BLOCK_D)
            mask = row_ok[:, None] & (col < width)[None, :]
            x = tl.load(X + base + col[None, :], mask=mask, other=0.0).to(tl.float32)
            square += tl.reduce(x * x, 1, tl.standard._sum_combine)
            total += tl.reduce(x, 1, tl.standard._sum_combine)
        if COMPRESSED:
            square = square + total * total
        rstd = tl.rsqrt(square * inv_count + epsilon)
        for start in range(0, width, BLOCK_D):
            col = start + tl.arange(0, BLOCK_D)
            mask = row_ok[:, None] & (col < width)[None, :]
            y = tl.load(X + base + col[None, :], mask=mask, other=0.0).to(tl.float32) * rstd[:, None]
            if HAS_GAMMA:
                y = y * tl.load(GAMMA + col, mask=col < width, other=0.0).to(tl.float32)[None, :]
            tl.store(Y + base + col[None, :], y, mask=mask)
    tl.store(RSTD + row, rstd, mask=row_ok)
    if COMPRESSED:
        tl.store(SUMS + row, total, mask=row_ok)


def _rms_dots(X, GAMMA, DY, DOTS, rows, width, BLOCK_D: tl.constexpr, HAS_GAMMA: tl.constexpr):
    """`sum(dy [* gamma] * x)` of one long row, in chunks (the first pass of a streaming backward)."""
    row = tl.program_id(0)
    X += row.to(tl.int64) * width
    DY += row.to(tl.int64) * width
    dot = tl.full([BLOCK_D], 0.0, tl.float32)
    for start in range(0, width, BLOCK_D):
        col = start + tl.arange(0, BLOCK_D)
        ok = col < width
        g = tl.load(DY + col, mask=ok, other=0.0).to(tl.float32)
        if HAS_GAMMA:
            g = g * tl.load(GAMMA + col, mask=ok, other=0.0).to(tl.float32)
        dot += g * tl.load(X + col, mask=ok, other=0.0).to(tl.float32)
    tl.store(DOTS + row, tl.reduce(dot, 0, tl.standard._sum_combine))


def _rms_backward(
    X,
    GAMMA,
    DY,
    RSTD,
    SUMS,
    DOTS,
    DX,
    DGAMMA,
    rows,
    width,
    inv_count,
    row_blocks,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
    ONE_BLOCK: tl.constexpr,
    HAS_GAMMA: tl.constexpr,
    COMPRESSED: tl.constexpr,
):
    """`dx` for the row blocks `program, program + programs, ...` and columns block `program_id(1)`;
    this program's partial `dgamma = sum(dy x rstd)` over its rows goes to row `program` of DGAMMA."""
    program = tl.program_id(0)
    programs = tl.num_programs(0)
    col = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = col < width
    gamma = tl.full([BLOCK_D], 1.0, tl.float32)
    if HAS_GAMMA:
        gamma = tl.load(GAMMA + col, mask=col_ok, other=0.0).to(tl.float32)
    dgamma = tl.full([BLOCK_D], 0.0, tl.float32)
    for block in range(program, row_blocks, programs):
        row = block * BLOCK_R + tl.arange(0, BLOCK_R)
        row_ok = row < rows
        shift = tl.cast(block * BLOCK_R, tl.int64) * width  # the loop index is a Python int when interpreted
        offset = tl.arange(0, BLOCK_R)[:, None] * width + col[None, :]
        mask = row_ok[:, None] & col_ok[None, :]
        x = tl.load(X + shift + offset, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + shift + offset, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + row, mask=row_ok, other=0.0)
        g = dy * gamma[None, :]
        if ONE_BLOCK:
            dot = tl.reduce(g * x, 1, tl.standard._sum_combine)
        else:
            dot = tl.load(DOTS + row, mask=row_ok, other=0.0)
        center = x
        if COMPRESSED:
            center = x + tl.load(SUMS + row, mask=row_ok, other=0.0)[:, None]
        dx = g * rstd[:, None] - center * (rstd * rstd * rstd * dot * inv_count)[:, None]
        tl.store(DX + shift + offset, dx, mask=mask)
        if HAS_GAMMA:
            dgamma += tl.reduce(dy * x * rstd[:, None], 0, tl.standard._sum_combine)
    if HAS_GAMMA:
        tl.store(DGAMMA + program * width + col, dgamma, mask=col_ok)


def _group_moments(
    X,
    MEANS,
    M2S,
    positions,
    groups,
    group_size,
    stride_n,
    stride_p,
    stride_c,
    chunk,
    splits,
    BLOCK_P: tl.constexpr,
    PER_BLOCK: tl.constexpr,
    BLOCK_G: tl.constexpr,
):
    """Per sample and channel group, over the positions of this split: the mean and the sum of
    squared deviations, tile by tile (a two-pass tile in registers, merged by Chan's formula)."""
    group = tl.program_id(0) * PER_BLOCK + tl.arange(0, PER_BLOCK)
    n = tl.program_id(1)
    split = tl.program_id(2)
    within = tl.arange(0, BLOCK_G)
    channel = group[:, None] * group_size + within[None, :]
    channel_ok = (group[:, None] < groups) & (within[None, :] < group_size)
    # the sample's 64-bit offset goes on the pointers; offsets inside a sample stay 32-bit
    sample = n.to(tl.int64) * stride_n
    X += sample
    start = split * chunk
    end = tl.minimum(start + chunk, positions)
    count = tl.full([PER_BLOCK], 0.0, tl.float32)
    mean = tl.full([PER_BLOCK], 0.0, tl.float32)
    m2 = tl.full([PER_BLOCK], 0.0, tl.float32)
    for p0 in range(start, end, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        mask = (p < end)[:, None, None] & channel_ok[None, :, :]
        offset = p[:, None, None] * stride_p + channel[None, :, :] * stride_c
        t = tl.load(X + offset, mask=mask, other=0.0).to(tl.float32)
        k = (tl.minimum(end - p0, BLOCK_P) * group_size).to(tl.float32)
        tile_mean = tl.reduce(tl.reduce(t, 2, tl.standard._sum_combine), 0, tl.standard._sum_combine) / k
        d = tl.where(mask, t - tile_mean[None, :, None], 0.0)
        tile_m2 = tl.reduce(tl.reduce(d * d, 2, tl.standard._sum_combine), 0, tl.standard._sum_combine)
        delta = tile_mean - mean
        merged = count + k
        mean += delta * (k / merged)
        m2 += tile_m2 + delta * delta * (count * (k / merged))
        count = merged
    out = (n * splits + split) * groups + group
    tl.store(MEANS + out, mean, mask=group < groups)
    tl.store(M2S + out, m2, mask=group < groups)


def _sample_forward(
    X,
    V,
    Y,
    MEAN,
    RSTD,
    EPS,
    positions,
    groups,
    group_size,
    stride_n,
    stride_p,
    stride_c,
    chunk,
    inv_count,
    BLOCK_P: tl.constexpr,
    PER_BLOCK: tl.constexpr,
    BLOCK_G: tl.constexpr,
    ONE_PASS: tl.constexpr,
    CENTERED: tl.constexpr,
    GATE: tl.constexpr,
):
    """`y = x * gate * rstd_g`; GATE 0: none (FRN), 1: `sigmoid(x)`, 2: `sigmoid(v x)`.

    ONE_PASS: the whole sample's group tile is one block; the program computes the group mean and
    `rstd = rsqrt(stat + eps)` from it and writes them. Otherwise it reads them."""
    group = tl.program_id(0) * PER_BLOCK + tl.arange(0, PER_BLOCK)
    n = tl.program_id(1)
    split = tl.program_id(2)
    within = tl.arange(0, BLOCK_G)
    channel = group[:, None] * group_size + within[None, :]
    channel_ok = (group[:, None] < groups) & (within[None, :] < group_size)
    group_ok = group < groups
    statistic = n * groups + group
    # the sample's 64-bit offset goes on the pointers; offsets inside a sample stay 32-bit
    sample = n.to(tl.int64) * stride_n
    X += sample
    Y += sample
    if GATE == 2:
        v = tl.load(V + channel, mask=channel_ok, other=0.0)[None, :, :]
    if ONE_PASS:
        epsilon = tl.load(EPS)
    else:
        rstd = tl.load(RSTD + statistic, mask=group_ok, other=0.0)
    start = split * chunk
    end = tl.minimum(start + chunk, positions)
    for p0 in range(start, end, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        mask = (p < end)[:, None, None] & channel_ok[None, :, :]
        offset = p[:, None, None] * stride_p + channel[None, :, :] * stride_c
        t = tl.load(X + offset, mask=mask, other=0.0).to(tl.float32)
        if ONE_PASS:
            if CENTERED:
                mean = tl.reduce(tl.reduce(t, 2, tl.standard._sum_combine), 0, tl.standard._sum_combine) * inv_count
                d = tl.where(mask, t - mean[None, :, None], 0.0)
            else:
                mean = tl.full([PER_BLOCK], 0.0, tl.float32)
                d = t
            square = tl.reduce(tl.reduce(d * d, 2, tl.standard._sum_combine), 0, tl.standard._sum_combine)
            rstd = tl.rsqrt(square * inv_count + epsilon)
            tl.store(MEAN + statistic, mean, mask=group_ok)
            tl.store(RSTD + statistic, rstd, mask=group_ok)
        y = t * rstd[None, :, None]
        if GATE == 1:
            y = y / (1.0 + tl.exp(-t))
        if GATE == 2:
            y = y / (1.0 + tl.exp(-v * t))
        tl.store(Y + offset, y, mask=mask)


def _sample_backward(
    X,
    V,
    DY,
    DX,
    MEAN,
    RSTD,
    SUMS,
    SLOPES,
    positions,
    groups,
    group_size,
    channels,
    stride_n,
    stride_p,
    stride_c,
    chunk,
    splits,
    inv_count,
    BLOCK_P: tl.constexpr,
    PER_BLOCK: tl.constexpr,
    BLOCK_G: tl.constexpr,
    PHASE: tl.constexpr,
    GATE: tl.constexpr,
):
    """Backward of `_sample_forward`. PHASE 0: the sample's group tile in one block, sums and `dx`;
    1: this split's partial sums only; 2: `dx` from the summed SUMS.

    Sums: `S = sum_group(dy s x)` per group (SUMS) and, with `v`, `sum_P(dy s (1 - s) x^2)` per
    channel (SLOPES), `s` the gate (1 without one)."""
    group = tl.program_id(0) * PER_BLOCK + tl.arange(0, PER_BLOCK)
    n = tl.program_id(1)
    split = tl.program_id(2)
    within = tl.arange(0, BLOCK_G)
    channel = group[:, None] * group_size + within[None, :]
    channel_ok = (group[:, None] < groups) & (within[None, :] < group_size)
    group_ok = group < groups
    statistic = n * groups + group
    # the sample's 64-bit offset goes on the pointers; offsets inside a sample stay 32-bit
    sample = n.to(tl.int64) * stride_n
    X += sample
    DY += sample
    DX += sample
    mean = tl.load(MEAN + statistic, mask=group_ok, other=0.0)[None, :, None]
    rstd = tl.load(RSTD + statistic, mask=group_ok, other=0.0)[None, :, None]
    v = tl.full([1, PER_BLOCK, BLOCK_G], 1.0, tl.float32)
    if GATE == 2:
        v = tl.load(V + channel, mask=channel_ok, other=0.0)[None, :, :]
    if PHASE == 2:
        total = tl.load(SUMS + statistic, mask=group_ok, other=0.0)
    else:
        total = tl.full([PER_BLOCK], 0.0, tl.float32)
    slope = tl.full([PER_BLOCK, BLOCK_G], 0.0, tl.float32)
    start = split * chunk
    end = tl.minimum(start + chunk, positions)
    for p0 in range(start, end, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        mask = (p < end)[:, None, None] & channel_ok[None, :, :]
        offset = p[:, None, None] * stride_p + channel[None, :, :] * stride_c
        t = tl.load(X + offset, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + offset, mask=mask, other=0.0).to(tl.float32)
        if GATE == 0:
            gs = dy
        else:
            gate = 1.0 / (1.0 + tl.exp(-v * t))
            gs = dy * gate
            # the gate's slope term: dy s (1 - s) x, shared by dx and dv
            sloped = gs * (1.0 - gate) * t
        if PHASE != 2:
            total += tl.reduce(tl.reduce(gs * t, 2, tl.standard._sum_combine), 0, tl.standard._sum_combine)
            if GATE == 2:
                slope += tl.reduce(sloped * t, 0, tl.standard._sum_combine)
        if PHASE != 1:
            dx = rstd * gs - rstd * rstd * rstd * (total * inv_count)[None, :, None] * (t - mean)
            if GATE != 0:
                dx += v * rstd * sloped
            tl.store(DX + offset, dx, mask=mask)
    if PHASE != 2:
        partial = (n * splits + split) * groups + group
        tl.store(SUMS + partial, total, mask=group_ok)
        if GATE == 2:
            tl.store(SLOPES + (n * splits + split) * channels + channel, slope, mask=channel_ok)


def _evonorm_b_forward(
    X,
    Y,
    V,
    A,
    S,
    positions,
    channels,
    stride_n,
    stride_p,
    stride_c,
    chunk,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
    VARIANT: tl.constexpr,
):
    """`y = x / max(a, r)`; VARIANT 0: `r = v x + s`, 1: `(x + 1) s`, 2: `s - x`."""
    c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    n = tl.program_id(1)
    split = tl.program_id(2)
    c_ok = c < channels
    a = tl.load(A + c, mask=c_ok, other=1.0)[None, :]
    s = tl.load(S + n * channels + c, mask=c_ok, other=1.0)[None, :]
    if VARIANT == 0:
        v = tl.load(V + c, mask=c_ok, other=0.0)[None, :]
    # the sample's 64-bit offset goes on the pointers; offsets inside a sample stay 32-bit
    sample = n.to(tl.int64) * stride_n
    X += sample
    Y += sample
    start = split * chunk
    end = tl.minimum(start + chunk, positions)
    for p0 in range(start, end, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        mask = (p < end)[:, None] & c_ok[None, :]
        offset = p[:, None] * stride_p + c[None, :] * stride_c
        x = tl.load(X + offset, mask=mask, other=0.0)
        if VARIANT == 0:
            right = v * x + s
        elif VARIANT == 1:
            right = (x + 1.0) * s
        else:
            right = s - x
        tl.store(Y + offset, x / tl.maximum(a, right), mask=mask)


def _evonorm_b_backward_sums(
    X,
    DY,
    V,
    A,
    S,
    INSTANCE,
    BATCH,
    DV,
    positions,
    channels,
    stride_n,
    stride_p,
    stride_c,
    chunk,
    splits,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
    VARIANT: tl.constexpr,
):
    """Per sample and channel, over this split: `sum(h_r w)` (w = x + 1 for B1, else 1),
    `sum(h_a)`, and for B0 `sum(h_r x)`; `h = -dy x / max(a, r)^2` on the branch that won."""
    c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    n = tl.program_id(1)
    split = tl.program_id(2)
    c_ok = c < channels
    a = tl.load(A + c, mask=c_ok, other=1.0)[None, :]
    s = tl.load(S + n * channels + c, mask=c_ok, other=1.0)[None, :]
    if VARIANT == 0:
        v = tl.load(V + c, mask=c_ok, other=0.0)[None, :]
    # the sample's 64-bit offset goes on the pointers; offsets inside a sample stay 32-bit
    sample = n.to(tl.int64) * stride_n
    X += sample
    DY += sample
    instance = tl.full([BLOCK_C], 0.0, tl.float32)
    batch = tl.full([BLOCK_C], 0.0, tl.float32)
    dv = tl.full([BLOCK_C], 0.0, tl.float32)
    start = split * chunk
    end = tl.minimum(start + chunk, positions)
    for p0 in range(start, end, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        mask = (p < end)[:, None] & c_ok[None, :]
        offset = p[:, None] * stride_p + c[None, :] * stride_c
        x = tl.load(X + offset, mask=mask, other=0.0)
        dy = tl.load(DY + offset, mask=mask, other=0.0)
        if VARIANT == 0:
            right = v * x + s
        elif VARIANT == 1:
            right = (x + 1.0) * s
        else:
            right = s - x
        d = tl.maximum(a, right)
        h = -dy * x / (d * d)
        h_right = tl.where(right > a, h, 0.0)
        if VARIANT == 1:
            instance += tl.reduce(h_right * (x + 1.0), 0, tl.standard._sum_combine)
        else:
            instance += tl.reduce(h_right, 0, tl.standard._sum_combine)
        batch += tl.reduce(h - h_right, 0, tl.standard._sum_combine)
        if VARIANT == 0:
            dv += tl.reduce(h_right * x, 0, tl.standard._sum_combine)
    out = (n * splits + split) * channels + c
    tl.store(INSTANCE + out, instance, mask=c_ok)
    tl.store(BATCH + out, batch, mask=c_ok)
    if VARIANT == 0:
        tl.store(DV + out, dv, mask=c_ok)


def _evonorm_b_backward(
    X,
    DY,
    DX,
    V,
    A,
    S,
    LINEAR,
    OFFSET,
    positions,
    channels,
    stride_n,
    stride_p,
    stride_c,
    chunk,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
    VARIANT: tl.constexpr,
):
    """`dx = dy / d + k h_r + L x - O`: k = v (B0), s (B1), -1 (B2); L, O per sample and channel."""
    c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    n = tl.program_id(1)
    split = tl.program_id(2)
    c_ok = c < channels
    a = tl.load(A + c, mask=c_ok, other=1.0)[None, :]
    s = tl.load(S + n * channels + c, mask=c_ok, other=1.0)[None, :]
    linear = tl.load(LINEAR + n * channels + c, mask=c_ok, other=0.0)[None, :]
    shift = tl.load(OFFSET + n * channels + c, mask=c_ok, other=0.0)[None, :]
    if VARIANT == 0:
        v = tl.load(V + c, mask=c_ok, other=0.0)[None, :]
    # the sample's 64-bit offset goes on the pointers; offsets inside a sample stay 32-bit
    sample = n.to(tl.int64) * stride_n
    X += sample
    DY += sample
    DX += sample
    start = split * chunk
    end = tl.minimum(start + chunk, positions)
    for p0 in range(start, end, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        mask = (p < end)[:, None] & c_ok[None, :]
        offset = p[:, None] * stride_p + c[None, :] * stride_c
        x = tl.load(X + offset, mask=mask, other=0.0)
        dy = tl.load(DY + offset, mask=mask, other=0.0)
        if VARIANT == 0:
            right = v * x + s
        elif VARIANT == 1:
            right = (x + 1.0) * s
        else:
            right = s - x
        d = tl.maximum(a, right)
        h_right = tl.where(right > a, -dy * x / (d * d), 0.0)
        if VARIANT == 0:
            dx = dy / d + v * h_right
        elif VARIANT == 1:
            dx = dy / d + s * h_right
        else:
            dx = dy / d - h_right
        tl.store(DX + offset, dx + linear * x - shift, mask=mask)


def _scale_channels(
    X,
    Y,
    SCALE,
    positions,
    channels,
    stride_n,
    stride_p,
    stride_c,
    chunk,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """`y = x * scale[c]` (PowerNorm's forward)."""
    c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    n = tl.program_id(1)
    split = tl.program_id(2)
    c_ok = c < channels
    scale = tl.load(SCALE + c, mask=c_ok, other=0.0)[None, :]
    # the sample's 64-bit offset goes on the pointers; offsets inside a sample stay 32-bit
    sample = n.to(tl.int64) * stride_n
    X += sample
    Y += sample
    start = split * chunk
    end = tl.minimum(start + chunk, positions)
    for p0 in range(start, end, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        mask = (p < end)[:, None] & c_ok[None, :]
        offset = p[:, None] * stride_p + c[None, :] * stride_c
        tl.store(Y + offset, tl.load(X + offset, mask=mask, other=0.0) * scale, mask=mask)


def _power_backward(
    X,
    DZ,
    DX,
    RN,
    RB,
    GNU,
    GZ,
    ZZ,
    positions,
    channels,
    stride_n,
    stride_p,
    stride_c,
    chunk,
    splits,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """`dx = rb (dz - g_a nu z)`, `z = x rn`, with this split's per-channel sums of `dz z`, `z^2`."""
    c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    n = tl.program_id(1)
    split = tl.program_id(2)
    c_ok = c < channels
    rn = tl.load(RN + c, mask=c_ok, other=0.0)[None, :]
    rb = tl.load(RB + c, mask=c_ok, other=0.0)[None, :]
    gnu = tl.load(GNU + c, mask=c_ok, other=0.0)[None, :]
    # the sample's 64-bit offset goes on the pointers; offsets inside a sample stay 32-bit
    sample = n.to(tl.int64) * stride_n
    X += sample
    DZ += sample
    DX += sample
    gz = tl.full([BLOCK_C], 0.0, tl.float32)
    zz = tl.full([BLOCK_C], 0.0, tl.float32)
    start = split * chunk
    end = tl.minimum(start + chunk, positions)
    for p0 in range(start, end, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        mask = (p < end)[:, None] & c_ok[None, :]
        offset = p[:, None] * stride_p + c[None, :] * stride_c
        z = tl.load(X + offset, mask=mask, other=0.0) * rn
        dz = tl.load(DZ + offset, mask=mask, other=0.0)
        tl.store(DX + offset, rb * (dz - gnu * z), mask=mask)
        gz += tl.reduce(dz * z, 0, tl.standard._sum_combine)
        zz += tl.reduce(z * z, 0, tl.standard._sum_combine)
    out = (n * splits + split) * channels + c
    tl.store(GZ + out, gz, mask=c_ok)
    tl.store(ZZ + out, zz, mask=c_ok)


# ---------------------------------------------------------------------------------------------
# Launching: the mode is read at each launch (a backward may run after the `kernels` block).
# ---------------------------------------------------------------------------------------------


@functools.cache
def _build(function, interpret):
    if interpret:
        from triton.runtime.interpreter import InterpretedFunction

        return InterpretedFunction(function)
    return triton.jit(function)


def _launch(function, grid, like, *args, warps=4, **constants):
    """Runs `function` on `grid`; through the interpreter in "interpret" mode or off CUDA."""
    interpret = kernel_backend.kernel_mode() == "interpret" or not like.is_cuda
    _build(function, interpret)[grid](*args, num_warps=warps, **constants)


@functools.cache
def _multiprocessors(index):
    return torch.cuda.get_device_properties(index).multi_processor_count


def _target_programs(device, per_sm=PROGRAMS_PER_SM):
    if device.type == "cuda":
        return per_sm * _multiprocessors(device.index if device.index is not None else torch.cuda.current_device())
    return INTERPRETER_PROGRAMS


def _pow2(n):
    return triton.next_power_of_2(max(1, int(n)))


def _cdiv(a, b):
    return -(-a // b)


def _warps(elements, live=1):
    """Warps for a tile of `elements`, `live` full tiles at once (x; x and dy): about 16 values
    of each per thread (ptxas: no spills up to 16384-element forward and 8192-element backward tiles)."""
    return min(32, max(4, _pow2(elements * live) // 512))


# ---------------------------------------------------------------------------------------------
# Layouts and plans.
# ---------------------------------------------------------------------------------------------


class _View(NamedTuple):
    """A contiguous tensor as (samples, positions, channels), with the element strides of each."""

    samples: int
    positions: int
    channels: int
    stride_n: int
    stride_p: int
    stride_c: int
    channels_last: bool

    def strides(self):
        return self.stride_n, self.stride_p, self.stride_c


def _view(shape, channel_axis):
    """The (N, P, C) view of a contiguous tensor of `shape`, or None if its channel axis is neither
    the last nor 1."""
    rank = len(shape)
    if rank < 2 or not 0 < channel_axis < rank:
        return None
    if channel_axis == rank - 1:
        positions, channels = math.prod(shape[1:-1]), shape[-1]
        return _View(shape[0], positions, channels, positions * channels, channels, 1, True)
    if channel_axis == 1:
        positions, channels = math.prod(shape[2:]), shape[1]
        return _View(shape[0], positions, channels, positions * channels, 1, positions, False)
    return None


def _channel_axis_of(rank, spatial_axes):
    """The one axis that is neither the batch axis nor in `spatial_axes`, or None."""
    spatial = {a % rank for a in spatial_axes}
    rest = [a for a in range(1, rank) if a not in spatial]
    return rest[0] if len(rest) == 1 and len(spatial) == rank - 2 and 0 not in spatial else None


class _Plan(NamedTuple):
    block_p: int
    per_block: int  # groups per program (channels per program for per-channel kernels)
    block_g: int
    group_blocks: int
    splits: int
    chunk: int  # positions per split, a multiple of block_p
    elements: int  # of a tile

    def grid(self, samples):
        return (self.group_blocks, samples, self.splits)


def _split(view, groups, block_p, per_block, block_g, target):
    group_blocks = _cdiv(groups, per_block)
    splits = max(1, min(_cdiv(target, view.samples * group_blocks), _cdiv(view.positions, block_p)))
    chunk = _cdiv(_cdiv(view.positions, splits), block_p) * block_p
    splits = _cdiv(view.positions, chunk)
    return _Plan(block_p, per_block, block_g, group_blocks, splits, chunk, block_p * per_block * block_g)


def _streaming_plan(view, groups, device):
    """Tiles of about TILE_ELEMENTS streamed over positions; channels last, 64 contiguous channels
    per tile where there are as many (coalesced loads); positions split across programs until
    there are about as many programs as the device runs at once."""
    block_g = _pow2(view.channels // groups)
    if view.channels_last:
        per_block = min(_pow2(groups), max(1, 64 // block_g))
        block_p = min(_pow2(view.positions), max(1, TILE_ELEMENTS // (per_block * block_g)))
    else:
        block_p = min(_pow2(view.positions), max(1, TILE_ELEMENTS // block_g), 1024)
        per_block = min(_pow2(groups), max(1, TILE_ELEMENTS // (block_p * block_g)))
    return _split(view, groups, block_p, per_block, block_g, _target_programs(device))


def _one_pass_plan(view, groups, budget, device):
    """All positions of a sample's channel groups in one tile of at most `budget` elements, or None.
    Channels last, a tile spans at least 8 channels (32 bytes) where there are as many."""
    block_g = _pow2(view.channels // groups)
    block_p = _pow2(view.positions)
    least = min(_pow2(groups), max(1, 8 // block_g)) if view.channels_last else 1
    if block_p * block_g * least > budget:
        return None
    per_block = min(_pow2(groups), budget // (block_p * block_g))
    target = _target_programs(device)
    while per_block > least and view.samples * _cdiv(groups, per_block) < target:
        per_block //= 2
    elements = block_p * per_block * block_g
    return _Plan(block_p, per_block, block_g, _cdiv(groups, per_block), 1, block_p, elements)


def _moments(x, view, groups):
    """Per sample and channel group: (mean, variance), each (N, groups) float32; one pass over x."""
    plan = _streaming_plan(view, groups, x.device)
    group_size = view.channels // groups
    shape = (view.samples, plan.splits, groups)
    means = torch.empty(shape, dtype=torch.float32, device=x.device)
    m2s = torch.empty_like(means)
    _launch(
        _group_moments,
        plan.grid(view.samples),
        x,
        x,
        means,
        m2s,
        view.positions,
        groups,
        group_size,
        *view.strides(),
        plan.chunk,
        plan.splits,
        warps=_warps(plan.elements),
        BLOCK_P=plan.block_p,
        PER_BLOCK=plan.per_block,
        BLOCK_G=plan.block_g,
    )
    # Chan's merge of the splits: counts differ only in the last split.
    starts = torch.arange(plan.splits, device=x.device) * plan.chunk
    counts = ((view.positions - starts).clamp(max=plan.chunk) * group_size).to(torch.float32)[None, :, None]
    total = float(view.positions * group_size)
    mean = (means * counts).sum(1) / total
    m2 = m2s.sum(1) + (counts * (means - mean[:, None, :]) ** 2).sum(1)
    return mean, m2 / total


# ---------------------------------------------------------------------------------------------
# Argument checks shared by `applies` (CUDA) and the kernels (any device, interpret mode).
# ---------------------------------------------------------------------------------------------


def _is_tensor(x, dtypes=(torch.float32,)):
    return isinstance(x, torch.Tensor) and x.dtype in dtypes and x.numel() > 0


def _torch_kernel(name, supports):
    """Registers the decorated function as the torch kernel `name` for the arguments `supports`
    covers, on CUDA tensors."""
    return kernel_backend.register_kernel(name, backends=("torch",), applies=_on_device, supports=supports)


def _on_device(x, *args, **kwargs):
    """Every kernel's `applies`: a CUDA tensor, outside `torch.compile` (Inductor fuses the reference)."""
    return isinstance(x, torch.Tensor) and x.is_cuda and not torch.compiler.is_compiling()


def _fits(x):
    """Offsets inside a sample fit 32 bits, and the samples the grid's second dimension (65535)."""
    return x.numel() // max(1, x.shape[0]) < _LIMIT and x.shape[0] <= 65535


def _broadcast_dims(t, rank):
    """`t`'s shape padded with leading ones to `rank`, or None if `t` is not a tensor of at most rank dims."""
    if not isinstance(t, torch.Tensor) or t.ndim > rank:
        return None
    return (1,) * (rank - t.ndim) + tuple(t.shape)


def _is_per_channel(t, rank, channel_axis, channels):
    dims = _broadcast_dims(t, rank)
    return (
        dims is not None
        and t.dtype in (torch.float32, torch.float16, torch.bfloat16)
        and all(d == 1 for a, d in enumerate(dims) if a != channel_axis)
        and dims[channel_axis] in (1, channels)
    )


def _channel_vector(t, channels):
    """A per-channel tensor (checked by `_is_per_channel`) as a contiguous float32 (C,) vector;
    differentiable, so that autograd sums the gradient back over a broadcast channel axis."""
    return t.reshape(-1).to(torch.float32).expand(channels).contiguous()


def _kept_dims(vector, rank, channel_axis):
    """A (C,) vector shaped as a statistic with dims kept: size 1 off `channel_axis`."""
    shape = [1] * rank
    shape[channel_axis] = vector.shape[0]
    return vector.reshape(shape)


# ---------------------------------------------------------------------------------------------
# RMSNorm and CRMSNorm.
# ---------------------------------------------------------------------------------------------


_RMS_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _row_plan(rows, width):
    one_block = _pow2(width) <= ROW_BLOCK_ELEMENTS
    block_d = _pow2(width) if one_block else max(1, ROW_BLOCK_ELEMENTS // 2)
    block_r = max(1, min(_pow2(rows), TILE_ELEMENTS // block_d)) if one_block else 1
    return one_block, block_r, block_d


class _RootMeanSquare(torch.autograd.Function):
    """(rows, D) input, (D,) gain or None; float32 output."""

    @staticmethod
    def forward(ctx, x, gamma, epsilon, compressed):
        rows, width = x.shape
        one_block, block_r, block_d = _row_plan(rows, width)
        y = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        rstd = torch.empty(rows, dtype=torch.float32, device=x.device)
        sums = torch.empty(rows, dtype=torch.float32, device=x.device) if compressed else rstd
        inv_count = 1.0 / (width + 1 if compressed else width)
        _launch(
            _rms_forward,
            (_cdiv(rows, block_r),),
            x,
            x,
            x if gamma is None else gamma,
            y,
            rstd,
            sums,
            rows,
            width,
            float(epsilon),
            inv_count,
            warps=_warps(block_r * block_d),
            BLOCK_R=block_r,
            BLOCK_D=block_d,
            ONE_BLOCK=one_block,
            HAS_GAMMA=gamma is not None,
            COMPRESSED=compressed,
        )
        ctx.save_for_backward(x, gamma, rstd, sums)
        ctx.compressed = compressed
        return y

    @staticmethod
    def backward(ctx, dy):
        x, gamma, rstd, sums = ctx.saved_tensors
        compressed = ctx.compressed
        rows, width = x.shape
        dy = dy.contiguous()
        one_block, block_r, block_d = _row_plan(rows, width)
        has_gamma = gamma is not None
        dots = rstd
        if not one_block:
            dots = torch.empty_like(rstd)
            _launch(
                _rms_dots,
                (rows,),
                x,
                x,
                gamma if has_gamma else x,
                dy,
                dots,
                rows,
                width,
                warps=_warps(block_d, 2),
                BLOCK_D=block_d,
                HAS_GAMMA=has_gamma,
            )
        col_blocks = _cdiv(width, block_d)
        row_blocks = _cdiv(rows, block_r)
        # a few programs per SM, each looping over row blocks: dgamma's partial sums stay small
        programs = max(1, min(row_blocks, _target_programs(x.device, per_sm=2) // col_blocks))
        dx = torch.empty_like(x)
        dgamma = torch.empty((programs, width), dtype=torch.float32, device=x.device) if has_gamma else rstd
        _launch(
            _rms_backward,
            (programs, col_blocks),
            x,
            x,
            gamma if has_gamma else x,
            dy,
            rstd,
            sums,
            dots,
            dx,
            dgamma,
            rows,
            width,
            1.0 / (width + 1 if compressed else width),
            row_blocks,
            warps=_warps(block_r * block_d, 2),
            BLOCK_R=block_r,
            BLOCK_D=block_d,
            ONE_BLOCK=one_block,
            HAS_GAMMA=has_gamma,
            COMPRESSED=compressed,
        )
        dgamma = dgamma.sum(0).to(gamma.dtype) if has_gamma and ctx.needs_input_grad[1] else None
        return dx, dgamma, None, None


def _gamma_dims(gamma, normalized_shape):
    """`gamma`'s shape without its leading ones, if it broadcasts to the normalized axes' shape
    (size 1 before them), else None."""
    dims = tuple(gamma.shape)
    lead = len(dims) - len(normalized_shape)
    if lead > 0:
        if any(d != 1 for d in dims[:lead]):
            return None
        dims = dims[lead:]
    try:
        return dims if torch.broadcast_shapes(dims, normalized_shape) == normalized_shape else None
    except RuntimeError:
        return None


def _rms_supported(x, count, gamma):
    # 32-bit offsets inside a block of rows and in dgamma's (programs, D) partial sums
    if not (_is_tensor(x, _RMS_DTYPES) and x.ndim > count and math.prod(x.shape[x.ndim - count :]) < _LIMIT // 1024):
        return False
    if gamma is None:
        return True
    return _is_tensor(gamma, _RMS_DTYPES) and _gamma_dims(gamma, tuple(x.shape[x.ndim - count :])) is not None


def _rms(x, count, epsilon, gamma, compressed):
    normalized_shape = tuple(x.shape[x.ndim - count :])
    width = math.prod(normalized_shape)
    vector = None
    if gamma is not None:  # differentiable: autograd sums the gradient over broadcast axes
        vector = gamma.reshape(_gamma_dims(gamma, normalized_shape)).expand(normalized_shape).reshape(-1).contiguous()
    y = _RootMeanSquare.apply(x.contiguous().reshape(-1, width), vector, epsilon, compressed)
    return y.reshape(x.shape)


def _axis_count(axis):
    return 1 if isinstance(axis, int) else len(axis)


def _rms_supports(x, axis, epsilon, gamma=None):
    return _rms_supported(x, _axis_count(axis), gamma)


@_torch_kernel("rms_normalization", _rms_supports)
def rms_normalization(x, axis, epsilon, gamma=None):
    """`keras_norms.ops.rms_normalization` over trailing axes (the op checks): one program per
    block of rows; statistics and output in one read where the row fits."""
    return _rms(x, _axis_count(axis), epsilon, gamma, compressed=False)


def _crms_supports(z, axis, epsilon, gamma=None):
    return _rms_supported(z, 1, gamma)


@_torch_kernel("crms_normalization", _crms_supports)
def crms_normalization(z, axis, epsilon, gamma=None):
    """`keras_norms.ops.crms_normalization` over the last axis (the op checks)."""
    return _rms(z, 1, epsilon, gamma, compressed=True)


# ---------------------------------------------------------------------------------------------
# EvoNorm-B0, B1, B2.
# ---------------------------------------------------------------------------------------------


class _EvoNormBatch(torch.autograd.Function):
    """Contiguous x, (C,) v or None, (C,) moving variance or None (training); returns (y, s2_b)."""

    @staticmethod
    def forward(ctx, x, v, moving, view, variant, epsilon):
        mean_i, var_i = _moments(x, view, view.channels)
        training = moving is None
        if training:
            mean_b = mean_i.mean(0)
            var_b = var_i.mean(0) + ((mean_i - mean_b) ** 2).mean(0)
        else:
            mean_b, var_b = torch.zeros_like(moving), moving
        statistic = var_i if variant == 0 else var_i + mean_i**2  # B1, B2: the mean square
        a = torch.sqrt(var_b + epsilon)
        s = torch.sqrt(statistic + epsilon).contiguous()
        plan = _streaming_plan(view, view.channels, x.device)
        y = torch.empty_like(x)
        _launch(
            _evonorm_b_forward,
            plan.grid(view.samples),
            x,
            x,
            y,
            x if v is None else v,
            a,
            s,
            view.positions,
            view.channels,
            *view.strides(),
            plan.chunk,
            warps=_warps(plan.elements),
            BLOCK_P=plan.block_p,
            BLOCK_C=plan.per_block,
            VARIANT=variant,
        )
        ctx.save_for_backward(x, v, a, s, mean_i, mean_b)
        ctx.setup = (view, variant, training, plan)
        var_b = var_b if training else a.new_empty(0)  # inference: the op returns its argument
        ctx.mark_non_differentiable(var_b)
        return y, var_b

    @staticmethod
    def backward(ctx, dy, _):
        x, v, a, s, mean_i, mean_b = ctx.saved_tensors
        view, variant, training, plan = ctx.setup
        dy = dy.contiguous()
        shape = (view.samples, plan.splits, view.channels)
        instance = torch.empty(shape, dtype=torch.float32, device=x.device)
        batch = torch.empty_like(instance)
        dv = torch.empty_like(instance) if variant == 0 else instance
        common = (view.positions, view.channels, *view.strides(), plan.chunk)
        blocks = {"BLOCK_P": plan.block_p, "BLOCK_C": plan.per_block, "VARIANT": variant}
        v_or_x = x if v is None else v
        _launch(
            _evonorm_b_backward_sums,
            plan.grid(view.samples),
            x,
            x,
            dy,
            v_or_x,
            a,
            s,
            instance,
            batch,
            dv,
            *common,
            plan.splits,
            warps=_warps(plan.elements, 2),
            **blocks,
        )
        # dx = dy / d + k h_r + T (x - c_i) / (s P) [+ H (x - mean_b) / (a N P)]
        linear = instance.sum(1) / (s * view.positions)
        offset = linear * mean_i if variant == 0 else torch.zeros_like(linear)
        if training:
            per_channel = batch.sum((0, 1)) / (a * (view.samples * view.positions))
            linear = linear + per_channel
            offset = offset + per_channel * mean_b
        dx = torch.empty_like(x)
        _launch(
            _evonorm_b_backward,
            plan.grid(view.samples),
            x,
            x,
            dy,
            dx,
            v_or_x,
            a,
            s,
            linear.contiguous(),
            offset.contiguous(),
            *common,
            warps=_warps(plan.elements, 2),
            **blocks,
        )
        dv_sum = dv.sum((0, 1)) if variant == 0 and ctx.needs_input_grad[1] else None
        return dx, dv_sum, None, None, None, None


def _evonorm_b_layout(x, spatial_axes):
    if not (_is_tensor(x) and 3 <= x.ndim <= 5 and _fits(x)):
        return None
    channel_axis = _channel_axis_of(x.ndim, spatial_axes)
    return None if channel_axis is None else (channel_axis, _view(tuple(x.shape), channel_axis))


def _evonorm_b_supported(x, v, spatial_axes, moving_variance):
    layout = _evonorm_b_layout(x, spatial_axes)
    if layout is None or layout[1] is None:
        return False
    channel_axis, view = layout
    return all(_is_per_channel(t, x.ndim, channel_axis, view.channels) for t in (v, moving_variance) if t is not None)


def _evonorm_b(variant, x, v, spatial_axes, epsilon, moving_variance):
    channel_axis, view = _evonorm_b_layout(x, spatial_axes)
    vector = None if v is None else _channel_vector(v, view.channels)
    moving = None if moving_variance is None else _channel_vector(moving_variance.detach(), view.channels)
    y, var_b = _EvoNormBatch.apply(x.contiguous(), vector, moving, view, variant, float(epsilon))
    if moving_variance is not None:
        return y, moving_variance, None
    count = torch.tensor(float(view.samples * view.positions), dtype=x.dtype, device=x.device)
    return y, _kept_dims(var_b, x.ndim, channel_axis), count


def _evonorm_b_supports(x, *args, spatial_axes, epsilon, moving_variance=None, **kwargs):
    v = args[0] if args else kwargs.get("v")
    return _evonorm_b_supported(x, v, spatial_axes, moving_variance)


@_torch_kernel("evonorm_b0", _evonorm_b_supports)
def evonorm_b0(x, v, *, spatial_axes, epsilon, moving_variance=None, weights=None, synchronized=False):
    """`keras_norms.ops.evonorm_b0` unmasked on one replica (the op checks)."""
    return _evonorm_b(0, x, v, spatial_axes, epsilon, moving_variance)


@_torch_kernel("evonorm_b1", _evonorm_b_supports)
def evonorm_b1(x, *, spatial_axes, epsilon, moving_variance=None, weights=None, synchronized=False):
    """`keras_norms.ops.evonorm_b1` unmasked on one replica (the op checks)."""
    return _evonorm_b(1, x, None, spatial_axes, epsilon, moving_variance)


@_torch_kernel("evonorm_b2", _evonorm_b_supports)
def evonorm_b2(x, *, spatial_axes, epsilon, moving_variance=None, weights=None, synchronized=False):
    """`keras_norms.ops.evonorm_b2` unmasked on one replica (the op checks)."""
    return _evonorm_b(2, x, None, spatial_axes, epsilon, moving_variance)


# ---------------------------------------------------------------------------------------------
# EvoNorm-S and FRN: per-sample group statistics.
# ---------------------------------------------------------------------------------------------


class _SampleNorm(torch.autograd.Function):
    """`y = x * gate * rsqrt(stat_g + eps)` per sample and channel group. Contiguous x; (C,) v or
    None; `epsilon` a (1,) float32 tensor (FRN's learned one gets a gradient)."""

    @staticmethod
    def forward(ctx, x, v, epsilon, view, groups, centered, gate):
        group_size = view.channels // groups
        inv_count = 1.0 / (view.positions * group_size)
        plan = _one_pass_plan(view, groups, ONE_PASS_ELEMENTS, x.device)
        one_pass = plan is not None
        stats = (view.samples, groups)
        if plan is None:
            plan = _streaming_plan(view, groups, x.device)
            mean, statistic = _moments(x, view, groups)
            if not centered:
                statistic = statistic + mean**2
                mean = torch.zeros_like(mean)
            rstd = torch.rsqrt(statistic + epsilon)
        else:
            mean = torch.empty(stats, dtype=torch.float32, device=x.device)
            rstd = torch.empty_like(mean)
        y = torch.empty_like(x)
        _launch(
            _sample_forward,
            plan.grid(view.samples),
            x,
            x,
            x if v is None else v,
            y,
            mean,
            rstd,
            epsilon,
            view.positions,
            groups,
            group_size,
            *view.strides(),
            plan.chunk,
            inv_count,
            warps=_warps(plan.elements),
            BLOCK_P=plan.block_p,
            PER_BLOCK=plan.per_block,
            BLOCK_G=plan.block_g,
            ONE_PASS=one_pass,
            CENTERED=centered,
            GATE=gate,
        )
        ctx.save_for_backward(x, v, mean, rstd)
        ctx.setup = (view, groups, gate)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, v, mean, rstd = ctx.saved_tensors
        view, groups, gate = ctx.setup
        dy = dy.contiguous()
        group_size = view.channels // groups
        dx = torch.empty_like(x)
        plan = _one_pass_plan(view, groups, ONE_PASS_ELEMENTS // 2, x.device)
        one_pass = plan is not None
        if plan is None:
            plan = _streaming_plan(view, groups, x.device)
        splits = 1 if one_pass else plan.splits
        sums = torch.empty((view.samples, splits, groups), dtype=torch.float32, device=x.device)
        slopes = sums
        if gate == 2:
            slopes = torch.empty((view.samples, splits, view.channels), dtype=torch.float32, device=x.device)

        def launch(phase, sums, grid):
            _launch(
                _sample_backward,
                grid,
                x,
                x,
                x if v is None else v,
                dy,
                dx,
                mean,
                rstd,
                sums,
                slopes,
                view.positions,
                groups,
                group_size,
                view.channels,
                *view.strides(),
                plan.chunk,
                splits,
                1.0 / (view.positions * group_size),
                warps=_warps(plan.elements, 2),
                BLOCK_P=plan.block_p,
                PER_BLOCK=plan.per_block,
                BLOCK_G=plan.block_g,
                PHASE=phase,
                GATE=gate,
            )

        if one_pass:
            launch(0, sums, plan.grid(view.samples))
            totals = sums[:, 0]
        else:
            launch(1, sums, plan.grid(view.samples))
            totals = sums.sum(1).contiguous()
            launch(2, totals, plan.grid(view.samples))
        dv = None
        if gate == 2 and ctx.needs_input_grad[1]:
            dv = (rstd.repeat_interleave(group_size, dim=1) * slopes.sum(1)).sum(0)
        depsilon = None
        if ctx.needs_input_grad[2]:
            depsilon = (-0.5 * (rstd**3 * totals).sum()).reshape(1)
        return dx, dv, depsilon, None, None, None, None


def _sample_layout(x, channel_axis):
    if not (_is_tensor(x) and x.ndim >= 3 and _fits(x)):
        return None
    return _view(tuple(x.shape), channel_axis % x.ndim)


def _evonorm_s_supported(x, v, channel_axis, groups):
    view = _sample_layout(x, channel_axis)
    return (
        view is not None
        and isinstance(groups, int)
        and 0 < groups <= view.channels
        and view.channels % groups == 0
        and (v is None or _is_per_channel(v, x.ndim, channel_axis % x.ndim, view.channels))
    )


def _evonorm_s_supports(x, v=None, *, channel_axis, groups, **kwargs):
    return _evonorm_s_supported(x, v, channel_axis, groups)


@_torch_kernel("evonorm_s", _evonorm_s_supports)
def evonorm_s(x, v=None, *, channel_axis, groups, epsilon, centered=True, apply_act=True, weights=None):
    """`keras_norms.ops.evonorm_s` unmasked, with the activation (the op checks)."""
    view = _sample_layout(x, channel_axis)
    vector = None if v is None else _channel_vector(v, view.channels)
    eps = torch.full((1,), float(epsilon), dtype=torch.float32, device=x.device)
    return _SampleNorm.apply(x.contiguous(), vector, eps, view, groups, bool(centered), 1 if v is None else 2)


def _frn_supported(x, epsilon, spatial_axes):
    if not (_is_tensor(x) and 3 <= x.ndim <= 5):
        return False
    channel_axis = _channel_axis_of(x.ndim, spatial_axes)
    if channel_axis is None or _sample_layout(x, channel_axis) is None:
        return False
    if isinstance(epsilon, torch.Tensor):
        return epsilon.numel() == 1 and epsilon.dtype in (torch.float32, torch.float16, torch.bfloat16)
    return isinstance(epsilon, (int, float))


def _frn_supports(x, epsilon, *, spatial_axes, weights=None):
    return _frn_supported(x, epsilon, spatial_axes)


@_torch_kernel("frn", _frn_supports)
def frn(x, epsilon, *, spatial_axes, weights=None):
    """`keras_norms.ops.frn` unmasked (the op checks); a tensor `epsilon` gets its gradient."""
    channel_axis = _channel_axis_of(x.ndim, spatial_axes)
    view = _sample_layout(x, channel_axis)
    if isinstance(epsilon, torch.Tensor):
        eps = epsilon.reshape(1).to(device=x.device, dtype=torch.float32)
    else:
        eps = torch.full((1,), float(epsilon), dtype=torch.float32, device=x.device)
    return _SampleNorm.apply(x.contiguous(), None, eps, view, view.channels, False, 0)


# ---------------------------------------------------------------------------------------------
# PowerNorm.
# ---------------------------------------------------------------------------------------------


class _PowerNormalization(torch.autograd.Function):
    """z = xs * rn (rn = rsqrt(normalizer + eps) per channel) and a zero auxiliary of the
    statistic scale's shape, with the op's gradients (see `power_normalization`)."""

    @staticmethod
    def forward(ctx, xs, rn, rb, scaled, scale, view, alpha_bkw):
        plan = _streaming_plan(view, view.channels, xs.device)
        z = torch.empty_like(xs)
        _launch(
            _scale_channels,
            plan.grid(view.samples),
            xs,
            xs,
            z,
            rn,
            view.positions,
            view.channels,
            *view.strides(),
            plan.chunk,
            warps=_warps(plan.elements),
            BLOCK_P=plan.block_p,
            BLOCK_C=plan.per_block,
        )
        statistic = scaled / scale.reshape(())
        ctx.save_for_backward(xs, rn, rb, statistic)
        ctx.setup = (view, alpha_bkw, plan, scale.shape)
        return z, torch.zeros(scale.shape, dtype=xs.dtype, device=xs.device)

    @staticmethod
    def backward(ctx, dz, da):
        xs, rn, rb, statistic = ctx.saved_tensors
        view, alpha_bkw, plan, scale_shape = ctx.setup
        dz = dz.contiguous()
        da = da.reshape(()).to(torch.float32)
        gnu = (da * (1.0 - alpha_bkw) * statistic).contiguous()
        shape = (view.samples, plan.splits, view.channels)
        gz = torch.empty(shape, dtype=torch.float32, device=xs.device)
        zz = torch.empty_like(gz)
        dxs = torch.empty_like(xs)
        _launch(
            _power_backward,
            plan.grid(view.samples),
            xs,
            xs,
            dz,
            dxs,
            rn,
            rb,
            gnu,
            gz,
            zz,
            view.positions,
            view.channels,
            *view.strides(),
            plan.chunk,
            plan.splits,
            warps=_warps(plan.elements, 2),
            BLOCK_P=plan.block_p,
            BLOCK_C=plan.per_block,
        )
        positions = float(view.samples * view.positions)
        decay = 1.0 - (1.0 - alpha_bkw) * zz.sum((0, 1)) / positions
        dscaled = gz.sum((0, 1)) / positions + da * statistic * decay
        return dxs, None, None, dscaled, da.reshape(scale_shape), None, None


def _power_layout(xs, reduce_axes):
    if not (_is_tensor(xs) and xs.ndim >= 2):
        return None
    reduced = {a % xs.ndim for a in reduce_axes}
    rest = [a for a in range(xs.ndim) if a not in reduced]
    if len(rest) != 1 or len(reduced) != xs.ndim - 1:
        return None
    channel_axis = rest[0]
    view = _view(tuple(xs.shape), channel_axis)
    if view is None:
        return None
    if not view.channels_last:
        return (channel_axis, view) if _fits(xs) else None
    if xs.numel() >= _LIMIT:
        return None
    # one sample of N * P positions: the splits run over every position
    return channel_axis, view._replace(samples=1, positions=view.samples * view.positions, stride_n=0)


def _power_supported(xs, quadratic_mean, normalizer, scaled_statistic, statistic_scale, reduce_axes):
    layout = _power_layout(xs, reduce_axes)
    if layout is None:
        return False
    channel_axis, view = layout
    return (
        all(
            _is_per_channel(t, xs.ndim, channel_axis, view.channels)
            for t in (quadratic_mean, normalizer, scaled_statistic)
        )
        and isinstance(statistic_scale, torch.Tensor)
        and statistic_scale.numel() == 1
        and statistic_scale.dtype == torch.float32
    )


def _power_supports(xs, quadratic_mean, normalizer, scaled_statistic, statistic_scale, *, reduce_axes, **kwargs):
    return _power_supported(xs, quadratic_mean, normalizer, scaled_statistic, statistic_scale, reduce_axes)


@kernel_backend.register_kernel(
    "power_normalization", backends=("torch",), applies=_on_device, supports=_power_supports
)
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
    """`keras_norms.ops.power_normalization` on one replica (the op checks): `(z, auxiliary)` with
    the op's values and gradients. With `g_z`, `g_a` the upstreams of z and auxiliary,
    `dxs = rb (g_z - g_a nu z)`, `d scaled_statistic = sum(g_z z) / positions + g_a stat decay`,
    `d statistic_scale = g_a`, none to `quadratic_mean` and `normalizer`."""
    channel_axis, view = _power_layout(xs, reduce_axes)
    channels = view.channels
    rn = torch.rsqrt(_channel_vector(normalizer.detach(), channels) + epsilon)
    rb = torch.rsqrt(_channel_vector(quadratic_mean.detach(), channels) + epsilon)
    scaled = _channel_vector(scaled_statistic, channels)
    return _PowerNormalization.apply(xs.contiguous(), rn, rb, scaled, statistic_scale, view, float(alpha_bkw))
