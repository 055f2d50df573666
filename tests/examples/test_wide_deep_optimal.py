"""The infinitely wide and deep example, in its --smoke form, and the kernels it computes."""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import wide_deep_optimal  # noqa: E402


def test_smoke_writes_table_numbers_and_plot(tmp_path):
    results = wide_deep_optimal.main(["--smoke", "--out", str(tmp_path)])
    assert set(results["deep"]) == {"optimal_3d", "sine_3d", "relu"}
    for by_kernel in results["deep"].values():
        for accuracies in by_kernel.values():
            assert len(accuracies) == len(results["depths"]) and all(0 <= a <= 1 for a in accuracies)
    assert results["limits"]["majority_vote"] < results["bayes"]
    assert all(0.5 < results["limits"][name] <= 1 for name in wide_deep_optimal.LIMIT_PRESETS)
    for suffix in (".md", ".json", ".png"):
        assert (tmp_path / f"wide_deep_optimal{suffix}").stat().st_size > 0
    stored = json.loads((tmp_path / "wide_deep_optimal.json").read_text())
    assert stored["results"]["deep"] == results["deep"]
    assert "| infinity |" in (tmp_path / "wide_deep_optimal.md").read_text()


def test_ntk_recursion_closed_forms():
    """On the diagonal (rho = 1) the NNGP stays 1 and the NTK is sum_l g'(1)**l: L + 1 for ReLU, 2**(L+1) - 1 for
    optimal_3d (g'(1) = 2); at rho = 0 the odd optimal_3d keeps both at 0."""
    duals = wide_deep_optimal.duals()
    rho = np.array([1.0, 0.0])
    depths = [1, 5, 30]
    for name, ratio in (("relu", 1.0), ("optimal_3d", 2.0)):
        for depth, (sigma, theta) in zip(depths, wide_deep_optimal.deep_kernels(rho, *duals[name], depths)):
            np.testing.assert_allclose(sigma[0], 1.0, rtol=1e-14)
            np.testing.assert_allclose(theta[0], sum(ratio**level for level in range(depth + 1)), rtol=1e-12)
            if name == "optimal_3d":
                assert sigma[1] == theta[1] == 0.0


def test_deep_nngp_tends_to_the_limit_kernel():
    """`g^L(rho) / g'(0)**L` converges to the depth-infinity kernel `c(rho)` (geometrically fast)."""
    preset = wide_deep_optimal.HermiteActivation.PRESETS["optimal_3d"]
    rho = np.array([0.1, 0.5, 0.9, 0.99])
    limit = wide_deep_optimal.limit_kernel(rho, preset.dual, 0.5)
    ((sigma, _),) = wide_deep_optimal.deep_kernels(rho, preset.dual, preset.dual_derivative, [60])
    np.testing.assert_allclose(sigma / 0.5**60, limit, rtol=1e-9)
