"""Optimizers for networks with scale-invariant (normalized) weights, and per-variable learning rates."""

from keras_norms.optimizers.adamp import SGDP, AdamP, channel_axes_for_model, default_channel_axes
from keras_norms.optimizers.multipliers import LearningRateMultipliers

__all__ = ["SGDP", "AdamP", "LearningRateMultipliers", "channel_axes_for_model", "default_channel_axes"]
