"""Model surgery: put keras-norms layers into the models people already have."""

from keras_norms.surgery.batch_norm import calibrate_batch_statistics, freeze_all_but_batchnorm
from keras_norms.surgery.gpt2 import PreNormDecoderBlock
from keras_norms.surgery.layer_norm_removal import LayerNormRemovalSchedule, export_without_layernorm
from keras_norms.surgery.pre_ln import convert_pre_ln
from keras_norms.surgery.reparametrize import fold_reparametrizations, reparametrize, weight_normalize
from keras_norms.surgery.rewrite import copy_model, replace_layers
from keras_norms.surgery.swap import replace_norm_layers

__all__ = [
    "LayerNormRemovalSchedule",
    "PreNormDecoderBlock",
    "calibrate_batch_statistics",
    "convert_pre_ln",
    "copy_model",
    "export_without_layernorm",
    "fold_reparametrizations",
    "freeze_all_but_batchnorm",
    "replace_layers",
    "replace_norm_layers",
    "reparametrize",
    "weight_normalize",
]
