"""Sphinx configuration: MyST Markdown pages, autodoc API reference, furo theme.

pip install -e ".[docs]" && sphinx-build -W --keep-going -b html docs docs/_build/html
"""

import os
import sys

# The API reference imports keras_norms, hence Keras, hence a backend: any installed one will do.
os.environ.setdefault("KERAS_BACKEND", "jax")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))  # plot_performance, for the plot directive
sys.path.insert(0, os.path.join(ROOT, "examples"))  # each example's plot(), on its stored results

import keras_norms  # noqa: E402

project = "keras-norms"
author = "the keras-norms developers"
copyright = "2026, the keras-norms developers"
release = keras_norms.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "matplotlib.sphinxext.plot_directive",
]
source_suffix = {".md": "markdown"}
# example_results/, search_results/: programs' own output (tables, JSON), included into pages.
exclude_patterns = ["_build", "example_results", "search_results"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Plots are drawn at build time from the stored results, so they never go stale.
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]

html_theme = "furo"
html_title = "keras-norms"

# Docstrings write code as `x` (Markdown style): render single backticks as inline code.
default_role = "code"
napoleon_custom_sections = [
    ("Call arguments", "params_style"),
    ("Batch variant arguments", "params_style"),
    ("Sample variant arguments", "params_style"),
    ("Fields", "params_style"),
]
