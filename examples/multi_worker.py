"""Multi-worker distillation: one `tfkd.Distiller.fit` over several processes.

When one machine is not enough, `tf.distribute.MultiWorkerMirroredStrategy` runs the same training
program in several worker processes (on one or many machines) and all-reduces the gradients, so
every worker holds the same student. Each worker learns its place from the `TF_CONFIG` environment
variable: the list of all workers' `host:port` addresses and its own index.

This script is both the launcher and the worker. Run it without `--worker-index` and it starts
`--workers` local worker processes on free 127.0.0.1 ports, waits for them, and prints the chief's
final loss:

    python examples/multi_worker.py --workers 2
    python examples/multi_worker.py --workers 1     # the same global batch on one worker

Both print the same final loss (up to float rounding), since tfkd averages every loss over the
global batch. On several machines, start one worker per machine yourself, each with its own
TF_CONFIG (`"task": {"type": "worker", "index": i}`) and `--worker-index i`.

What you should see (2 workers, defaults): `final loss 0.843245, test accuracy 0.9010 (2 replica(s)
on 2 worker(s), ...)`, and the same loss and accuracy with `--workers 1` (each took 3-4 minutes on
a 2-core machine busy with other work).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--epochs", type=int, default=5, help="distillation epochs")
    parser.add_argument("--teacher", default=None, help="a trained teacher (.keras) to load")
    parser.add_argument(
        "--teacher-epochs", type=int, default=5,
        help="without --teacher: train one for this many epochs first (0: an untrained teacher)",
    )
    parser.add_argument(
        "--samples", type=int, default=None, help="use only the first N images of each split"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before giving up")
    parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--addresses", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- the worker


def run_worker(args):
    """One worker: the ordinary single-machine program, inside the strategy's scope."""
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": args.addresses.split(",")},
            "task": {"type": "worker", "index": args.worker_index},
        }
    )
    import tfkd
    from tfkd import keras
    from tfkd._keras import tf

    # Create the strategy first, before any other TensorFlow work.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    (x_train, y_train), (x_test, y_test) = tfkd.data.load_digits()
    if args.samples:
        x_train, y_train = x_train[: args.samples], y_train[: args.samples]
        x_test, y_test = x_test[: args.samples], y_test[: args.samples]

    def dataset(x, y):
        # Each global batch is split across the workers (sharded by data, not by file).
        options = tf.data.Options()
        shard_by_data = tf.data.experimental.AutoShardPolicy.DATA
        options.experimental_distribute.auto_shard_policy = shard_by_data
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size)
        return data.with_options(options)

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    keras.utils.set_random_seed(0)  # the same initial weights on every worker
    with strategy.scope():
        if args.teacher:
            teacher = keras.models.load_model(args.teacher)
        else:  # an untrained teacher, for quick runs (`--teacher-epochs 0`)
            teacher = tfkd.models.build_teacher()
        student = tfkd.models.build_student()
        distiller = tfkd.Distiller(
            teacher=teacher,
            student=student,
            distillation_losses=[tfkd.losses.LogitsDistillation(temperature=4.0)],
            student_loss_weight=0.5,
        )
        distiller.compile(optimizer=keras.optimizers.Adam(5e-3), loss=loss, metrics=["accuracy"])
    history = distiller.fit(dataset(x_train, y_train), epochs=args.epochs, verbose=0)
    accuracy = distiller.evaluate(dataset(x_test, y_test), verbose=0, return_dict=True)["accuracy"]
    if args.worker_index == 0:  # the chief reports
        print(
            f"FINAL_LOSS {history.history['loss'][-1]!r} ACCURACY {accuracy!r} "
            f"REPLICAS {strategy.num_replicas_in_sync}",
            flush=True,
        )


# --------------------------------------------------------------------------- the launcher


def free_ports(count):
    """`count` ports free on 127.0.0.1 (the OS picks them: bind to port 0, read, release)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def train_teacher(args, folder):
    """Trains the teacher once, in this process, and saves it for the workers to load.

    Teachers are usually trained once and shipped as a file. Training it here, outside the workers,
    also keeps it identical whatever the number of workers (its Dropout masks would differ).
    """
    import tfkd
    from tfkd import keras

    (x_train, y_train), _ = tfkd.data.load_digits()
    if args.samples:
        x_train, y_train = x_train[: args.samples], y_train[: args.samples]
    keras.utils.set_random_seed(0)
    teacher = tfkd.models.build_teacher()
    teacher.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    teacher.fit(x_train, y_train, epochs=args.teacher_epochs, batch_size=32, verbose=0)
    path = os.path.join(folder, "teacher.keras")
    teacher.save(path)
    return path


def launch(args, argv):
    """Starts the workers, waits for them (bounded by `--timeout`), returns the chief's result."""
    if args.teacher is None and args.teacher_epochs > 0:
        with tempfile.TemporaryDirectory() as folder:
            argv = [*argv, "--teacher", train_teacher(args, folder)]
            return _run_workers(args, argv)
    return _run_workers(args, argv)


def _run_workers(args, argv):
    addresses = ",".join(f"127.0.0.1:{port}" for port in free_ports(args.workers))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    # Output goes to files, not pipes: a worker blocked on a full pipe would stall the others.
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(args.workers)]
    workers = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *argv]
            + ["--worker-index", str(index), "--addresses", addresses],
            env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
        for index, log in enumerate(logs)
    ]
    try:
        _wait(workers, logs, args.timeout)
        logs[0].seek(0)
        chief = [line for line in logs[0].read().splitlines() if line.startswith("FINAL_LOSS")]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        for log in logs:
            log.close()
    if not chief:
        raise RuntimeError("the chief printed no result")
    return chief[-1]


def _wait(workers, logs, timeout):
    """Waits for every worker; stops at the first failure (showing its output) or the timeout."""
    deadline = time.monotonic() + timeout
    while any(worker.poll() is None for worker in workers):
        for index, worker in enumerate(workers):
            if worker.poll() not in (None, 0):
                logs[index].seek(0)
                output = logs[index].read()[-3000:]
                raise RuntimeError(f"worker {index} failed ({worker.returncode}):\n{output}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"The workers did not finish within --timeout={timeout} seconds.")
        time.sleep(0.2)
    for index, worker in enumerate(workers):
        if worker.returncode != 0:
            logs[index].seek(0)
            raise RuntimeError(f"worker {index} failed:\n{logs[index].read()[-3000:]}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.worker_index is not None:
        run_worker(args)
        return 0
    started = time.monotonic()
    line = launch(args, argv)
    fields = line.split()
    print(line)
    print(
        f"final loss {float(fields[1]):.6f}, test accuracy {float(fields[3]):.4f} "
        f"({fields[5]} replica(s) on {args.workers} worker(s), {time.monotonic() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
