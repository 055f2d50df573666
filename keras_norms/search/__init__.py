"""The EvoNorm search system: evolve normalization-activation layers from primitives.

Liu, Brock, Simonyan, Le, "Evolving Normalization-Activation Layers", NeurIPS 2020, arXiv 2004.02967.
A layer is a genome (a DAG of primitives, `Genome`, written as text such as
`div(x, sqrt(variance_group(x)))`), compiled to the Keras layer `EvolvedNormAct`; `evolve` (or
`python -m keras_norms.search`) searches for genomes with regularized evolution, rejection
protocols and a multi-objective tournament over proxy architectures, on one process, a local
process pool or a Ray cluster. See docs/search.md.

>>> layer = keras_norms.search.EvolvedNormAct(keras_norms.search.SEEDS["evonorm_s0"], groups=8)
"""

from typing import Any

from keras_norms.search.genome import Genome, load_genome, mutate, parse, random_genome, save_genome
from keras_norms.search.layer import EvolvedNormAct
from keras_norms.search.seeds import SEEDS

# The search machinery (evaluation, evolution, executors) loads on first use: `import keras_norms`
# (whose registry knows `EvolvedNormAct`) stays light.
_LAZY = {
    "Candidate": "evolution",
    "EvaluationConfig": "evaluation",
    "SearchResult": "evolution",
    "evolve": "evolution",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"keras_norms.search.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'keras_norms.search' has no attribute {name!r}")


__all__ = [
    "SEEDS",
    "Candidate",
    "EvaluationConfig",
    "EvolvedNormAct",
    "Genome",
    "SearchResult",
    "evolve",
    "load_genome",
    "mutate",
    "parse",
    "random_genome",
    "save_genome",
]
