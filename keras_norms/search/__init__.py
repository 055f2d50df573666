"""The EvoNorm search system: evolve normalization-activation layers from primitives.

Liu, Brock, Simonyan, Le, "Evolving Normalization-Activation Layers", NeurIPS 2020, arXiv 2004.02967.
A layer is a genome (a DAG of primitives, `Genome`, written as text such as
`div(x, sqrt(variance_group(x)))`), compiled to the Keras layer `EvolvedNormAct`.

>>> layer = keras_norms.search.EvolvedNormAct(keras_norms.search.SEEDS["evonorm_s0"], groups=8)
"""

from keras_norms.search.genome import Genome, load_genome, mutate, parse, random_genome, save_genome
from keras_norms.search.layer import EvolvedNormAct
from keras_norms.search.seeds import SEEDS

__all__ = [
    "SEEDS",
    "EvolvedNormAct",
    "Genome",
    "load_genome",
    "mutate",
    "parse",
    "random_genome",
    "save_genome",
]
