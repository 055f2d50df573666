"""Plots the fast-path benchmark results: time relative to the Keras built-in, per layer and backend.

    python benchmarks/plot_performance.py [--out performance.png]

The docs draw the same figure at build time (docs/performance.md, matplotlib's plot directive).

Reads the JSON rows that `bench_layers.py --json` and `gpu.py` write (stored under
`benchmarks/results/`) and draws, for each machine, one horizontal bar per (layer, backend, mode):
our time divided by the built-in's, with the fast paths on (solid) and off (hatched). The dashed
line at 1 is the target (PowerNormalization's is 1.2 against BatchNormalization).
"""

import argparse
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = {
    "2-core x86_64 CPU": os.path.join(HERE, "results", "cpu_2core.json"),
    "NVIDIA H200": os.path.join(HERE, "results", "gpu_h200.json"),
}


def load(path):
    with open(path) as handle:
        rows = json.load(handle)
    return [r for r in rows if r["kind"] == "layer" and r.get("reference_ms") is not None]


def figure(results=RESULTS):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {title: load(path) for title, path in results.items() if os.path.exists(path)}
    heights = [max(len(rows), 1) for rows in panels.values()]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(8, 0.28 * sum(heights) + 1.5 * len(panels)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, (title, rows) in zip(axes[:, 0], panels.items()):
        labels = [f"{r['ours']} vs {r['builtin']} ({r['backend']}, {r['mode']})" for r in rows]
        fast = [r["ours_ms"] / r["builtin_ms"] for r in rows]
        reference = [r["reference_ms"] / r["builtin_ms"] for r in rows]
        positions = range(len(rows))
        ax.barh(
            [p + 0.2 for p in positions],
            reference,
            height=0.4,
            color="#bbbbbb",
            hatch="//",
            label="reference ops (fast paths off)",
        )
        ax.barh([p - 0.2 for p in positions], fast, height=0.4, color="#1f77b4", label="fast paths on")
        ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
        ax.set_yticks(list(positions))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel("forward+backward time / built-in's (lower is faster)")
        ax.set_title(title)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="performance.png")
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    figure().savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
