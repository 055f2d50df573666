"""The search: rejection protocols, the duplicate cache, determinism, resume, executors, a smoke run.

Candidates train a tiny proxy (tests/search/tiny.py) for a few steps: these tests check the
machinery, not what a search finds (docs/search.md reports a real run).
"""

import functools
import json
import os

import numpy as np
import pytest

from keras_norms.search import SEEDS, EvaluationConfig, evolve, load_genome, parse
from keras_norms.search.evaluation import evaluate, probe, stability
from keras_norms.search.evolution import pareto_indices
from keras_norms.search.report import write_report
from tests.search import tiny

B0_REWRITTEN = "div(x, max(sqrt(variance_batch(x)), add(mul(x, v1), sqrt(variance_instance(x)))))"


@pytest.mark.parametrize(
    "genome, reason",
    [
        ("exp(exp(exp(x)))", "non-finite"),
        ("mul(x, zero)", "independent of x"),
        ("add(mean_batch(mul(x, zero)), v1)", "independent of x"),
        ("div(mean_batch(x), mean_batch(x))", "independent of x"),
    ],
)
def test_invalid_genomes_are_rejected_by_the_probe(genome, reason):
    assert reason in probe(parse(genome)).reason


def test_stability_protocol_rejects_division_by_zero_and_keeps_the_evonorms():
    config = EvaluationConfig()
    assert stability(parse("div(x, add(x, neg(x)))"), config) > config.stability_threshold
    for name in ("evonorm_b0", "evonorm_s0", "bn_relu"):
        assert stability(SEEDS[name], config) < config.stability_threshold / 10, name


def test_quality_protocol_rejects_a_layer_that_cannot_learn_and_keeps_the_evonorms():
    """`mean_batch(x)` gives every sample the same output: chance accuracy, rejected as poor."""
    # Measured at 60 steps: B0 0.54, S0 0.35, BN+ReLU 0.59, mean_batch 0.10; at 100: 0.71, 0.48, 0.80.
    config = EvaluationConfig(steps=100, batch_size=32, quality_steps=60, quality_threshold=0.2, groups=2, image_size=8)
    data = tiny.task()
    assert evaluate("mean_batch(x)", config, tiny.BUILDERS, data)["status"] == "poor"
    for name in ("evonorm_b0", "evonorm_s0"):
        outcome = evaluate(str(SEEDS[name]), config, tiny.BUILDERS, data)
        assert outcome["status"] == "ok" and outcome["scores"][0] > 0.3, (name, outcome)


def test_duplicate_cache_recognizes_an_algebraically_equal_rewrite():
    result = evolve(
        2, seeds=[SEEDS["evonorm_b0"], B0_REWRITTEN], config=tiny.CONFIG, builders=tiny.BUILDERS, data=tiny.task()
    )
    first, second = result.history
    assert first.status == "ok" and second.status == "duplicate" and second.duplicate_of == 0
    assert second.scores == first.scores and result.counts["cache_hits"] == 1


def test_pareto_front():
    scores = [[0.9, 0.1], [0.5, 0.5], [0.4, 0.4], [0.1, 0.9], [0.9, 0.1]]
    assert pareto_indices(scores) == [0, 1, 3, 4]


def search(budget, out=None, resume=False, **kwargs):
    return evolve(
        budget,
        population_size=4,
        tournament_size=2,
        seed=7,
        config=tiny.CONFIG,
        builders=tiny.BUILDERS,
        data=tiny.task(),
        out=out,
        resume=resume,
        **kwargs,
    )


def test_serial_search_is_deterministic_and_resumes_exactly(tmp_path):
    whole = search(10, out=str(tmp_path / "whole"))
    assert len(whole.history) == 10
    assert tiny.history_of(search(10)) == tiny.history_of(whole)
    search(6, out=str(tmp_path / "resumed"))
    resumed = search(10, out=str(tmp_path / "resumed"), resume=True)
    assert tiny.history_of(resumed) == tiny.history_of(whole)
    with open(tmp_path / "resumed" / "history.jsonl") as f:
        assert [json.loads(line)["genome"] for line in f] == [c.genome for c in whole.history]
    assert sum(whole.counts[r] for r in whole.counts if r != "cache_hits") == 10


def test_resume_refuses_other_settings(tmp_path):
    search(2, out=str(tmp_path))
    with pytest.raises(ValueError, match="other settings"):
        evolve(4, population_size=5, config=tiny.CONFIG, builders=tiny.BUILDERS, out=str(tmp_path), resume=True)


@pytest.mark.parametrize("executor", ["process", "ray"])
def test_parallel_search_survives_a_killed_worker(executor, tmp_path):
    """2 local workers; the first evaluation kills its worker: a rejection, and the search goes on."""
    builders = {"tiny": functools.partial(tiny.tiny_net, marker=str(tmp_path / "killed"))}
    result = evolve(
        6,
        seeds=[SEEDS["evonorm_b0"], SEEDS["evonorm_s0"], SEEDS["bn_relu"]],
        population_size=3,
        config=tiny.CONFIG,
        builders=builders,
        data=tiny.task(),
        executor=executor,
        workers=2,
        timeout=120,
    )
    assert len(result.history) == 6 and result.counts["crashed"] == 1
    assert result.counts["ok"] >= 2 and all(tiny.finite(c.scores) for c in result.accepted)


def test_smoke_search_writes_the_report(tmp_path):
    """About a dozen candidates from random genomes plus two seeds, then the report files."""
    result = search(12, out=str(tmp_path), seeds=[SEEDS["evonorm_s0"], SEEDS["bn_relu"]])
    assert len(result.history) == 12 and result.counts["ok"] >= 2
    baselines = {"bn_relu": {"scores": result.history[1].scores}}
    markdown = write_report(result, str(tmp_path), proxies=["tiny"], baselines=baselines, top=3)
    assert "| bn_relu (baseline) |" in markdown and "invalid" in markdown or "ok" in markdown
    for name in ("results.md", "results.json", "pareto.png", "best_1.json", "history.jsonl", "state.json"):
        assert os.path.getsize(tmp_path / name) > 0, name
    best = load_genome(tmp_path / "best_1.json")
    assert str(best) == result.best(1)[0].genome
    assert np.mean(result.best(1)[0].scores) == max(np.mean(c.scores) for c in result.accepted)
