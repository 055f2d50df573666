"""Shared fixtures and options: fresh random inputs on every run, replayable by seed; a quick tier.

The run's seed is drawn afresh (or taken from `--seed N`, else `KERAS_NORMS_TEST_SEED=N`), shown in
the report header, and repeated after the failures with the command that replays them. Each
test's generator is seeded by the run's seed *and* the test's id, so one failing test rerun alone
with the same seed sees the same numbers.

`--quick` (what `python tools/run_tests.py --quick` passes) keeps a deterministic subset for the
edit-test loop: the first parametrization of every test function that is not slow (marked
`slow`, or matched by `SLOW` below), so every module still runs.

Keras is imported first: with KERAS_BACKEND=torch, importing TensorFlow before torch's dynamo
segfaults.
"""

import fnmatch
import os
import shlex
import sys
import zlib

import keras  # noqa: F401  (first, see above)
import numpy as np
import pytest

if keras.backend.backend() != "torch":
    # TensorFlow's LLVM and Triton's in one process abort ("Option 'bitcode-mdindex-threshold'
    # registered more than once"). The jax and tensorflow runs import torch only as a reference
    # (the adamp package), whose dynamo then imports Triton if it can: let it find none. The
    # Triton kernels are tested on the torch run.
    sys.modules.setdefault("triton", None)

SEED_VARIABLE = "KERAS_NORMS_TEST_SEED"

# Node-id patterns (fnmatch) that `--quick` leaves out, so that the quick tier takes under 5 minutes
# on 2 CPU cores for all three backends. Found with `--quick --durations=40` on each backend: each
# takes 4 to 55 s, the tests kept mostly under 1 s. Every module keeps at least one test. A pattern
# on a single parametrization lets `--quick` take the function's next one instead.
SLOW = (
    # The shared layer checker (fit steps, both mixed policies, a reload in a fresh process): 7-16 s
    # each. tests/activations/test_hermite.py keeps one in the quick tier (crrelu's also compiles a
    # fit step: 21 s under torch.compile).
    "tests/layers/*::test_*checker*",
    "tests/activations/test_crrelu.py::test_layer_checker*",
    "tests/activations/test_interpolated.py::test_layer_checker*",
    # End-to-end runs of the example scripts; their modules keep a cheaper test (or their only one).
    "tests/examples/test_batchnorm_only.py::test_batchnorm_only_smoke",
    "tests/examples/test_compare_norms.py::test_compare_norms_*smoke",
    "tests/examples/test_compare_norms.py::test_compare_norms_batch_size_sweep*",
    "tests/examples/test_test_time_calibration.py::test_test_time_calibration_smoke",
    "tests/examples/test_transformer_lm.py::test_transformer_lm_smoke",
    "tests/examples/test_mup_transfer.py::test_mup_transfer_smoke_writes_tables_numbers_and_plots",
    # Worker processes on several virtual devices.
    "tests/distributed/test_distributed.py::test_many_devices_give_one_device_statistics",
    # Whole backbones (ResNet-50, MobileNet, EfficientNet, GPT-2, ResNet-20) built and trained.
    "tests/surgery/test_batch_norm.py::test_resnet20_trains_exactly_its_batchnorm_affine",
    "tests/surgery/test_layer_norm_removal.py::test_schedule_switches_at_the_exact_steps",
    "tests/surgery/test_layer_norm_removal.py::test_the_trainer_sees_the_switch",
    "tests/surgery/test_pre_ln.py::test_converted_gpt2_saves_loads_and_trains",
    "tests/surgery/test_pre_ln.py::test_gpt2_converts_with_the_same_outputs*",
    "tests/surgery/test_pre_ln.py::test_training_the_converted_model_works",
    "tests/surgery/test_swap.py::test_every_batchnorm_is_replaced_and_the_model_trains*",
    "tests/surgery/test_swap.py::test_groups_fall_back_to_a_divisor_and_are_reported",
    "tests/surgery/test_swap.py::test_rewrite_is_exact_for_an_equivalent_layer*",
    # The search: worker pools (process and Ray) and whole searches; tests/search keeps cheaper tests.
    "tests/search/test_evolution.py::test_parallel_search_survives_a_killed_worker*",
    "tests/search/test_evolution.py::test_serial_search_is_deterministic_and_resumes_exactly",
    "tests/search/test_evolution.py::test_smoke_search_writes_the_report",
    "tests/search/test_layer.py::test_layer_checker*",
    "tests/search/test_proxies.py::test_proxy_learns_digits",
    # Compiled fit steps and model-wide walks.
    "tests/layers/test_kan.py::test_global_func_norm_is_batch_dependent_and_per_sample_is_not",
    "tests/optimizers/test_adamp.py::test_channel_axes_for_model",
    "tests/optimizers/test_adamp.py::test_fit_with_jit_compile*",
)

# Set in pytest_configure; the rng fixture reads it.
SEED = None


def pytest_addoption(parser):
    group = parser.getgroup("keras-norms")
    group.addoption(
        "--seed",
        type=int,
        default=None,
        help=f"seed of the random test inputs, to replay a run (default: ${SEED_VARIABLE}, else a fresh one)",
    )
    group.addoption(
        "--quick",
        action="store_true",
        default=False,
        help="the quick tier: the first parametrization of every test function, without slow tests",
    )


def _draw_seed(config):
    seed = config.getoption("seed")
    if seed is None and os.environ.get(SEED_VARIABLE, "").strip():
        seed = int(os.environ[SEED_VARIABLE])
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**32)
    if not 0 <= seed < 2**32:
        raise pytest.UsageError(f"the test seed must be in [0, 2**32). Received: seed={seed}")
    return seed


def pytest_configure(config):
    global SEED
    SEED = _draw_seed(config)


def pytest_report_header(config):
    backend = keras.backend.backend()
    return f"keras backend: {backend}; test seed: {SEED} (replay: --seed {SEED} or {SEED_VARIABLE}={SEED})"


def _is_slow(item):
    return item.get_closest_marker("slow") is not None or any(fnmatch.fnmatchcase(item.nodeid, p) for p in SLOW)


def pytest_collection_modifyitems(config, items):
    if not config.getoption("quick"):
        return
    kept, left_out, functions = [], [], set()
    for item in items:
        function = item.nodeid.split("[", 1)[0]
        if function in functions or _is_slow(item):
            left_out.append(item)
        else:
            functions.add(function)
            kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def _replay_command(nodeids):
    backend = keras.backend.backend()
    return f"KERAS_BACKEND={backend} python -m pytest --seed {SEED} " + " ".join(shlex.quote(n) for n in nodeids)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        report.sections.append(("test seed", f"seed {SEED}; replay: {_replay_command([item.nodeid])}"))
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    failed = [r.nodeid for r in terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", [])]
    if failed:
        terminalreporter.section("test seed")
        terminalreporter.write_line(f"{len(failed)} failed with test seed {SEED}.")
        if len(failed) <= 20:
            terminalreporter.write_line("Replay them with:")
            terminalreporter.write_line(_replay_command(sorted(set(failed))))
        else:
            terminalreporter.write_line(f"Replay with the same pytest arguments and --seed {SEED}.")


@pytest.fixture
def rng(request):
    """A generator seeded by the run's seed and the test's id: fresh per run, replayable."""
    return np.random.default_rng([SEED, zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture(autouse=True)
def _float32_policy():
    # A test that sets a mixed policy must not leak it into the next one.
    yield
    keras.config.set_dtype_policy("float32")
