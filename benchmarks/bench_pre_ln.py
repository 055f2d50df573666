"""Pre-LN vs Pre-RMSNorm vs Pre-CRMSNorm: the same Transformer, converted exactly; which is faster?

Jiang et al. (arXiv 2305.14858) claim the RMS and CRMS versions are faster than Pre-LN at equal
outputs. This runs examples/pre_ln_transformer.py (conversion by keras_norms.surgery.convert_pre_ln)
and prints forward and training-step times with the speed-up over LN, on the current backend:

    KERAS_BACKEND=jax python benchmarks/bench_pre_ln.py [--width 256 --blocks 4 --batch-size 16]
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import pre_ln_transformer  # noqa: E402

if __name__ == "__main__":
    pre_ln_transformer.main(sys.argv[1:])
