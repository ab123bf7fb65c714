"""Keras 3 `keras.applications` families through `tfkd.from_keras3`, then prune, quantize, export.

For each family, built offline with `weights=None` (small inputs, 10 classes,
`classifier_activation=None`):

1. random but non-degenerate weights (He-scaled kernels, BatchNorm statistics away from 0/1, the
   classifier scaled so the largest logit is 10, the size of trained logits);
2. `tfkd.from_keras3`: seconds, and max |logit difference| against the Keras 3 model on 8 images;
3. `tfkd.prune(converted, target_sparsity=0.5)` builds;
4. `tfkd.quantize(converted)` (QAT) builds; if TF-MOT refuses some layers, the column says which
   kinds and retries with `layers=[Conv2D, DepthwiseConv2D, Dense]`, then `[Conv2D, Dense]`; and
   TF-MOT's `quantize_apply` directly on every supported layer plus the quantize configs of
   `tfkd.optimize.quantize_configs` for the converted Keras 3 layers TF-MOT lacks (hard_silu
   activations, Multiply, ...);
5. `tfkd.export.to_tflite(converted)` (float32) runs in LiteRT and agrees with the Keras 3 logits.

Run: `.venv/bin/python benchmarks/keras3_applications.py [--quick] [--families A,B]`; writes
`benchmarks/results/keras3_applications.md`.
"""

import argparse
import importlib
import os
import re
import sys
import tempfile
import time
import warnings

import numpy as np

import tfkd
from tfkd import keras

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# family -> (input size, extra constructor arguments)
FAMILIES = {
    "MobileNetV2": (32, {"alpha": 0.35}),
    "MobileNetV3Small": (32, {"alpha": 0.75}),
    "MobileNetV3Large": (32, {"alpha": 0.75}),
    "ResNet50": (32, {}),
    "EfficientNetB0": (32, {}),
    "MobileNet": (32, {"alpha": 0.25}),
    "ResNet50V2": (32, {}),
    "EfficientNetV2B0": (32, {}),
    "DenseNet121": (32, {}),
    "NASNetMobile": (32, {}),
    "InceptionV3": (75, {}),
    "Xception": (71, {}),
    "VGG16": (32, {}),
    "ConvNeXtTiny": (32, {}),
}
QUICK = ("MobileNetV2", "MobileNetV3Small", "ResNet50", "EfficientNetB0")


def randomize(model, images, seed=0):
    """He-scaled kernels, BatchNorm statistics away from 0 and 1, logits scaled to at most 10."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "Normalization":
            continue
        depthwise = "Depthwise" in type(layer).__name__
        for w in layer.weights:
            shape, name = tuple(w.shape), w.name
            if name == "count":
                continue
            if name in ("gamma", "moving_variance"):
                value = rng.uniform(0.8, 1.2, shape)
            elif len(shape) >= 2:
                fan_axes = shape[:-2] if depthwise or name == "depthwise_kernel" else shape[:-1]
                value = rng.normal(0.0, np.sqrt(2.0 / max(1, int(np.prod(fan_axes)))), shape)
            else:
                value = rng.normal(0.0, 0.1, shape)
            w.assign(value.astype("float32"))
    head = [layer for layer in model.layers if type(layer).__name__ in ("Dense", "Conv2D")][-1]
    scale = 10.0 / max(1e-12, float(np.abs(np.asarray(model(images, training=False))).max()))
    for w in head.weights:
        w.assign(np.asarray(w.numpy()) * scale)


def _first_line(error):
    text = f"{type(error).__name__}: {error}"
    return text.split(". ")[0][:160]


def _refused(error):
    kinds = sorted(set(re.findall(r"\((\w+)\)", str(error))))
    return ", ".join(kinds) if kinds else _first_line(error)


def _quantize(converted):
    try:
        tfkd.quantize(converted)
        return "yes (all layers)"
    except (ValueError, RuntimeError) as error:
        first = _refused(error)
    for kinds in ((keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense),
                  (keras.layers.Conv2D, keras.layers.Dense)):
        try:
            tfkd.quantize(converted, layers=list(kinds))
            names = "/".join(k.__name__ for k in kinds)
            return f"layers={names} (all layers: refused {first})"
        except (ValueError, RuntimeError) as error:
            last = _first_line(error)
    return f"no: {last}"


def _quantize_with_compat_configs(converted):
    """TF-MOT directly, every supported layer plus tfkd's configs for converted Keras 3 layers."""
    import tensorflow_model_optimization as tfmot

    from tfkd.optimize.quantize_configs import quantize_config_for

    api = tfmot.quantization.keras
    registry = api.default_8bit.Default8BitQuantizeScheme().get_quantize_registry()

    def annotate(layer):
        config = quantize_config_for(layer)
        if config is not None or registry.supports(layer):
            return api.quantize_annotate_layer(layer, quantize_config=config)
        return layer

    try:
        annotated = keras.models.clone_model(converted, clone_function=annotate)
        annotated.set_weights(converted.get_weights())
        with api.quantize_scope():
            qat = api.quantize_apply(annotated)
    except (ValueError, RuntimeError, TypeError) as error:
        return f"no: {_first_line(error)}"
    wrapped = sum(isinstance(layer, api.QuantizeWrapperV2) for layer in qat.layers)
    return f"yes ({wrapped} wrapped)"


def _export(converted, images, expected):
    from ai_edge_litert.interpreter import Interpreter

    data = tfkd.export.to_tflite(converted)
    interpreter = Interpreter(model_content=data)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], images)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return len(data), float(np.abs(got - expected).max())


def run_family(keras3, name, size, kwargs, do_export):
    keras3.utils.set_random_seed(0)
    images = np.random.default_rng(1).uniform(0, 255, (8, size, size, 3)).astype("float32")
    row = {"family": name, "input": f"{size}x{size}"}
    model = getattr(keras3.applications, name)(
        input_shape=(size, size, 3), weights=None, classes=10, classifier_activation=None,
        **kwargs,
    )
    randomize(model, images)
    row["params"] = model.count_params()
    expected = np.asarray(model(images, training=False))
    row["max_logit"] = float(np.abs(expected).max())
    start = time.perf_counter()
    try:
        converted = tfkd.from_keras3(model)
    except (TypeError, ValueError) as error:
        row["convert"] = _first_line(error)
        return row
    row["convert_s"] = time.perf_counter() - start
    row["diff"] = float(np.abs(np.asarray(converted(images, training=False)) - expected).max())
    try:
        pruned = tfkd.prune(converted, target_sparsity=0.5)
        wrapped = sum("Prune" in type(layer).__name__ for layer in pruned.layers)
        row["prunes"] = f"yes ({wrapped} layers)"
    except (ValueError, RuntimeError) as error:
        row["prunes"] = f"no: {_first_line(error)}"
    row["quantizes"] = _quantize(converted)
    row["qat_compat"] = _quantize_with_compat_configs(converted)
    if do_export:
        try:
            size_bytes, diff = _export(converted, images, expected)
            row["exports"] = f"yes ({size_bytes / 1e6:.1f} MB, max diff {diff:.1e})"
        except Exception as error:  # noqa: BLE001 - reported in the table
            row["exports"] = f"no: {_first_line(error)}"
    return row


def to_markdown(rows, note):
    lines = [
        "# Keras 3 applications through tfkd.from_keras3",
        "",
        note,
        "",
        "| family | input | params | max abs logit | max abs diff (logits) | convert s | prunes? "
        "| quantizes (`tfkd.quantize`)? | QAT with tfkd's compat configs? "
        "| exports (float32 .tflite)? |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "convert" in r:
            lines.append(f"| {r['family']} | {r['input']} | {r['params']:,} | - | not converted: "
                         f"{r['convert']} | - | - | - | - | - |")
            continue
        lines.append(
            f"| {r['family']} | {r['input']} | {r['params']:,} | {r['max_logit']:.2f} | "
            f"{r['diff']:.1e} | {r['convert_s']:.1f} | {r['prunes']} | {r['quantizes']} | "
            f"{r['qat_compat']} | "
            f"{r.get('exports', 'skipped')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--families", default=None, help="comma-separated family names")
    parser.add_argument("--no-export", action="store_true", help="skip the .tflite export")
    args = parser.parse_args(argv)
    keras3 = importlib.import_module("keras")
    names = args.families.split(",") if args.families else (QUICK if args.quick else FAMILIES)
    warnings.filterwarnings("ignore")
    rows = []
    for name in names:
        size, kwargs = FAMILIES[name]
        row = run_family(keras3, name, size, kwargs, not args.no_export)
        rows.append(row)
        print({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    note = (
        f"Keras {keras3.__version__}, tf_keras {keras.__version__}; `weights=None`, 10 classes, "
        "random He-scaled weights with the classifier scaled to logits of at most 10; 8 images "
        "uniform in [0, 255]. Timings were taken on a shared 2-core machine under load."
    )
    markdown = to_markdown(rows, note)
    print(markdown)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "keras3_applications.md")
    with tempfile.NamedTemporaryFile("w", dir=RESULTS, delete=False, suffix=".tmp") as handle:
        handle.write(markdown)
    os.replace(handle.name, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
