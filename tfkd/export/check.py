"""Checks an export against its Keras model: calibration data before converting, the file after.

Two traps run silently to a bad `.tflite` without these checks: calibration data that is not
preprocessed like the training data (raw 0..255 pixels for a model trained on 0..1 floats gives
int8 ranges 255x too wide), and a conversion that changed what the model computes. The first is
caught before the converter runs; the second by running the new file beside the Keras model.
"""

import numpy as np

# How far an export may drift from its Keras model before tfkd calls it broken: the largest output
# difference as a fraction of the Keras outputs' range. Int8 rounding of weights and activations
# moves outputs by a few percent of that range; float16 by far less than one.
TOLERANCE = {"float32": 1e-3, "float16": 0.02, "dynamic": 0.25, "int4": 0.35, "int8": 0.25,
             "int16x8": 0.1}
# Top-1 agreement below this on the check samples means the file decides differently.
MIN_AGREEMENT = {"float32": 0.99, "float16": 0.95, "dynamic": 0.6, "int4": 0.5, "int8": 0.6,
                 "int16x8": 0.8}
CHECK_SAMPLES = 64  # inputs the file and the model are compared on


def check_calibration_data(array, model):
    """Raises a `ValueError` when calibration inputs cannot be what the model was trained on.

    NaN or infinity; and, for a float model that does not scale its own inputs (no `Rescaling` or
    `Normalization` first), integer inputs or whole numbers beyond 1 up to 255: raw pixels fed to
    a model trained on scaled ones, which makes every int8 range too wide to resolve real inputs.
    """
    input_dtype = np.dtype(model.inputs[0].dtype.as_numpy_dtype)
    if np.issubdtype(input_dtype, np.integer):
        return  # e.g. token ids: integers are what the model takes
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(
            "`representative_data` must hold finite numbers. Received: representative_data with "
            f"{int(np.sum(~np.isfinite(array)))} NaN or infinite values. Remove or impute them "
            "before calibrating."
        )
    if scales_its_inputs(model):
        return
    low, high = float(array.min()), float(array.max())
    if array.dtype.kind in "biu":
        raise ValueError(
            "`representative_data` must be preprocessed exactly as the training inputs were: "
            f"the model takes {input_dtype.name} inputs and has no `Rescaling` layer. Received: "
            f"representative_data of dtype {array.dtype.name} with values {low:g}..{high:g}. "
            "Convert and scale it as in training, e.g. `x.astype('float32') / 255.0` for images "
            "trained in [0, 1]."
        )
    if 1.5 < high <= 255 and low >= 0 and np.all(array == np.round(array)):
        raise ValueError(
            "`representative_data` looks like raw pixel values (whole numbers from "
            f"{low:g} to {high:g}) for a model with no `Rescaling` layer; calibrated on them, "
            "int8 ranges are too wide for inputs scaled as in training. Received: "
            f"representative_data with values {low:g}..{high:g}. Scale it as in training (e.g. "
            "`x / 255.0`); if the model was really trained on these values, pass `check=False`."
        )


def scales_its_inputs(model):
    """Whether the model's first layer rescales or normalizes raw inputs itself."""
    from tfkd._keras import keras

    first = next((layer for layer in model.layers
                  if not isinstance(layer, keras.layers.InputLayer)), None)
    while isinstance(first, keras.layers.Wrapper):
        first = first.layer
    return isinstance(first, (keras.layers.Rescaling, keras.layers.Normalization))


def compare_with_model(data, model, samples, quantization):
    """Runs the `.tflite` bytes `data` and `model` on `samples`; a `ValueError` if they disagree.

    Returns:
        `{"samples": n, "max_error": e, "relative_error": r, "agreement": a}` (agreement is
        `None` for outputs that are not class scores).
    """
    from tfkd.runtime.tflite import TFLiteModel

    samples = samples[:CHECK_SAMPLES]
    got = TFLiteModel(data).predict(samples)
    expected = model.predict(samples, verbose=0, batch_size=len(samples))
    got, expected = _first(got), _first(expected)
    figures = _disagreement(np.asarray(got, np.float64), np.asarray(expected, np.float64))
    figures["samples"] = len(samples)
    bad_error = figures["relative_error"] > TOLERANCE[quantization]
    agreement = figures["agreement"]
    bad_agreement = agreement is not None and agreement < MIN_AGREEMENT[quantization]
    if bad_error or bad_agreement:
        raise ValueError(_disagreement_message(quantization, figures))
    return figures


def check_samples(model, array):
    """Inputs to compare an export on: the calibration data, else random ones for float inputs."""
    if array is not None:
        return array
    spec = model.inputs[0]
    shape = tuple(spec.shape[1:])
    if len(model.inputs) != 1 or any(d is None for d in shape):
        return None
    if not np.issubdtype(np.dtype(spec.dtype.as_numpy_dtype), np.floating):
        return None  # random ids could fall outside an embedding's vocabulary
    return np.random.default_rng(0).random((16, *shape)).astype(spec.dtype.as_numpy_dtype)


def _disagreement(got, expected):
    """The largest error as a fraction of the range an int8 output must cover, and top-1 agreement.

    That range always holds 0, and is [0, 1] for probabilities: a softmax output is quantized in
    steps of 1/256 whatever its values, so an untrained softmax near 1/classes everywhere is not
    called broken for rounding it cannot avoid, and its near-ties (top two closer than two such
    steps) are left out of the agreement.
    """
    error = np.abs(got - expected)
    probabilities = _are_probabilities(expected)
    spread = 1.0 if probabilities else _range_with_zero(expected)
    max_error = float(error.max()) if error.size else 0.0
    agreement = None
    if expected.ndim >= 2 and expected.shape[-1] > 1:
        top2 = np.sort(expected, axis=-1)[..., -2:]
        decided = (top2[..., 1] - top2[..., 0]) > (2 / 256 if probabilities else -1.0)
        if decided.sum() >= 10:
            agreement = float(np.mean(got[decided].argmax(-1) == expected[decided].argmax(-1)))
    return {"max_error": max_error, "relative_error": max_error / max(spread, 1e-6),
            "agreement": agreement}


def _are_probabilities(values):
    return bool(values.size and values.min() >= 0 and values.max() <= 1
                and np.allclose(values.sum(-1), 1, atol=1e-3))


def _range_with_zero(values):
    if not values.size:
        return 0.0
    return max(float(values.max()), 0.0) - min(float(values.min()), 0.0)


def _disagreement_message(quantization, figures):
    agreement = figures["agreement"]
    agreed = "" if agreement is None else f", top-1 agreement {agreement:.0%}"
    cause = (
        "Likely causes: `representative_data` not preprocessed like the training inputs "
        "(scale, normalization, channel order), or too few/unrepresentative samples"
        if quantization in ("int8", "int16x8")
        else "Likely cause: a layer whose computation the converter changed or weights "
        "too large for this mode"
    )
    return (
        f'The quantization="{quantization}" file disagrees with the Keras model on '
        f"{figures['samples']} check samples: largest output difference "
        f"{figures['max_error']:.3g} ({figures['relative_error']:.0%} of the outputs' range, "
        f"expected at most {TOLERANCE[quantization]:.0%}){agreed}. Received: "
        f"quantization={quantization!r}. {cause}. Fix the data and export again, or pass "
        "`check=False` to keep the file anyway."
    )


def _first(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs
