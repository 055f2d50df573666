"""The AdamP example, in its --smoke form, and what it measures."""

import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import adamp_vs_adam  # noqa: E402


def test_adamp_vs_adam_smoke_writes_table_numbers_and_plot(tmp_path):
    results = adamp_vs_adam.main(["--smoke", "--out", str(tmp_path)])
    assert set(results) == {"adam", "adamp"}
    for runs in results.values():
        (run,) = runs
        assert len(run["kernel_norm"]) == 2 and len(run["accuracy"]) == 1  # initial + one epoch
        assert all(math.isfinite(v) and v > 0 for v in run["kernel_norm"] + run["loss"])
        assert 0.0 <= run["accuracy"][0] <= 1.0
    # Same seed, same initialization: both start from the same kernel norms.
    assert results["adam"][0]["kernel_norm"][0] == results["adamp"][0]["kernel_norm"][0]
    for suffix in (".md", ".json", ".png"):
        assert (tmp_path / f"adamp_vs_adam{suffix}").stat().st_size > 0
    stored = json.loads((tmp_path / "adamp_vs_adam.json").read_text())
    assert stored["results"]["adamp"][0]["loss"] == results["adamp"][0]["loss"]
    assert "| adamp |" in (tmp_path / "adamp_vs_adam.md").read_text()
