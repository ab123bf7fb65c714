"""The callbacks a compression-wrapped model needs during `fit`, added by tfkd itself."""


def training_callbacks(model, callbacks=None, log_dir=None):
    """Returns `callbacks` plus what `model`'s compression wrappers need during `fit`."""
    return list(callbacks or [])
