"""What a search leaves in its `--out`: baselines, the re-ranking, a markdown table, a Pareto plot.

- `results.md`: the counts by rejection reason, the best genomes in text form with their K
  scores next to BN+ReLU's and EvoNorm-B0/S0's on the same proxies, and the re-ranking table;
- `results.json`: the same numbers;
- `pareto.png`: every accepted candidate's scores, the Pareto front and the baselines;
- `best_1.json`, `best_2.json`, ...: each best genome, loadable with `keras_norms.search.load_genome`.
"""

import concurrent.futures
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from keras_norms.search.evaluation import EvaluationConfig, evaluate, rerank
from keras_norms.search.evolution import Candidate, SearchResult, mean_score
from keras_norms.search.executors import Executor, WorkerFailure
from keras_norms.search.genome import parse, save_genome
from keras_norms.search.seeds import SEEDS

BASELINES = ("bn_relu", "evonorm_b0", "evonorm_s0")


def _gather(pool: Executor, tasks: Mapping[str, tuple[Callable, tuple]]) -> dict[str, dict[str, Any]]:
    futures = {name: pool.submit(fn, *args) for name, (fn, args) in tasks.items()}
    concurrent.futures.wait(list(futures.values()))
    results = {}
    for name, future in futures.items():
        try:
            results[name] = future.result()
        except WorkerFailure as failure:
            results[name] = {"status": failure.reason, "detail": failure.detail[-500:]}
    return results


def evaluate_baselines(
    pool: Executor, config: EvaluationConfig, builders=None, data=None, names: Sequence[str] = BASELINES
) -> dict[str, dict[str, Any]]:
    """The hand-written layers' results (`evaluate`) on the search's proxies, by seed name."""
    return _gather(pool, {name: (evaluate, (str(SEEDS[name]), config, builders, data)) for name in names})


def rerank_best(
    pool: Executor,
    genomes: Sequence[str],
    config: EvaluationConfig,
    *,
    steps: int,
    learning_rates: Sequence[float],
    builders=None,
    data=None,
) -> dict[str, dict[str, Any]]:
    """The final re-ranking of `genomes` (text forms): `rerank` of each, on the held-out split."""
    tasks = {g: (rerank, (g, config, tuple(learning_rates), steps, builders, data)) for g in genomes}
    return _gather(pool, tasks)


def write_report(
    result: SearchResult,
    out: str,
    *,
    proxies: Sequence[str],
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    reranked: Mapping[str, Mapping[str, Any]] | None = None,
    top: int = 5,
    seconds: float | None = None,
) -> str:
    """Writes results.md, results.json, pareto.png and best_*.json to `out`; returns the markdown."""
    os.makedirs(out, exist_ok=True)
    baselines = dict(baselines or {})
    best = result.best(top)
    for position, candidate in enumerate(best, start=1):
        save_genome(parse(candidate.genome), os.path.join(out, f"best_{position}.json"), scores=candidate.scores)
    bn_relu = (baselines.get("bn_relu") or {}).get("scores")
    lines = ["# EvoNorm search results", ""]
    total = len(result.history)
    lines.append(f"{total} candidates" + (f" in {seconds / 60:.1f} min" if seconds else "") + ".")
    lines.append("")
    lines.append("| outcome | candidates |")
    lines.append("|---|---|")
    for reason, count in result.counts.items():
        if count and reason != "cache_hits":
            lines.append(f"| {reason} | {count} |")
    lines += ["", f"Duplicates of accepted genomes (cache hits, scores reused): {result.counts.get('cache_hits', 0)}."]
    lines += ["", "## Best genomes", "", "| layer | " + " | ".join(proxies) + " | mean | >= BN+ReLU on all |"]
    lines.append("|---" * (len(proxies) + 3) + "|")
    for name, outcome in baselines.items():
        scores = outcome.get("scores")
        cells = [f"{s:.3f}" for s in scores] if scores else [outcome.get("status", "?")] * len(proxies)
        mean = f"{np.mean(scores):.3f}" if scores else "-"
        lines.append(f"| {name} (baseline) | " + " | ".join(cells) + f" | {mean} | |")
    for candidate in best:
        scores = candidate.scores or []
        beats = "-" if not bn_relu else ("yes" if all(s >= b for s, b in zip(scores, bn_relu)) else "no")
        lines.append(
            f"| `{candidate.genome}` | "
            + " | ".join(f"{s:.3f}" for s in scores)
            + f" | {mean_score(candidate):.3f} | {beats} |"
        )
    if reranked:
        lines += ["", "## Re-ranking (held-out split, best learning rate per proxy)", ""]
        lines.append("| layer | " + " | ".join(proxies) + " | mean |")
        lines.append("|---" * (len(proxies) + 2) + "|")
        for genome, outcome in reranked.items():
            per_proxy = outcome.get("scores") or {}
            bests = [max(per_proxy[p].values()) if p in per_proxy else float("nan") for p in proxies]
            name = next((f"{n} (baseline)" for n, g in SEEDS.items() if str(g) == genome), f"`{genome}`")
            lines.append(f"| {name} | " + " | ".join(f"{b:.3f}" for b in bests) + f" | {np.nanmean(bests):.3f} |")
    markdown = "\n".join(lines) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown)
    summary = {
        "candidates": total,
        "counts": result.counts,
        "seconds": seconds,
        "proxies": list(proxies),
        "baselines": baselines,
        "best": [c.to_json() for c in best],
        "reranked": reranked or {},
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    plot_pareto(result.accepted, baselines, proxies, os.path.join(out, "pareto.png"))
    return markdown


def plot_pareto(
    accepted: Sequence[Candidate], baselines: Mapping[str, Mapping[str, Any]], proxies: Sequence[str], path: str
) -> None:
    """Scores of the first proxy against each other one; the Pareto front and baselines marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_norms.search.evolution import pareto_indices

    pairs = max(1, len(proxies) - 1)
    figure, axes = plt.subplots(1, pairs, figsize=(4.5 * pairs, 4), squeeze=False)
    scores = np.array([c.scores for c in accepted if c.scores]) if accepted else np.zeros((0, len(proxies)))
    front = scores[pareto_indices(scores.tolist())] if len(scores) else scores
    for k, axis in enumerate(axes[0], start=1):
        k = min(k, len(proxies) - 1)
        if len(scores):
            axis.scatter(scores[:, 0], scores[:, k], s=12, alpha=0.5, label="accepted candidates")
            axis.scatter(front[:, 0], front[:, k], s=30, color="tab:red", label="Pareto front")
        for marker, (name, outcome) in zip("s^D", baselines.items()):
            if outcome.get("scores"):
                axis.scatter(*np.array(outcome["scores"])[[0, k]], marker=marker, s=60, color="black", label=name)
        axis.set_xlabel(f"{proxies[0]} accuracy")
        axis.set_ylabel(f"{proxies[k]} accuracy")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.suptitle("EvoNorm search: validation accuracy of accepted layers")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
