"""The PowerNorm example, in its --smoke form: every norm trains and gives finite losses."""

import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import transformer_lm  # noqa: E402


def test_transformer_lm_smoke(tmp_path):
    results = transformer_lm.main(["--smoke", "--out", str(tmp_path)])
    assert (tmp_path / "transformer_lm.png").stat().st_size > 0
    assert set(results) == set(transformer_lm.NORMS)
    vocab = transformer_lm.load_corpus()[1]
    for norm, result in results.items():
        # After 6 steps every model is finite and no worse than twice a uniform guess.
        assert math.isfinite(result["val_loss"]) and 0 < result["val_loss"] < 2 * math.log(vocab), norm


def test_layernorm_removal_smoke():
    result = transformer_lm.main(["--smoke", "--remove-layernorm"])
    assert result["removed"] == 5
    for key in ("original", "fine_tuned_ln_free", "exported"):
        assert math.isfinite(result[key]), key
    # The export folds the fake LayerNorms exactly: the same validation loss.
    assert abs(result["exported"] - result["fine_tuned_ln_free"]) <= 1e-5
