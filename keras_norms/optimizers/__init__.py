"""Optimizers for networks with scale-invariant (normalized) weights."""

from keras_norms.optimizers.adamp import SGDP, AdamP, channel_axes_for_model, default_channel_axes

__all__ = ["AdamP", "SGDP", "channel_axes_for_model", "default_channel_axes"]
