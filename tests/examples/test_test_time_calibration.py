"""The test-time calibration example: its smoke run and its corruptions."""

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import test_time_calibration as calibration  # noqa: E402


def test_test_time_calibration_smoke(tmp_path):
    results = calibration.main(["--smoke", "--eval-batch-sizes", "32", "4", "--out", str(tmp_path)])
    expected = {"clean", "mean over corruptions", "mean over corruptions, batches of 4"}
    expected |= {f"{name} 3" for name in calibration.CORRUPTIONS}
    assert set(results) == expected
    for condition, accuracies in results.items():
        assert set(accuracies) == {"source", "test_bn", "alpha_bn"}, condition
        assert all(0.0 <= a <= 1.0 and math.isfinite(a) for a in accuracies.values()), condition
    assert (tmp_path / "test_time_calibration.md").stat().st_size > 0


def test_corruptions(rng):
    images = rng.uniform(0.2, 0.8, (6, 8, 8, 1)).astype("float32")
    constant = np.full((2, 8, 8, 1), 0.4, "float32")
    for severity in calibration.SEVERITIES:
        noisy = calibration.gaussian_noise(images, severity, rng)
        assert noisy.min() >= 0.0 and noisy.max() <= 1.0 and not np.allclose(noisy, images)
        # A blur keeps constant images and each image's mean away from the edges (normalized taps).
        np.testing.assert_allclose(calibration.gaussian_blur(constant, severity, rng), constant, atol=1e-6)
        blurred = calibration.gaussian_blur(images, severity, rng)
        assert blurred.std() < images.std()
        factor = (0.5, 0.3, 0.15)[severity - 1]
        reduced = calibration.contrast(images, severity, rng)
        np.testing.assert_allclose(reduced.mean(axis=(1, 2, 3)), images.mean(axis=(1, 2, 3)), atol=1e-6)
        np.testing.assert_allclose(reduced.std(axis=(1, 2, 3)), factor * images.std(axis=(1, 2, 3)), rtol=1e-5)
