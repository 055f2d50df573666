"""The README's main job, in its --smoke form: every layer trains and gives finite numbers."""

import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import compare_norms  # noqa: E402


def test_compare_norms_smoke(capsys):
    results = compare_norms.main(["--smoke"])
    assert set(results) == set(compare_norms.NORMS)
    for norm, result in results.items():
        assert 0.0 <= result["accuracy"] <= 1.0, norm
        assert math.isfinite(result["loss"]) and result["loss"] > 0, norm
        assert result["step_ms"] > 0, norm
    assert "| evonorm_b0 |" in capsys.readouterr().out


def test_compare_norms_distribute_smoke(capsys):
    """--distribute: keras.distribution on JAX, tf.distribute on TensorFlow, a clear refusal on torch."""
    import keras
    import pytest

    arguments = ["--smoke", "--distribute", "--norms", "bn_relu", "evonorm_b0"]
    if keras.backend.backend() == "torch":
        with pytest.raises(SystemExit, match="DistributedDataParallel"):
            compare_norms.main(arguments)
        return
    results = compare_norms.main(arguments)
    assert all(math.isfinite(r["loss"]) for r in results.values())
    assert "replica" in capsys.readouterr().out
    assert keras.distribution.distribution() is None  # not left set for what runs next


def test_compare_norms_batch_size_sweep_with_a_registry_layer(tmp_path, capsys):
    results = compare_norms.main(
        ["--smoke", "--batch-sizes", "4", "32", "--norms", "bn_relu", "evonorm_s0", "rms_norm", "--out", str(tmp_path)]
    )
    assert set(results) == {"bn_relu", "evonorm_s0", "rms_norm"}
    for norm, runs in results.items():
        assert set(runs) == {"4", "32"}, norm
        assert all(math.isfinite(r["loss"]) and 0.0 <= r["accuracy"] <= 1.0 for r in runs.values()), norm
    assert "| accuracy, batch 4 | accuracy, batch 32 |" in (tmp_path / "compare_norms_batch_sizes.md").read_text()
    assert (tmp_path / "compare_norms_batch_sizes.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "scikit-learn digits" in out  # --smoke never downloads


def test_registry_norms_are_the_feature_map_norms():
    import pytest

    names = compare_norms.registry_norms()
    assert {"evonorm_b1", "evonorm_s2a", "crms_norm", "alpha_batch_norm"} <= set(names)
    assert not {"temp_net", "crrelu", "cosine_classifier", "power_norm"} & set(names)  # not norms of images
    with pytest.raises(SystemExit):
        compare_norms.main(["--smoke", "--norms", "temp_net"])
