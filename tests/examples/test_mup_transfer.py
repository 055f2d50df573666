"""The muP example, in its --smoke form, and the property its comparison rests on."""

import argparse
import json
import math
import os
import sys

import keras
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import mup_transfer  # noqa: E402


def test_mup_transfer_smoke_writes_tables_numbers_and_plots(tmp_path):
    results = mup_transfer.main(["--smoke", "--out", str(tmp_path)])
    for name in ("mup_transfer", "mup_coord_check"):
        for suffix in (".json", ".png") if name == "mup_coord_check" else (".md", ".json", ".png"):
            assert (tmp_path / f"{name}{suffix}").stat().st_size > 0, name + suffix
    assert set(results["sweep"]) == {"SP", "muP"}
    for by_width in results["sweep"].values():
        assert set(by_width) == {"16", "32"}
        for run in by_width.values():
            assert len(run["train_loss"]) == len(run["val_loss"]) == 2
            assert all(math.isfinite(v) and v > 0 for v in run["train_loss"] + run["val_loss"])
            assert math.isfinite(run["best_log2_lr"]) and math.isfinite(run["interpolated_log2_lr"])
    assert all(math.isfinite(v) for d in results["drift_log2_lr"].values() for v in d.values())
    # Two widths, one step (and step 0), every layer, both parametrizations.
    for points in results["coord_check"].values():
        assert {p["width"] for p in points} == {16, 32} and {p["step"] for p in points} == {0, 1}
        assert all(math.isfinite(p["size"]) for p in points)
    stored = json.loads((tmp_path / "mup_transfer.json").read_text())
    assert stored["results"]["sweep"]["muP"]["32"]["train_loss"] == results["sweep"]["muP"]["32"]["train_loss"]
    table = (tmp_path / "mup_transfer.md").read_text()
    for parametrization in ("SP", "muP"):
        assert f"| {parametrization} | 16 |" in table and f"| {parametrization} | 32 |" in table
        assert f"| {parametrization} | logits (readout) |" in table
    assert "the muP optimum by" in table


def _model(parametrization, width, args):
    keras.utils.set_random_seed(0)
    model, optimizer = mup_transfer.make(parametrization, width, 2.0**-6, args.vocab, args)
    if parametrization == "SP":
        # muP's readout starts at zero: give SP's Dense head the same start.
        for variable in model.get_layer("readout").weights:
            variable.assign(keras.ops.zeros(variable.shape))
    return model, optimizer


def test_sp_and_mup_coincide_at_the_base_width_only():
    # At the base width muP is SP but for the head's zero start: the same attention scale
    # (sqrt(8) / 8 = 1 / sqrt(8)), readout multiplier 1, every learning-rate multiplier 1, no
    # weight rescaled. With SP's head zeroed too, the two train identically, step for step.
    args = argparse.Namespace(widths=[32, 64], length=16, blocks=1, vocab=20)
    rng = np.random.default_rng(0)
    x = rng.integers(0, args.vocab, (4, args.length)).astype("int32")
    y = rng.integers(0, args.vocab, (4, args.length)).astype("int32")
    losses, weights = {}, {}
    for parametrization in ("SP", "muP"):
        model, optimizer = _model(parametrization, 32, args)
        model.compile(optimizer=optimizer, loss=mup_transfer.loss_function())
        losses[parametrization] = [float(model.train_on_batch(x, y)) for _ in range(4)]
        weights[parametrization] = [keras.ops.convert_to_numpy(v) for v in model.weights]
    # The losses of steps 2-4 see every weight moved (step 1 only the zero head), and fall.
    assert losses["SP"][-1] < losses["SP"][0] - 0.1, losses
    np.testing.assert_allclose(losses["muP"], losses["SP"], rtol=1e-5)
    for sp_weight, mup_weight in zip(weights["SP"], weights["muP"], strict=True):
        np.testing.assert_allclose(mup_weight, sp_weight, rtol=1e-4, atol=1e-5)

    # Twice as wide, muP's multipliers leave 1: readout input / 2, attention sqrt(8) / 16 (SP: 1 / 4),
    # Adam's rate / 2 on every hidden matrix.
    model, optimizer = _model("muP", 64, args)
    assert model.get_layer("readout").width_mult == 2.0
    attention = model.get_layer("block0_attention")
    assert attention.attention_mult / attention.key_dim == pytest.approx(math.sqrt(8) / 16)
    halved = {path for path, m in optimizer.multipliers.items() if m == 0.5}
    assert halved == {
        "block0_attention/query/kernel",
        "block0_attention/key/kernel",
        "block0_attention/value/kernel",
        "block0_attention/attention_output/kernel",
        "block0_mlp_in/kernel",
        "block0_mlp_out/kernel",
    }
    assert set(optimizer.multipliers.values()) == {0.5}
