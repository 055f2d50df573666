"""Losses for normalized networks: Z-loss, Normalized LR+GD, TempNet's DRO cross-entropy."""

from keras_norms.losses.log_mean import LogMeanLoss
from keras_norms.losses.tau_dro import TauDROCrossEntropy
from keras_norms.losses.z_loss import ZLoss

__all__ = ["LogMeanLoss", "TauDROCrossEntropy", "ZLoss"]
