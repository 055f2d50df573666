"""The Pre-LN conversion example, in its --smoke form: three models, the same logits."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import pre_ln_transformer  # noqa: E402


def test_pre_ln_transformer_smoke():
    results = pre_ln_transformer.main(["--smoke"])
    assert set(results) == {"ln", "rms", "crms"}
    for name, result in results.items():
        assert result["max_relative_difference"] < 1e-4, name
        assert result["forward_s"] > 0 and result["train_step_s"] > 0
