"""Regularized evolution with a multi-objective tournament, rejection protocols and a duplicate cache.

Liu et al. (arXiv 2004.02967), section 4, after Real et al.'s regularized evolution: a population
of evaluated genomes; each step samples a tournament from it, draws the parent uniformly from
the Pareto front of the tournament's K-score vectors, mutates it once, evaluates the child and
(if it is accepted) adds it while removing the oldest member. Children pass the rejection
protocols cheapest first (`keras_norms.search.evaluation`); a child that computes the same
function as an evaluated genome reuses its result (the duplicate cache).

The search writes to `out` as it runs: `history.jsonl` (one line per candidate), `state.json`
(population, counters, random state; rewritten after each candidate). `resume=True` continues
from them; with the serial executor a resumed search equals an uninterrupted one.
"""

import collections
import concurrent.futures
import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from keras_norms.arguments import check_int
from keras_norms.search.evaluation import EvaluationConfig, evaluate, probe, same_function, task_arrays
from keras_norms.search.executors import Executor, WorkerFailure, make_executor
from keras_norms.search.genome import DEFAULT_MAX_NODES, Genome, mutate, parse, random_genome

REASONS = ("invalid", "duplicate", "unstable", "poor", "nan", "crashed", "timeout", "error")


@dataclasses.dataclass
class Candidate:
    """One proposed genome and what became of it (one line of `history.jsonl`)."""

    index: int
    genome: str
    parent: int | None
    status: str  # "ok", or the rejection reason (REASONS)
    scores: list[float] | None = None
    detail: str | None = None
    duplicate_of: int | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SearchResult:
    """What `evolve` returns: every candidate, the final population and the counts."""

    history: list[Candidate]
    population: list[int]
    counts: dict[str, int]
    out: str | None = None

    @property
    def accepted(self) -> list[Candidate]:
        return [c for c in self.history if c.status == "ok"]

    def best(self, k: int = 5) -> list[Candidate]:
        """The `k` accepted candidates of highest mean score (distinct genomes), best first."""
        seen, best = set(), []
        for candidate in sorted(self.accepted, key=lambda c: -float(np.mean(c.scores or [0.0]))):
            if candidate.genome not in seen:
                seen.add(candidate.genome)
                best.append(candidate)
        return best[:k]

    def pareto_front(self) -> list[Candidate]:
        accepted = {c.genome: c for c in self.accepted}
        candidates = list(accepted.values())
        return [candidates[i] for i in pareto_indices([c.scores or [] for c in candidates])]


def pareto_indices(scores: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the score vectors no other vector dominates (>= everywhere, > somewhere)."""
    front = []
    for i, a in enumerate(scores):
        dominated = any(
            all(bj >= aj for aj, bj in zip(a, b)) and any(bj > aj for aj, bj in zip(a, b))
            for j, b in enumerate(scores)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


class _Search:
    """The state of one search: what is checkpointed, and the steps that change it."""

    def __init__(self, budget, population_size, tournament_size, max_nodes, sample_only, seeds, seed, config, out):
        self.budget = budget
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.max_nodes = max_nodes
        self.sample_only = sample_only
        self.seeds = [str(parse(g)) for g in seeds]
        self.config = config
        self.out = out
        self.rng = random.Random(seed)
        self.history: list[Candidate] = []
        self.population: collections.deque[int] = collections.deque()
        self.fingerprints: list[tuple[np.ndarray, int]] = []  # (fingerprint, candidate index)
        self.counts = {reason: 0 for reason in ("ok", *REASONS)}
        self.counts["cache_hits"] = 0
        self.in_flight = 0  # evaluations submitted and not yet recorded
        self._pending_fingerprint: np.ndarray | None = None

    # -- checkpoints ------------------------------------------------------------------------------

    def _paths(self):
        return os.path.join(self.out, "history.jsonl"), os.path.join(self.out, "state.json")

    def save(self, candidate: Candidate) -> None:
        if self.out is None:
            return
        history_path, state_path = self._paths()
        with open(history_path, "a") as f:
            f.write(json.dumps(candidate.to_json()) + "\n")
        state = {
            "candidates": len(self.history),
            "population": list(self.population),
            "counts": self.counts,
            "random_state": _jsonable(self.rng.getstate()),
            "settings": self.settings(),
        }
        temporary = state_path + ".tmp"
        with open(temporary, "w") as f:
            json.dump(state, f)
        os.replace(temporary, state_path)  # never a half-written state

    def settings(self) -> dict[str, Any]:
        return {
            "population_size": self.population_size,
            "tournament_size": self.tournament_size,
            "max_nodes": self.max_nodes,
            "sample_only": self.sample_only,
            "config": dataclasses.asdict(self.config),
        }

    def restore(self) -> None:
        history_path, state_path = self._paths()
        with open(state_path) as f:
            state = json.load(f)
        if state["settings"] != self.settings():
            raise ValueError(
                f"Cannot resume {self.out}: it was written with other settings ({state['settings']}); "
                f"this search has {self.settings()}"
            )
        with open(history_path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        self.history = [Candidate(**line) for line in lines[: state["candidates"]]]
        self.population = collections.deque(state["population"])
        self.counts = state["counts"]
        self.rng.setstate(_from_jsonable(state["random_state"]))
        for candidate in self.history:  # rebuild the duplicate cache (deterministic probes)
            if candidate.status not in ("invalid", "duplicate"):
                fingerprint = probe(parse(candidate.genome), self.config.epsilon).fingerprint
                if fingerprint is not None:
                    self.fingerprints.append((fingerprint, candidate.index))
        # Rewrite the history without lines past the state (written before an interruption).
        with open(history_path, "w") as f:
            f.writelines(json.dumps(c.to_json()) + "\n" for c in self.history)

    # -- steps ------------------------------------------------------------------------------------

    def propose(self) -> tuple[Genome, int | None]:
        """The next genome to evaluate and its parent: seeds, then random, then mutations."""
        proposed = len(self.history) + self.in_flight
        if proposed < len(self.seeds):
            return parse(self.seeds[proposed]), None
        if len(self.population) < self.population_size and proposed < self.population_size + len(self.seeds):
            return random_genome(self.rng, self.max_nodes, self.sample_only), None
        if not self.population:
            return random_genome(self.rng, self.max_nodes, self.sample_only), None
        members = list(self.population)
        tournament = self.rng.sample(members, min(self.tournament_size, len(members)))
        front = pareto_indices([self.history[i].scores or [] for i in tournament])
        parent = tournament[self.rng.choice(front)]
        child = mutate(parse(self.history[parent].genome), self.rng, self.max_nodes, self.sample_only)
        return child, parent

    def screen(self, genome: Genome, parent: int | None) -> Candidate | None:
        """The cheap protocols (invalid, duplicate); a Candidate if they decide, else None."""
        index = len(self.history)  # decided now, recorded next
        start = time.time()
        found = probe(genome, self.config.epsilon)
        if found.reason is not None:
            return Candidate(index, str(genome), parent, "invalid", detail=found.reason, seconds=time.time() - start)
        for fingerprint, other in self.fingerprints:
            if found.fingerprint is not None and same_function(fingerprint, found.fingerprint):
                original = self.history[other] if other < len(self.history) else None
                if original is not None:
                    return Candidate(
                        index,
                        str(genome),
                        parent,
                        "duplicate",
                        scores=original.scores,
                        detail=original.status,
                        duplicate_of=other,
                        seconds=time.time() - start,
                    )
        self._pending_fingerprint = found.fingerprint
        return None

    def record(self, candidate: Candidate, fingerprint: np.ndarray | None = None) -> None:
        self.history.append(candidate)
        self.counts[candidate.status] += 1
        if fingerprint is not None:
            self.fingerprints.append((fingerprint, candidate.index))
        accepted = candidate.status == "ok" or (candidate.status == "duplicate" and candidate.detail == "ok")
        if candidate.status == "duplicate" and candidate.detail == "ok":
            self.counts["cache_hits"] += 1
        if accepted:
            self.population.append(candidate.index)
            while len(self.population) > self.population_size:
                self.population.popleft()
        self.save(candidate)


def evolve(
    budget: int = 300,
    *,
    population_size: int = 20,
    tournament_size: int = 5,
    max_nodes: int = DEFAULT_MAX_NODES,
    sample_only: bool = False,
    seeds: Sequence[Genome | str] = (),
    seed: int = 0,
    config: EvaluationConfig | None = None,
    builders: Mapping[str, Callable] | None = None,
    data: Any = None,
    executor: str | Executor = "serial",
    workers: int = 1,
    timeout: float | None = None,
    address: str | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | Callable[[dict[str, Any]], None] = False,
) -> SearchResult:
    """Searches for normalization-activation layers; returns every candidate and the population.

    Args:
        budget: Candidates to propose in total (rejected ones included).
        population_size: Members of the population (the paper: regularized evolution).
        tournament_size: Members sampled per tournament; the parent is drawn uniformly from the
            Pareto front of their K scores.
        max_nodes: The largest number of intermediate nodes of a genome.
        sample_only: Leave out the batch aggregates (the paper's S-series search).
        seeds: Genomes (or their text) to evaluate first, e.g. `SEEDS.values()`; the rest of the
            initial population is random.
        seed: Seed of the search's random choices.
        config: How candidates are trained and judged (`EvaluationConfig`).
        builders: `{name: builder}`, where `builder(norm_layer, input_shape=..., num_classes=...)`
            returns a `keras.Model` calling `norm_layer()` for each normalization-activation; one
            score per builder (default: the three proxies of `keras_norms.search.proxies`).
        data: An `ImageTask`, a dict with `x_train, y_train, x_val, y_val` (and `num_classes`,
            `x_holdout`, `y_holdout`), or the tuple `(x_train, y_train, x_val, y_val)`
            (default: `proxies.digits_task(image_size=config.image_size)`).
        executor: "serial" (in this process, deterministic), "process" (a local pool of
            `workers` processes) or "ray" (a Ray cluster at `address`, or a local one); or an
            `Executor`.
        workers: Evaluations in flight at once (process and Ray executors).
        timeout: Seconds after which a worker's evaluation is killed and rejected ("timeout").
        address: The Ray cluster to join (`"auto"`, `"ray://host:10001"`).
        out: Directory for `history.jsonl` and `state.json` (checkpoints), or None.
        resume: Continue the search checkpointed in `out`.
        progress: True for a progress line on stderr, or a callable given the counts.

    Example:

    >>> result = keras_norms.search.evolve(12, seeds=[SEEDS["evonorm_b0"]], config=EvaluationConfig(steps=50))
    >>> [c.genome for c in result.best(3)]  # doctest: +SKIP
    """
    check_int("budget", budget, 1)
    check_int("population_size", population_size, 1)
    check_int("tournament_size", tournament_size, 1)
    check_int("max_nodes", max_nodes, 1)
    check_int("workers", workers, 1)
    config = config or EvaluationConfig()
    if out is not None:
        out = os.fspath(out)
        os.makedirs(out, exist_ok=True)
    elif resume:
        raise ValueError("`resume=True` needs `out`, the directory of the search to continue")
    search = _Search(budget, population_size, tournament_size, max_nodes, sample_only, seeds, seed, config, out)
    if resume and os.path.exists(os.path.join(out or "", "state.json")):
        search.restore()
    elif out is not None:
        for name in ("history.jsonl", "state.json"):
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
    data_arrays = as_task_arrays(data)
    owns_executor = not isinstance(executor, Executor)
    pool = (
        executor
        if isinstance(executor, Executor)
        else make_executor(executor, workers=workers, timeout=timeout, address=address)
    )
    report = _progress_printer() if progress is True else (progress or None)
    try:
        _run(search, pool, builders, data_arrays, report)
    finally:
        if owns_executor:
            pool.shutdown()
        if report is not None and progress is True:
            print(file=sys.stderr)
    return SearchResult(search.history, list(search.population), dict(search.counts), out)


def as_task_arrays(data: Any) -> dict[str, Any] | None:
    """`data` as the dict of arrays workers take: None, a dict, an `ImageTask`, or a tuple
    `(x_train, y_train, x_val, y_val[, x_holdout, y_holdout])` (classes counted from the labels)."""
    if data is None:
        return None
    if isinstance(data, Mapping):
        arrays = dict(data)
    elif isinstance(data, (tuple, list)):
        if len(data) not in (4, 6):
            raise ValueError(
                "`data` must be (x_train, y_train, x_val, y_val) or (..., x_holdout, y_holdout). "
                f"Received a sequence of {len(data)}"
            )
        names = ("x_train", "y_train", "x_val", "y_val", "x_holdout", "y_holdout")
        arrays = {name: np.asarray(value) for name, value in zip(names, data)}
    else:
        arrays = task_arrays(data)
    missing = {"x_train", "y_train", "x_val", "y_val"} - set(arrays)
    if missing:
        raise ValueError(f"`data` lacks {sorted(missing)}. Received: {sorted(arrays)}")
    if "num_classes" not in arrays:
        labels = [arrays[k] for k in ("y_train", "y_val", "y_holdout") if k in arrays]
        arrays["num_classes"] = int(max(int(np.max(y)) for y in labels)) + 1
    return arrays


def _run(search: _Search, pool: Executor, builders, data, report) -> None:
    in_flight: dict[concurrent.futures.Future, tuple[Genome, int | None, np.ndarray | None, float]] = {}
    slots = max(1, pool.workers)
    while len(search.history) < search.budget or in_flight:
        # Fill the free slots, deciding the cheap protocols here.
        while len(search.history) + len(in_flight) < search.budget and len(in_flight) < slots:
            search.in_flight = len(in_flight)
            genome, parent = search.propose()
            decided = search.screen(genome, parent)
            if decided is not None:
                search.record(decided)
                if report:
                    report(_summary(search))
                continue
            future = pool.submit(evaluate, str(genome), search.config, builders, data)
            in_flight[future] = (genome, parent, search._pending_fingerprint, time.time())
        if not in_flight:
            break
        done, _ = concurrent.futures.wait(list(in_flight), return_when=concurrent.futures.FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: in_flight[f][3]):
            genome, parent, fingerprint, started = in_flight.pop(future)
            search.in_flight = len(in_flight)
            index = len(search.history)
            try:
                outcome = future.result()
                candidate = Candidate(
                    index,
                    str(genome),
                    parent,
                    outcome["status"],
                    scores=outcome.get("scores"),
                    detail=_detail(outcome),
                    seconds=outcome.get("seconds", time.time() - started),
                )
            except WorkerFailure as failure:
                candidate = Candidate(
                    index,
                    str(genome),
                    parent,
                    failure.reason,
                    detail=failure.detail[-2000:],
                    seconds=time.time() - started,
                )
            search.record(candidate, fingerprint)
            if report:
                report(_summary(search))


def _detail(outcome: Mapping[str, Any]) -> str | None:
    parts = [f"{key}={outcome[key]:.4g}" for key in ("stability", "quality") if outcome.get(key) is not None]
    if outcome.get("proxy"):
        parts.append(f"proxy={outcome['proxy']}")
    return ", ".join(parts) or None


def _summary(search: _Search) -> dict[str, Any]:
    accepted = [c for c in search.history if c.status == "ok" and c.scores]
    best = max(accepted, key=lambda c: float(np.mean(c.scores or [0.0])), default=None)
    return {
        "candidates": len(search.history),
        "budget": search.budget,
        "counts": dict(search.counts),
        "best": None if best is None else best.scores,
        "best_genome": None if best is None else best.genome,
    }


def _progress_printer() -> Callable[[dict[str, Any]], None]:
    interactive = sys.stderr.isatty()

    def report(summary: dict[str, Any]) -> None:
        counts = summary["counts"]
        rejected = " ".join(f"{r} {counts[r]}" for r in REASONS if counts.get(r))
        best = "-" if summary["best"] is None else " ".join(f"{s:.3f}" for s in summary["best"])
        line = (
            f"candidates {summary['candidates']}/{summary['budget']} | accepted {counts['ok']} | "
            f"rejected: {rejected or 'none'} | cache hits {counts['cache_hits']} | best {best}"
        )
        print(("\r" + line) if interactive else line, end="" if interactive else "\n", file=sys.stderr, flush=True)

    return report


def _jsonable(state):
    return [state[0], list(state[1]), state[2]]


def _from_jsonable(state):
    return (state[0], tuple(state[1]), state[2])


def mean_score(candidate: Candidate) -> float:
    return float(np.mean(candidate.scores)) if candidate.scores else math.nan
