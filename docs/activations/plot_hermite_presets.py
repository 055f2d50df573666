"""Draws the "optimal" activations of arXiv 2204.14126 (`HermiteActivation.preset`) and their duals.

python docs/activations/plot_hermite_presets.py    # writes docs/activations/hermite_presets.png
"""

import os

import keras
import matplotlib
import numpy as np

from keras_norms.activations import HermiteActivation

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402


def figure():
    x = np.linspace(-3, 3, 601).astype("float32")
    rho = np.linspace(-1, 1, 201)
    fig, (polynomials, sines, duals) = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, preset in HermiteActivation.PRESETS.items():
        phi = keras.ops.convert_to_numpy(HermiteActivation.preset(name)(x))
        label = f"{name} (d = {preset.dimension})"
        (sines if name.startswith("sine") else polynomials).plot(x, phi, label=label)
        duals.plot(rho, preset.dual(rho), label=label)
    polynomials.set(xlabel="x", ylabel="phi(x)", title="optimal_*d: polynomials of degree 3 or 7")
    sines.set(xlabel="x", ylabel="phi(x)", title="sine_*d: sqrt(e^a / sinh a) sin(sqrt(a) x), degree 21-47")
    duals.set(xlabel="rho", ylabel="g(rho)", title="dual kernels g (the authors' code)")
    for ax in (polynomials, sines, duals):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hermite_presets.png")
    figure().savefig(path, dpi=110, bbox_inches="tight")
    print(f"wrote {path}")
