"""Teacher precision: the teacher's forward pass in bfloat16 or float16, on a copy of the teacher.

Soft targets do not need float32. A teacher running in bfloat16 (CPUs with AVX512_BF16 or AMX,
recent GPUs) or float16 (older GPUs) makes a live-teacher epoch cheaper, since the teacher's
forward pass is most of its cost. The user's teacher is never changed: tfkd clones it layer by
layer under a `mixed_<dtype>` policy (variables stay float32, computations run in `<dtype>`),
copies its weights, and casts what the copy returns back to float32 for the losses.
"""

import copy as copy_module

from absl import logging

from tfkd._keras import keras, tf
from tfkd.optimize._common import is_graph_model

TEACHER_DTYPES = (None, "float32", "bfloat16", "float16", "auto")
_LOWER = ("bfloat16", "float16")


def check_teacher_dtype(teacher_dtype):
    """`teacher_dtype` validated: one of `TEACHER_DTYPES`.

    Raises:
        TypeError: If it is not a string or `None`.
        ValueError: If it is another string.
    """
    options = ", ".join(repr(d) for d in TEACHER_DTYPES)
    if teacher_dtype is not None and not isinstance(teacher_dtype, str):
        raise TypeError(
            f"`teacher_dtype` must be one of {options}. Received: teacher_dtype={teacher_dtype!r} "
            f"(of type {type(teacher_dtype).__name__}). Pass e.g. `teacher_dtype=\"bfloat16\"`."
        )
    if teacher_dtype not in TEACHER_DTYPES:
        raise ValueError(
            f"`teacher_dtype` must be one of {options}. Received: teacher_dtype={teacher_dtype!r}. "
            "Use `\"auto\"` to let tfkd pick what this machine runs fast."
        )
    return teacher_dtype


def resolve_teacher_dtype(teacher_dtype):
    """The precision the teacher runs in: `None` (as built), `"float32"`, `"bfloat16"` or
    `"float16"`; `"auto"` picks with `pick_teacher_dtype()` and logs one line saying what.

    Args:
        teacher_dtype: One of `None`, `"float32"`, `"bfloat16"`, `"float16"`, `"auto"`.

    Returns:
        `None`, `"float32"`, `"bfloat16"` or `"float16"`.

    Raises:
        TypeError, ValueError: As `check_teacher_dtype`.
    """
    if check_teacher_dtype(teacher_dtype) != "auto":
        return teacher_dtype
    picked, reason = pick_teacher_dtype()
    logging.warning("tfkd: teacher_dtype='auto' runs the teacher in %s (%s).", picked, reason)
    return picked


def pick_teacher_dtype(cpu_flags=None, gpus=None):
    """What this machine runs a teacher fastest in, and why.

    GPUs first: compute capability 8.0 or newer gives bfloat16, older ones float16. Else the CPU:
    bfloat16 with AVX512_BF16 or AMX (flags of `/proc/cpuinfo`), float32 otherwise.

    Args:
        cpu_flags: The CPU's flags (a set of strings). Defaults to `None`: read `/proc/cpuinfo`.
        gpus: A list of `(name, (major, minor))` compute capabilities. Defaults to `None`: the
            GPUs TensorFlow sees.

    Returns:
        `(dtype, reason)`, e.g. `("bfloat16", "CPU with avx512_bf16")`.
    """
    gpus = _visible_gpus() if gpus is None else gpus
    if gpus:
        name, capability = gpus[0]
        if capability is not None and tuple(capability) >= (8, 0):
            return "bfloat16", f"GPU {name} with compute capability {capability}"
        return "float16", f"GPU {name} with compute capability {capability} (before 8.0)"
    flags = _cpu_flags() if cpu_flags is None else set(cpu_flags)
    fast = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if fast:
        return "bfloat16", f"CPU with {', '.join(fast)}"
    return "float32", "no GPU, and the CPU lacks avx512_bf16 and amx_bf16"


def _cpu_flags():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _visible_gpus():
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append((details.get("device_name", device.name), details.get("compute_capability")))
    return gpus


# ------------------------------------------------------------------------------ the copy


def teacher_in_precision(teacher, dtype):
    """What runs the teacher's forward pass in `dtype`: the teacher itself for `None`/float32,
    else a copy computing in `dtype` whose outputs are float32.

    Handles Functional and Sequential models (nested ones too), `tfkd.Ensemble` (each member
    copied) and `tfkd.CachedTeacher` (its live teacher copied; its stored outputs are kept).

    Args:
        teacher: A model, `tfkd.Ensemble` or `tfkd.CachedTeacher`.
        dtype: `None`, `"float32"`, `"bfloat16"` or `"float16"` (see `resolve_teacher_dtype`).

    Returns:
        The teacher, or its lower-precision copy (`weights_from(teacher)` refreshes its weights).

    Raises:
        ValueError: For a teacher that changes during training (`tfkd.EMATeacher`), or a
            subclassed model (it cannot be cloned layer by layer).
    """
    if dtype not in _LOWER:
        return teacher
    from tfkd.schemes.cached import CachedTeacher
    from tfkd.schemes.ensemble import Ensemble

    if getattr(teacher, "_follows_student", False):
        raise ValueError(
            "`teacher_dtype` runs a copy of a fixed teacher; an `EMATeacher` changes after every "
            f"step. Received: teacher_dtype={dtype!r} with teacher={teacher.name!r}. Pass "
            "`teacher_dtype=None` (or use mixed precision for the whole fit)."
        )
    if isinstance(teacher, CachedTeacher):
        cached = copy_module.copy(teacher)
        if teacher.teacher is not None:
            cached.teacher = teacher_in_precision(teacher.teacher, dtype)
        return cached
    if isinstance(teacher, Ensemble):
        members = [teacher_in_precision(m, dtype) for m in teacher.members]
        return Ensemble(members, weights=teacher.member_weights, average=teacher.average,
                        name=f"{teacher.name}_{dtype}")
    if getattr(teacher, "uses_teacher", True) is False or not isinstance(teacher, keras.Model):
        return teacher  # no teacher to run (teacher-free losses)
    if not is_graph_model(teacher):
        raise ValueError(
            "`teacher_dtype` clones the teacher layer by layer, which needs a Functional or "
            f"Sequential model. Received: teacher={type(teacher).__name__}(name={teacher.name!r}) "
            f"with teacher_dtype={dtype!r}. Rebuild it with the Functional API, or pass "
            "`teacher_dtype=None`."
        )
    policy = keras.mixed_precision.Policy(f"mixed_{dtype}")
    clone = _clone_in(teacher, policy)
    outputs = [
        keras.layers.Activation("linear", dtype="float32", name=f"to_float32_{i}")(output)
        for i, output in enumerate(tf.nest.flatten(clone.outputs))
    ]
    model = keras.Model(clone.inputs, outputs if len(outputs) > 1 else outputs[0],
                        name=f"{teacher.name}_{dtype}")
    model.trainable = False
    weights_from(model, teacher)
    return model


def weights_from(copy, teacher):
    """Gives `copy` (from `teacher_in_precision`) the teacher's current weights."""
    if copy is teacher:
        return
    if hasattr(teacher, "members"):  # an Ensemble
        for member_copy, member in zip(copy.members, teacher.members, strict=True):
            weights_from(member_copy, member)
        return
    if hasattr(teacher, "fingerprint"):  # a CachedTeacher
        if teacher.teacher is not None:
            weights_from(copy.teacher, teacher.teacher)
        return
    copy.set_weights(teacher.get_weights())


def _clone_in(model, policy):
    """A clone of a Functional/Sequential model whose layers compute under `policy`."""

    def clone_layer(layer):
        if isinstance(layer, keras.Model) and is_graph_model(layer):
            return _clone_in(layer, policy)
        config = layer.get_config()
        if "dtype" in config and not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = policy
        return type(layer).from_config(config)

    return keras.models.clone_model(model, clone_function=clone_layer)
