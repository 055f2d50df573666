"""Command line of the EvoNorm search: `python -m keras_norms.search --budget 300 --workers 2 --out runs/evo`.

Searches from random genomes (plus any `--seeds`), evaluates BN+ReLU, EvoNorm-B0 and S0 on the
same proxies, re-ranks the best genomes on the held-out split, and writes `results.md`,
`results.json`, `pareto.png`, `best_*.json`, `history.jsonl` and `state.json` to `--out`.
"""

import argparse
import os
import sys
import time


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m keras_norms.search",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--budget", type=int, default=300, help="candidates to propose in total (rejected included)")
    parser.add_argument("--out", default="runs/evo", help="directory for checkpoints and results")
    parser.add_argument("--resume", action="store_true", help="continue the search checkpointed in --out")
    parser.add_argument(
        "--executor",
        choices=("serial", "process", "ray"),
        default=None,
        help="where candidates train (default: serial for 1 worker, else process)",
    )
    parser.add_argument("--workers", type=int, default=1, help="evaluations in flight at once")
    parser.add_argument("--address", default=None, help="Ray cluster to join ('auto', 'ray://host:10001')")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before an evaluation is killed")
    parser.add_argument("--population", type=int, default=20, help="population size")
    parser.add_argument("--tournament", type=int, default=5, help="tournament size")
    parser.add_argument("--max-nodes", type=int, default=10, help="largest number of intermediate nodes")
    parser.add_argument("--sample-only", action="store_true", help="no batch aggregates (the paper's S-series search)")
    parser.add_argument("--seeds", nargs="*", default=[], help="seed genomes: names from SEEDS or text forms")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the search")
    parser.add_argument("--steps", type=int, default=300, help="training steps per proxy")
    parser.add_argument("--quality-steps", type=int, default=100, help="steps of the quality protocol")
    parser.add_argument("--quality-threshold", type=float, default=0.2, help="accuracy below which a layer is poor")
    parser.add_argument("--learning-rate", type=float, default=0.1, help="peak learning rate (SGD, cosine decay)")
    parser.add_argument("--top", type=int, default=5, help="best genomes to report")
    parser.add_argument("--rerank", type=int, default=3, help="best genomes to re-rank on the held-out split (0: none)")
    parser.add_argument("--rerank-steps", type=int, default=600, help="training steps per proxy when re-ranking")
    parser.add_argument(
        "--rerank-learning-rates", type=float, nargs="+", default=[0.05, 0.1, 0.2], help="the re-ranking's sweep"
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip BN+ReLU, EvoNorm-B0 and S0 on the proxies")
    parser.add_argument("--smoke", action="store_true", help="tiny proxies and budget: checks that everything runs")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    import keras  # noqa: F401  (first: with KERAS_BACKEND=torch, TensorFlow before torch segfaults)

    from keras_norms.search import SEEDS, EvaluationConfig, evolve
    from keras_norms.search.executors import make_executor
    from keras_norms.search.report import evaluate_baselines, rerank_best, write_report

    config = EvaluationConfig(
        steps=arguments.steps,
        quality_steps=min(arguments.quality_steps, arguments.steps),
        quality_threshold=arguments.quality_threshold,
        learning_rate=arguments.learning_rate,
    )
    budget, rerank_steps = arguments.budget, arguments.rerank_steps
    learning_rates = arguments.rerank_learning_rates
    rerank_count = arguments.rerank
    if arguments.smoke:
        config = EvaluationConfig(
            steps=20, quality_steps=10, quality_threshold=0.0, width=8, stability_steps=5, image_size=8
        )
        budget, rerank_steps, learning_rates, rerank_count = (
            min(budget, 12),
            20,
            learning_rates[:1],
            min(rerank_count, 1),
        )
    seeds = [SEEDS.get(seed, seed) for seed in arguments.seeds]
    kind = arguments.executor or ("serial" if arguments.workers == 1 else "process")
    start = time.time()
    pool = make_executor(kind, workers=arguments.workers, timeout=arguments.timeout, address=arguments.address)
    try:
        print(f"keras-norms search: {budget} candidates, executor {kind} x {arguments.workers}, out {arguments.out}")
        result = evolve(
            budget,
            population_size=arguments.population,
            tournament_size=arguments.tournament,
            max_nodes=arguments.max_nodes,
            sample_only=arguments.sample_only,
            seeds=seeds,
            seed=arguments.seed,
            config=config,
            executor=pool,
            out=arguments.out,
            resume=arguments.resume,
            progress=not arguments.quiet,
        )
        names = ("bn_relu", "evonorm_s0") if arguments.sample_only else ("bn_relu", "evonorm_b0", "evonorm_s0")
        baselines = {} if arguments.no_baselines else evaluate_baselines(pool, config, names=names)
        reranked = {}
        if rerank_count:
            genomes = [c.genome for c in result.best(rerank_count)]
            genomes += [str(SEEDS[name]) for name in baselines]
            reranked = rerank_best(pool, genomes, config, steps=rerank_steps, learning_rates=learning_rates)
    finally:
        pool.shutdown()
    proxies = ["resnet", "mobilenet", "efficientnet"]
    markdown = write_report(
        result,
        arguments.out,
        proxies=proxies,
        baselines=baselines,
        reranked=reranked,
        top=arguments.top,
        seconds=time.time() - start,
    )
    print(markdown)
    print(f"Wrote {os.path.join(arguments.out, 'results.md')} and pareto.png, best_*.json, history.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
