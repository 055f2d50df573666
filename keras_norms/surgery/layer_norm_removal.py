"""Removing LayerNorm by fine-tuning: the switching schedule and the LayerNorm-free export.

Paper: Baroni et al., "Transformers Don't Need LayerNorm at Inference Time", arXiv 2507.02559.
"""

import keras

from keras_norms.arguments import check_int
from keras_norms.keras_internals import nested_layers
from keras_norms.layers.fake_layer_norm import FakeLayerNormalization
from keras_norms.surgery.folding import fold, input_projections, value_of
from keras_norms.surgery.pre_ln import _readers, _rebuild
from keras_norms.surgery.rewrite import copy_model


class LayerNormRemovalSchedule(keras.callbacks.Callback):
    """Switches `FakeLayerNormalization` layers to fake mode at given training steps.

    `steps` maps a layer name to the (0-based, counted over all epochs) training step at whose
    start it is switched; `from_groups` builds it the reference's way (`LNRemover(start, gap)`):
    the i-th layer of a group at `start + i * gap`. Reference GPT-2 small schedule: ln_2 of the 12
    blocks at 20, 22, ..., 42, then ln_1 (Q/K path) at 44, ..., 66, ln_1 (V path) at 68, 71, ...,
    101, and ln_f at 104.

    Example:

    >>> schedule = LayerNormRemovalSchedule.from_groups([(["b0_ln2", "b1_ln2"], 20, 2), (["ln_f"], 30, 0)])
    >>> model.fit(x, y, callbacks=[schedule])
    """

    def __init__(self, steps):
        super().__init__()
        if not isinstance(steps, dict) or not steps:
            raise ValueError(f"`steps` must be a non-empty dict {{layer name: step}}. Received: {steps!r}")
        self.steps = {name: check_int(f"steps[{name!r}]", step, minimum=0) for name, step in steps.items()}
        self.step = 0

    @classmethod
    def from_groups(cls, groups):
        """`groups`: `[(layer_names, start, gap), ...]`; layer i of a group at `start + i * gap`."""
        steps = {}
        for names, start, gap in groups:
            for i, name in enumerate(names):
                steps[name] = start + i * gap
        return cls(steps)

    def _layers(self):
        found = {layer.name: layer for layer in nested_layers(self.model) if isinstance(layer, FakeLayerNormalization)}
        missing = sorted(set(self.steps) - set(found))
        if missing:
            raise ValueError(f"No FakeLayerNormalization named {missing} in the model.")
        return found

    def on_train_begin(self, logs=None):
        self._by_name = self._layers()

    def on_train_batch_begin(self, batch, logs=None):
        switching = [name for name, step in self.steps.items() if step == self.step]
        if switching and hasattr(self.model, "jax_state_sync"):
            # On jax, fit keeps the variables in its own state between steps: write it back
            # first, so the trainer reloads it (with the switch) before the next step.
            self.model.jax_state_sync()
        for name in switching:
            self._by_name[name].set_fake()
        self.step += 1


def export_without_layernorm(model):
    """A copy of `model` whose fake LayerNorms are folded into the layers that read them.

    A fake `FakeLayerNormalization` computes `(x - mean(x)) / sigma * gamma + beta`, a linear map:
    for each Dense or MultiHeadAttention (query, key, value) reader,
    `W' = C diag(gamma / sigma) W` (`C = I - 11^T / d`, the centering) and `b' = b + beta W`.
    The norm layers become `keras.layers.Identity` (no computation). Every
    `FakeLayerNormalization` must be in fake mode. The export equals the fine-tuned fake model
    up to rounding.

    Returns:
        `(new_model, report)`: the report lists the removed norms and the layers they went into.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a functional keras.Model. Received: {type(model).__name__}")
    source = copy_model(model)
    norms = [layer for layer in source.layers if isinstance(layer, FakeLayerNormalization)]
    if not norms:
        raise ValueError(f"`model` has no FakeLayerNormalization layer: {model.name}")
    real = [n.name for n in norms if float(keras.ops.convert_to_numpy(n.is_fake.value)) != 1.0]
    if real:
        raise ValueError(f"These layers are still real LayerNorms; switch them to fake first: {real}")
    new_weights = {}
    folded_into = []
    for norm in norms:
        scale = value_of(norm.gamma) / float(value_of(norm.sigma))
        beta = value_of(norm.beta)
        for reader in _readers(norm):
            for dense in input_projections(reader):
                bias = None if dense.bias is None else value_of(dense.bias)
                kernel, bias = fold(value_of(dense.kernel), bias, scale, beta, name=reader.name)
                # The centering (x - mean x) folds in as C = I - 11^T/d on the input side.
                new_weights[(id(dense), "kernel")] = kernel - kernel.mean(axis=0, keepdims=True)
                if bias is not None:
                    new_weights[(id(dense), "bias")] = bias
            folded_into.append(reader.name)
    readers = {id(r) for norm in norms for r in _readers(norm)}

    def choose(layer):
        if isinstance(layer, FakeLayerNormalization):
            return keras.layers.Identity(name=layer.name)
        if id(layer) not in readers:
            return layer  # `source` is a private copy: share its untouched layers
        return layer.get_config()

    exported = _rebuild(source, choose, new_weights)
    return exported, {"removed": [n.name for n in norms], "folded_into": folded_into}
