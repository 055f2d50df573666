"""The serialization check every keras-norms loss and optimizer passes."""

import json

import keras


def check_serialization(obj):
    """Checks `from_config(get_config())` and a JSON `serialize`/`deserialize` round trip.

    Both must rebuild an object of the same class with the same config. Returns the object
    deserialized from JSON.
    """
    config = obj.get_config()
    revived = type(obj).from_config(config)
    assert type(revived) is type(obj), f"from_config built {type(revived)}"
    assert revived.get_config() == config, "from_config(get_config()) changed the config"
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(obj)))
    deserialized = keras.saving.deserialize_keras_object(serialized)
    assert type(deserialized) is type(obj), f"deserialized to {type(deserialized)}"
    assert deserialized.get_config() == config, "serialize/deserialize changed the config"
    return deserialized
