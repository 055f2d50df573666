"""test_weight_norm_reference.py differentiates the Keras side with torch's autograd: the torch run only."""

import keras

collect_ignore = [] if keras.backend.backend() == "torch" else ["test_weight_norm_reference.py"]
