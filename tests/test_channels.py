"""Channel pruning: masks grown on a schedule in fit, and a strip that cuts the channels out.

Every coupling gets a strip whose outputs equal the masked model's (BatchNorm statistics are
randomized so that a channel cut in the wrong place would show) and that really has fewer filters.
"""

import numpy as np
import pytest

import tfkd
from tfkd import keras
from tfkd.optimize import channels

L = keras.layers
SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _randomize_batch_norms(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.normal(1.0, 0.5, gamma.shape), rng.normal(0.0, 1.0, beta.shape),
                rng.normal(0.0, 1.0, mean.shape), rng.uniform(0.5, 2.0, var.shape),
            ])
    return model


def _conv_bn_conv():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.Activation("relu", name="act1")(x)
    x = L.Conv2D(6, 3, padding="same", name="c2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU(name="act2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x), name="conv_bn_conv")


def _depthwise():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 1, name="expand")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(6.0, name="relu1")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU(6.0, name="relu2")(x)
    x = L.BatchNormalization(name="bn3")(L.Conv2D(4, 1, name="project")(x))
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x), name="depthwise")


def _residual():
    inputs = keras.Input((8, 8, 3))
    stem = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(
        L.Conv2D(8, 3, padding="same", name="stem")(inputs)))
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="inner")(stem)
    y = L.BatchNormalization(name="out_bn")(L.Conv2D(8, 3, padding="same", name="outer")(y))
    x = L.GlobalAveragePooling2D(name="gap")(L.Add(name="add")([stem, y]))
    return keras.Model(inputs, L.Dense(3, name="logits")(x), name="residual")


def _concatenate():
    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="branch_a")(inputs)
    b = L.Conv2D(4, 1, activation="relu", name="branch_b")(inputs)
    x = L.Concatenate(name="cat")([a, b])
    x = L.Conv2D(5, 3, padding="same", activation="relu", name="after")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x), name="concatenate")


def _flatten_dense():
    inputs = keras.Input((6, 6, 1))
    x = L.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(0.1, name="drop")(x)
    x = L.Dense(10, activation="relu", name="hidden")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x), name="flatten_dense")


COUPLINGS = {
    # name: (builder, {layer: channels before -> after at 50%})
    "conv_bn_act_conv": (_conv_bn_conv, {"c1": (8, 4), "c2": (6, 3), "logits": (3, 3)}),
    "depthwise": (_depthwise, {"expand": (8, 4), "project": (4, 2)}),
    "residual_add": (_residual, {"stem": (8, 4), "outer": (8, 4), "inner": (4, 2)}),
    "concatenate": (_concatenate, {"branch_a": (6, 3), "branch_b": (4, 2), "after": (5, 3)}),
    "flatten_dense": (_flatten_dense, {"conv": (8, 4), "hidden": (10, 5)}),
}


def _filters(layer):
    return getattr(layer, "filters", None) or getattr(layer, "units", None)


def _images(model, n=4, seed=1):
    shape = (n, *model.input_shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("coupling", sorted(COUPLINGS))
def test_strip_gives_the_masked_outputs_with_fewer_channels(coupling):
    build, expected = COUPLINGS[coupling]
    keras.utils.set_random_seed(0)
    model = _randomize_batch_norms(build())
    pruned = channels.prune_channels(model, target_sparsity=0.5, schedule="constant")
    removed = channels.update_masks(pruned, step=0)
    assert removed and all(count > 0 for count in removed.values())
    x = _images(model)
    masked_out = pruned(x, training=False).numpy()
    assert not np.allclose(masked_out, model(x, training=False).numpy(), atol=1e-4)

    small = channels.strip_channels(pruned)

    assert not any(isinstance(layer, channels.ChannelMask) for layer in small.layers)
    np.testing.assert_allclose(small(x, training=False).numpy(), masked_out, atol=1e-5)
    assert small.count_params() < model.count_params()
    for name, (before, after) in expected.items():
        assert _filters(model.get_layer(name)) == before
        assert _filters(small.get_layer(name)) == after, name


def test_depthwise_and_batch_norm_are_cut_with_their_conv():
    keras.utils.set_random_seed(0)
    pruned = channels.prune_channels(_depthwise(), target_sparsity=0.5, schedule="constant")
    channels.update_masks(pruned, step=0)
    small = channels.strip_channels(pruned)
    assert small.get_layer("dw").depthwise_kernel.shape == (3, 3, 4, 1)
    assert small.get_layer("bn1").gamma.shape == (4,)
    assert small.get_layer("project").kernel.shape == (1, 1, 4, 2)


def test_residual_add_prunes_one_group_for_all_added_tensors():
    keras.utils.set_random_seed(0)
    pruned = channels.prune_channels(_residual(), target_sparsity=0.5, schedule="constant")
    masks = [layer for layer in pruned.layers if isinstance(layer, channels.ChannelMask)]
    residual = {m.group for m in masks if m.group in ("stem", "outer")}
    assert len(residual) == 1  # stem and outer share one group
    channels.update_masks(pruned, step=0)
    values = {m.name: m.mask.numpy() for m in masks if set(m.producers) == {"stem", "outer"}}
    assert len(values) >= 4
    first = next(iter(values.values()))
    assert all(np.array_equal(v, first) for v in values.values())


def test_flatten_dense_rows_are_cut_per_channel():
    keras.utils.set_random_seed(0)
    model = _flatten_dense()
    pruned = channels.prune_channels(model, target_sparsity=0.5, schedule="constant")
    channels.update_masks(pruned, step=0)
    kept = np.flatnonzero(pruned.get_layer("channel_mask_conv").mask.numpy())
    small = channels.strip_channels(pruned)
    # 2x2 positions x 8 channels -> 2x2 x 4; rows of position p, channel c are p * 8 + c.
    rows = (np.arange(4)[:, None] * 8 + kept[None, :]).reshape(-1)
    full = model.get_layer("hidden").kernel.numpy()
    cut = small.get_layer("hidden").kernel.numpy()
    keep_units = np.flatnonzero(pruned.get_layer("channel_mask_hidden").mask.numpy())
    np.testing.assert_array_equal(cut, full[rows][:, keep_units])


def test_importance_removes_the_smallest_filters_first():
    keras.utils.set_random_seed(0)
    model = _conv_bn_conv()
    kernel = model.get_layer("c1").kernel.numpy()
    scale = np.array([5, 0.1, 4, 0.2, 3, 0.3, 2, 0.4], dtype="float32")
    model.get_layer("c1").kernel.assign(kernel * scale)
    pruned = channels.prune_channels(model, target_sparsity=0.5, schedule="constant")
    channels.update_masks(pruned, step=0)
    mask = pruned.get_layer("channel_mask_c1").mask.numpy()
    np.testing.assert_array_equal(mask, [1, 0, 1, 0, 1, 0, 1, 0])


def test_polynomial_schedule_by_hand():
    mask = channels.ChannelMask("g", target_sparsity=0.5, begin_step=0, end_step=10, frequency=1)
    assert mask.sparsity_at(0) == 0.0
    assert mask.sparsity_at(5) == pytest.approx(0.5 * (1 - 0.5**3))
    assert mask.sparsity_at(10) == 0.5
    assert mask.sparsity_at(99) == 0.5


def test_masks_only_grow_and_keep_one_channel():
    keras.utils.set_random_seed(0)
    pruned = channels.prune_channels(_conv_bn_conv(), target_sparsity=0.9, begin_step=0,
                                     end_step=10, frequency=1)
    counts = [channels.update_masks(pruned, step)["c1"] for step in (0, 3, 6, 10, 2)]
    assert counts == sorted(counts[:4]) + [counts[3]]
    assert counts[3] == 7  # floor(0.9 * 8) = 7 of 8, one kept


def test_schedule_reaches_the_target_in_distiller_fit(tiny_data):
    x, y = tiny_data
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    h = L.Dense(8, activation="relu", name="hidden")(L.Flatten()(h))
    student = keras.Model(inputs, L.Dense(10, name="logits")(h))
    teacher = keras.Model(inputs, L.Dense(10)(L.Flatten()(inputs)))
    pruned = tfkd.prune(student, target_sparsity=0.5, structure="channels")
    distiller = tfkd.Distiller(teacher=teacher, student=pruned)
    distiller.compile(optimizer="adam", loss=SCCE)
    distiller.fit(x, y, epochs=3, batch_size=8, verbose=0)
    # 8 steps x 3 epochs; target at round(24 * 2 / 3) = 16; frequency clamped to 1.
    mask = pruned.get_layer("channel_mask_conv")
    assert mask.end_step == 16
    assert np.sum(mask.mask.numpy() == 0) == 4
    assert np.sum(pruned.get_layer("channel_mask_hidden").mask.numpy() == 0) == 4


def test_tfkd_prune_and_strip_dispatch_to_channels():
    keras.utils.set_random_seed(0)
    model = _conv_bn_conv()
    pruned = tfkd.prune(model, 0.5, structure="channels", schedule="constant", layers=["c2"])
    channels.update_masks(pruned, step=0)
    small = tfkd.strip(pruned)
    assert small.get_layer("c2").filters == 3 and small.get_layer("c1").filters == 8
    assert tfkd.strip(small) is small
    with pytest.raises(ValueError, match="takes no policy.*Received: policy='xnnpack'"):
        tfkd.prune(model, 0.5, structure="channels", policy="xnnpack")


def test_saved_pruned_model_keeps_its_masks_and_schedule(tmp_path):
    keras.utils.set_random_seed(0)
    pruned = channels.prune_channels(_conv_bn_conv(), 0.5, end_step=40, frequency=4)
    channels.update_masks(pruned, step=40)
    path = tmp_path / "pruned.keras"
    pruned.save(path)
    loaded = tfkd.load_model(str(path))
    mask = loaded.get_layer("channel_mask_c1")
    assert mask.end_step == 40 and mask.frequency == 4
    np.testing.assert_array_equal(mask.mask.numpy(), pruned.get_layer("channel_mask_c1").mask)
    assert tfkd.strip(loaded).get_layer("c1").filters == 4


def test_excluded_and_unselected_layers_are_untouched():
    keras.utils.set_random_seed(0)
    model = _conv_bn_conv()
    excluded = channels.prune_channels(model, 0.5, schedule="constant", exclude=["c1"])
    channels.update_masks(excluded, step=0)
    small = channels.strip_channels(excluded)
    assert small.get_layer("c1").filters == 8 and small.get_layer("c2").filters == 3
    np.testing.assert_array_equal(small.get_layer("c1").kernel.numpy(),
                                  model.get_layer("c1").kernel.numpy())
    only = channels.strip_channels(_masked(model, layers=["c1"]))
    assert only.get_layer("c1").filters == 4 and only.get_layer("c2").filters == 6


def _masked(model, **kwargs):
    pruned = channels.prune_channels(model, 0.5, schedule="constant", **kwargs)
    channels.update_masks(pruned, step=0)
    return pruned


def test_logits_are_never_pruned():
    keras.utils.set_random_seed(0)
    with pytest.raises(ValueError, match="'logits' gives a model output"):
        channels.prune_channels(_conv_bn_conv(), 0.5, layers=["logits"])


def test_refuses_a_layer_it_cannot_cut_naming_the_blocking_layer():
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = L.Reshape((8, 32), name="reshape")(x)
    x = L.LayerNormalization(name="norm")(L.Dense(6, name="mix")(x))
    model = keras.Model(inputs, L.Dense(3, name="logits")(L.Flatten()(x)))
    with pytest.raises(ValueError, match=r"channels of layer 'conv'.*'reshape' is a Reshape"):
        channels.prune_channels(model, 0.5, layers=["conv"])
    with pytest.raises(ValueError, match=r"no channels that can be removed.*'norm'"):
        channels.prune_channels(model, 0.5)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"target_sparsity": 1.0}, ValueError, "Received: target_sparsity=1.0"),
    ({"target_sparsity": "half"}, TypeError, "Received: target_sparsity='half'"),
    ({"criterion": "random"}, ValueError, "Received: criterion='random'"),
    ({"schedule": "cubic"}, ValueError, "Received: schedule='cubic'"),
    ({"exclude": 3}, TypeError, "Received: exclude=3"),
    ({"layers": ["nope"]}, ValueError, "Received: layers="),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        channels.prune_channels(_conv_bn_conv(), **kwargs)


def test_bn_gamma_criterion_ranks_by_batch_norm_scale():
    keras.utils.set_random_seed(0)
    model = _conv_bn_conv()
    gamma = np.array([0.1, 3, 0.2, 4, 0.3, 5, 0.4, 6], dtype="float32")
    bn = model.get_layer("bn1")
    bn.set_weights([gamma, *bn.get_weights()[1:]])
    pruned = channels.prune_channels(model, 0.5, schedule="constant", criterion="bn_gamma")
    channels.update_masks(pruned, step=0)
    np.testing.assert_array_equal(pruned.get_layer("channel_mask_c1").mask.numpy(),
                                  [0, 1, 0, 1, 0, 1, 0, 1])


def test_channel_mask_config_round_trip():
    mask = channels.ChannelMask("c1", ["c1"], ["bn1"], 0.3, "polynomial", 2, 20, 5, "l1",
                                name="m")
    again = channels.ChannelMask.from_config(mask.get_config())
    assert again.get_config() == mask.get_config()
    assert again.end_step == 20 and again.criterion == "l1" and again.producers == ["c1"]


def test_callbacks_include_the_channel_step():
    pruned = channels.prune_channels(_conv_bn_conv(), 0.5)
    assert any(isinstance(c, channels.ChannelPruningStep) for c in tfkd.callbacks(pruned))
    assert not tfkd.callbacks(_conv_bn_conv())


@pytest.mark.slow
def test_prune_fit_strip_quantize_int8_runs(tmp_path, tiny_data):
    x, y = tiny_data
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = L.ReLU()(L.BatchNormalization(name="bn")(L.Conv2D(8, 3, padding="same", name="conv")(
        inputs)))
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(h)
    h = L.Dense(8, activation="relu", name="hidden")(L.GlobalAveragePooling2D()(h))
    student = keras.Model(inputs, L.Dense(10, name="logits")(h))
    teacher = keras.Model(inputs, L.Dense(10)(L.Flatten()(inputs)))
    pruned = channels.prune_channels(student, target_sparsity=0.5, schedule="constant")
    distiller = tfkd.Distiller(teacher=teacher, student=pruned)
    distiller.compile(optimizer="adam", loss=SCCE)
    distiller.fit(x, y, epochs=1, batch_size=16, verbose=0)
    small = channels.strip_channels(pruned)
    assert small.get_layer("conv").filters == 4 and small.get_layer("hidden").units == 4
    np.testing.assert_allclose(small(x).numpy(), pruned(x).numpy(), atol=1e-5)

    qat = tfkd.quantize(small)
    path = tmp_path / "small.tflite"
    tfkd.export.to_tflite(qat, path, quantization="int8", representative_data=x)
    runtime = tfkd.TFLiteModel(str(path))
    assert runtime.predict(x[:4]).shape == (4, 10)
    assert path.stat().st_size > 0


@pytest.mark.slow
def test_mobilenet_v2_strips_to_the_masked_outputs():
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                           classes=10, classifier_activation=None)
    _randomize_batch_norms(model)
    pruned = channels.prune_channels(model, 0.5, schedule="constant")
    channels.update_masks(pruned, step=0)
    small = channels.strip_channels(pruned)
    x = _images(model, n=2)
    np.testing.assert_allclose(small(x).numpy(), pruned(x).numpy(), atol=1e-3, rtol=1e-3)
    assert small.count_params() < 0.5 * model.count_params()


@pytest.mark.slow
def test_compress_prunes_channels_and_reports_flops(trained_teacher, digits, tmp_path):
    (x_train, y_train), (x_test, y_test) = digits
    student = tfkd.models.build_student()
    tfkd.keras.utils.set_random_seed(0)
    report = tfkd.compress(
        trained_teacher, student, (x_train[:200], y_train[:200]), (x_test[:100], y_test[:100]),
        distill={"epochs": 2}, prune={"structure": "channels", "target_sparsity": 0.5,
                                      "epochs": 2},
        quantize={"epochs": 1}, export={"formats": ("int8-tflite",), "latency": False},
        out_dir=tmp_path, verbose=0,
    )
    stages = {s["name"]: s for s in report.stages}
    assert stages["pruned"]["params"] < stages["distilled"]["params"]
    assert stages["pruned"]["flops"] < stages["distilled"]["flops"]
    assert stages["int8-tflite"]["flops"] == stages["pruned"]["flops"]
    assert "MFLOPs" in report.to_markdown()


def test_channel_sensitivity_scores_and_prunes_the_least_sensitive_channels():
    keras.utils.set_random_seed(0)
    model = _conv_bn_conv()
    x = _images(model, n=16)
    scores = channels.channel_sensitivity(model, x)
    assert set(scores) == {"c1", "c2"} and len(scores["c1"]) == 8
    # c1's third channel removed by hand changes the outputs by exactly its score.
    masked = _masked(model, layers=["c1"])
    values = np.ones(8, dtype="float32")
    values[2] = 0.0
    for layer in masked.layers:
        if isinstance(layer, channels.ChannelMask):
            layer.mask.assign(values)
    change = np.mean((masked.predict(x, verbose=0) - model.predict(x, verbose=0)) ** 2)
    assert scores["c1"][2] == pytest.approx(change, rel=1e-4)
    pruned = channels.prune_channels(model, 0.5, schedule="constant", criterion=scores)
    channels.update_masks(pruned, step=0)
    removed = np.flatnonzero(pruned.get_layer("channel_mask_c1").mask.numpy() == 0)
    assert sorted(removed) == sorted(np.argsort(scores["c1"], kind="stable")[:4])
    with pytest.raises(ValueError, match="Received: criterion with keys"):
        channels.prune_channels(model, 0.5, criterion={"c1": [1.0, 2.0]})


def test_plain_fit_with_tfkd_callbacks_grows_the_masks(tiny_data):
    x, y = tiny_data
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, L.Dense(10, name="logits")(L.GlobalAveragePooling2D()(h)))
    pruned = tfkd.prune(model, 0.75, structure="channels", end_step=4, frequency=1)
    pruned.compile(optimizer="adam", loss=SCCE)
    pruned.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=tfkd.callbacks(pruned))
    assert np.sum(pruned.get_layer("channel_mask_conv").mask.numpy() == 0) == 6


def test_cli_compress_prune_channels_flag():
    from tfkd.cli.commands import compress_settings
    from tfkd.cli.parser import build_parser

    base = ["compress", "--teacher", "t", "--student", "s", "--data", "d", "--out", "o"]
    args = build_parser("0").parse_args([*base, "--prune", "channels", "--sparsity", "0.5"])
    assert compress_settings(args)["prune"] == {"target_sparsity": 0.5, "structure": "channels"}
    assert tfkd.PruneConfig(**compress_settings(args)["prune"]).structure == "channels"
    assert compress_settings(build_parser("0").parse_args([*base, "--prune", "weights"]))[
        "prune"] == {}
