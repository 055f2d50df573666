"""Runs the whole test suite once per Keras backend (jax, tensorflow, torch), one pytest process each.

    python tools/run_tests.py                 # every backend, the full suite
    python tools/run_tests.py --quick         # the quick tier: under 5 minutes on 2 CPU cores
    python tools/run_tests.py --backends jax  # one backend
    python tools/run_tests.py --seed 1234     # replay the random inputs of a run
    python tools/run_tests.py -- -k evonorm   # anything after -- goes to pytest

The quick tier (`--quick`, see tests/conftest.py) runs the first parametrization of every test
function, leaving out the tests marked slow: every module, on every backend.

Exits non-zero if any backend fails. Keras fixes its backend at import, so each backend needs its
own process; that is also what Keras' and keras-hub's CI do.
"""

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

BACKENDS = ("jax", "tensorflow", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_backend(backend, pytest_args, report_dir):
    report = os.path.join(report_dir, f"{backend}.xml")
    env = {**os.environ, "KERAS_BACKEND": backend}
    print(f"\n===== KERAS_BACKEND={backend} =====", flush=True)
    start = time.time()
    command = [sys.executable, "-m", "pytest", f"--junitxml={report}", *pytest_args]
    print(" ".join(command[1:]), flush=True)
    returncode = subprocess.call(command, cwd=ROOT, env=env)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    if os.path.exists(report):
        suite = ElementTree.parse(report).getroot().find("testsuite")
        failed = int(suite.get("failures")) + int(suite.get("errors"))
        skipped = int(suite.get("skipped"))
        counts = {
            "passed": int(suite.get("tests")) - failed - skipped,
            "failed": failed,
            "skipped": skipped,
        }
    return returncode, counts, time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--quick", action="store_true", help="the quick tier instead of the full suite")
    parser.add_argument(
        "--seed", type=int, help="seed of the random test inputs (default: $KERAS_NORMS_TEST_SEED, else a fresh one)"
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    # One seed for every backend, shown in the summary: a failure on any backend replays with it.
    seed = args.seed
    if seed is None:
        seed = int(os.environ.get("KERAS_NORMS_TEST_SEED", "").strip() or secrets.randbelow(2**32))
    pytest_args = [f"--seed={seed}", *(["--quick"] if args.quick else []), *args.pytest_args]
    results = {}
    start = time.time()
    with tempfile.TemporaryDirectory() as report_dir:
        for backend in args.backends:
            results[backend] = run_backend(backend, pytest_args, report_dir)
    print("\n| backend | result | passed | failed | skipped | seconds |")
    print("|---|---|---|---|---|---|")
    for backend, (returncode, counts, seconds) in results.items():
        status = "ok" if returncode == 0 else f"FAILED (exit {returncode})"
        print(
            f"| {backend} | {status} | {counts['passed']} | {counts['failed']} | {counts['skipped']} | {seconds:.0f} |"
        )
    passed = sum(counts["passed"] for _, counts, _ in results.values())
    failed = sum(counts["failed"] for _, counts, _ in results.values())
    tier = " (quick tier)" if args.quick else ""
    print(f"total{tier}: {passed} passed, {failed} failed in {time.time() - start:.0f} s; test seed {seed}")
    return 0 if all(returncode == 0 for returncode, _, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
