"""The cross-checks against torch references (the `mup` package, torch's weight_norm) run on the torch run only."""

import keras

REFERENCE_MODULES = ["test_mup_reference.py", "test_weight_norm_reference.py"]
collect_ignore = [] if keras.backend.backend() == "torch" else REFERENCE_MODULES
