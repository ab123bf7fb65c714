"""Why `DeepSupervision` scores below the student alone in `benchmarks/methods.py`.

Same student (the 3.6k-parameter CNN of `methods.py`), data (10% of the digits' training half
per seed, or `--fraction`), optimizer, epochs and seeds as `methods.py`; only the heads change.
`head_loss_weight=0` must reproduce the student alone exactly (then the mechanism adds nothing of
its own: no bug in the shared training step), and the other rows show what the heads cost or give.

    python benchmarks/deep_supervision.py                 # writes results/deep_supervision.md
    python benchmarks/deep_supervision.py --fraction 1.0 --epochs 60
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
from methods import LEARNING_RATE, RESULTS, _label_loss, build_cnn_student

import tfkd
from tfkd import keras
from tfkd.export._atomic import write_text

VARIANTS = [
    ("student alone", None),
    ("DeepSupervision conv1+conv2 (methods.py's)", {"taps": ["conv1", "conv2"]}),
    ("... head_loss_weight=0 (heads do nothing)", {"taps": ["conv1", "conv2"],
                                                   "head_loss_weight": 0.0}),
    ("... head_loss_weight=0.3", {"taps": ["conv1", "conv2"], "head_loss_weight": 0.3}),
    ("DeepSupervision conv2 only", {"taps": ["conv2"]}),
    ("DeepSupervision embedding (Dense 32)", {"taps": ["embedding"]}),
]


def run(kwargs, data, seed, epochs):
    (x, y), (x_test, y_test) = data
    keras.utils.set_random_seed(100 + seed)  # as methods.py seeds each run
    student = build_cnn_student()
    if kwargs is None:
        trainable = student
        trainable.compile(keras.optimizers.Adam(LEARNING_RATE), _label_loss())
    else:
        trainable = tfkd.DeepSupervision(student, **kwargs)
        trainable.compile(keras.optimizers.Adam(LEARNING_RATE))
    trainable.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    predictions = student.predict(x_test, batch_size=512, verbose=0)
    return 100 * float(np.mean(np.argmax(predictions, axis=-1) == y_test))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    (x_train, y_train), test = tfkd.data.load_digits()
    started = time.perf_counter()
    subsets = [
        (x_train, y_train) if args.fraction >= 1.0
        else tfkd.data.subsample_per_class(x_train, y_train, args.fraction, seed=seed)
        for seed in range(args.seeds)
    ]
    lines = ["| setup | test accuracy (%) | per seed |", "|---|---|---|"]
    for name, kwargs in VARIANTS:
        scores = [run(kwargs, (subsets[s], test), s, args.epochs) for s in range(args.seeds)]
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        lines.append(f"| {name} | {statistics.mean(scores):.1f} ± {spread:.1f} | "
                     f"{', '.join(f'{s:.1f}' for s in scores)} |")
        print(lines[-1], flush=True)
    command = (f"python benchmarks/deep_supervision.py --seeds {args.seeds} --epochs "
               f"{args.epochs} --fraction {args.fraction}")
    text = (
        "# DeepSupervision against the student alone\n\n"
        f"Written by `{command}` ({(time.perf_counter() - started) / 60:.1f} min). "
        f"{len(subsets[0][1])} training images per seed, {args.epochs} epochs of "
        f"Adam({LEARNING_RATE}), batch 32, the 3.6k-parameter CNN of `methods.py`.\n\n"
        + "\n".join(lines) + "\n"
    )
    os.makedirs(RESULTS, exist_ok=True)
    name = "deep_supervision.md" if args.fraction == 0.1 else f"deep_supervision_{args.fraction}.md"
    write_text(os.path.join(RESULTS, name), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
