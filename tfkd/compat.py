"""Keras 3 models in tfkd: converted to tf_keras models (issue: Keras 3 models accepted)."""


def convert_keras3_argument(name, model):
    """Refuses a Keras 3 model until conversion lands; `check_model` calls this for Keras 3 inputs."""
    raise TypeError(
        f"`{name}` is a Keras 3 model, but tfkd trains Keras 2 (tf_keras) models, which TF-MOT "
        f"requires. Received: {name}={model.__class__.__name__}(name={model.name!r}). "
        "Rebuild it with `tfkd.keras` (same layers and arguments), then copy the weights with "
        "`new_model.set_weights(model.get_weights())`."
    )
