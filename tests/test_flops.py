"""FLOPs counted from layer shapes, alike for a Keras model and its `.tflite`, in `tfkd.profile`."""

import numpy as np

import tfkd
from tfkd import keras
from tfkd.flops import count_flops
from tfkd.optimize import channels

L = keras.layers


def _net():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)  # 8*8*4 * 3*3*3 MACs = 6912
    x = L.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(x)  # 4*4*4 * 9 = 576
    x = L.Conv2D(6, 1, name="pw")(x)  # 4*4*6 * 4 = 384
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(5, name="logits")(x))  # 6*5 = 30


def test_count_flops_by_hand():
    assert count_flops(_net()) == 2 * (6912 + 576 + 384 + 30)


def test_profile_reports_the_same_flops_for_keras_and_tflite():
    model = _net()
    assert tfkd.profile(model).flops == 2 * 7902
    data = tfkd.export.to_tflite(model)
    assert tfkd.profile(data).flops == 2 * 7902
    x = np.random.default_rng(0).random((16, 8, 8, 3), dtype=np.float32)
    int8 = tfkd.export.to_tflite(model, quantization="int8", representative_data=x)
    assert tfkd.profile(int8).flops == 2 * 7902
    assert "FLOPs        15,804 per sample" in str(tfkd.profile(model))


def test_channel_pruning_lowers_flops():
    keras.utils.set_random_seed(0)
    pruned = channels.prune_channels(_net(), 0.5, schedule="constant")
    channels.update_masks(pruned, step=0)
    small = tfkd.strip(pruned)
    # conv 4 -> 2 filters (dw follows), pw 6 -> 3: 8*8*2*27 + 4*4*2*9 + 4*4*3*2 + 3*5.
    assert count_flops(small) == 2 * (3456 + 288 + 96 + 15)
