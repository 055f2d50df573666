"""Pre-LN vs Pre-RMSNorm vs Pre-CRMSNorm: the same Transformer, converted exactly; which is faster?

Jiang et al. (arXiv 2305.14858) claim the RMS and CRMS versions are faster than Pre-LN at equal
outputs. This converts a Pre-LN model with keras_norms.surgery.convert_pre_ln and prints forward
and training-step times with the speed-up over LN, on the current backend:

    KERAS_BACKEND=jax python benchmarks/bench_pre_ln.py [--width 256 --blocks 4 --batch-size 16]
    KERAS_BACKEND=jax python benchmarks/bench_pre_ln.py --gpt2 [--width 256 --blocks 4 --batch-size 16]

The default model is examples/pre_ln_transformer.py's (Keras layers on both sides). `--gpt2` times
a random keras-hub GPT2CausalLM (sequence 64, vocabulary 256, 4 heads, no dropout) against its
conversion, which is built from `PreNormDecoderBlock`: there the ratios also include the
difference between keras-hub's `TransformerDecoder` and that block.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pre_ln_transformer  # noqa: E402


def bench_gpt2(argv):
    import keras_hub

    parser = argparse.ArgumentParser(description="keras-hub GPT-2: LN vs RMS vs CRMS")
    parser.add_argument("--gpt2", action="store_true")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=256,
        num_layers=args.blocks,
        num_heads=4,
        hidden_dim=args.width,
        intermediate_dim=4 * args.width,
        max_sequence_length=64,
        dropout=0.0,
    )
    model = keras_hub.models.GPT2CausalLM(backbone=backbone)
    rng = np.random.default_rng(0)
    inputs = {
        "token_ids": rng.integers(0, 256, (args.batch_size, 64)).astype("int32"),
        "padding_mask": np.ones((args.batch_size, 64), "int32"),
    }
    results = pre_ln_transformer.compare_and_time(model, inputs, np.zeros((args.batch_size, 64), "int32"), args.repeats)
    print(
        f"\nkeras-hub GPT-2, backend {keras.backend.backend()}, width {args.width}, {args.blocks} blocks, "
        f"batch {args.batch_size}"
    )
    pre_ln_transformer.print_table(results)
    return results


if __name__ == "__main__":
    if "--gpt2" in sys.argv[1:]:
        bench_gpt2(sys.argv[1:])
    else:
        pre_ln_transformer.main(sys.argv[1:])
