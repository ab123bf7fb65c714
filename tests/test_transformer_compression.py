"""Encoders through `tfkd.prune` (MultiHeadAttention, Dense, Embedding) and `tfkd.quantize` (QAT of
the whole encoder) to an integer `.tflite`."""

import numpy as np
import pytest

import tfkd
from tfkd import keras
from tfkd.optimize.transformer_quantize import (
    EmbeddingQuantizeConfig,
    LayerNormalizationQuantizeConfig,
    MultiHeadAttentionQuantizeConfig,
    transformer_quantize_config,
)

TOKENS = np.random.default_rng(0).integers(0, 20, size=(32, 8)).astype("int32")
LABELS = (TOKENS[:, 1] > 9).astype("int64")


def encoder(depth=2, name="encoder"):
    return tfkd.models.build_transformer(
        vocab_size=20, sequence_length=8, width=16, depth=depth, heads=2, ffn_units=32, name=name
    )


def user_encoder():
    """Written by hand: self-attention called with keywords, a bare `h + a` residual."""
    inputs = keras.Input((8,), dtype="int32")
    h = keras.layers.Embedding(20, 16, name="emb")(inputs)
    a = keras.layers.MultiHeadAttention(2, 8, name="attn")(query=h, value=h, key=h)
    h = keras.layers.LayerNormalization(name="norm")(keras.layers.Add()([h, a]))
    h = keras.layers.Dense(16, activation="relu", name="ffn")(h)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling1D()(h))
    return keras.Model(inputs, outputs, name="user")


def attention_kernels(model, name):
    layer = model.get_layer(name)
    return [np.asarray(getattr(layer, p).kernel)
            for p in ("_query_dense", "_key_dense", "_value_dense", "_output_dense")]


@pytest.mark.parametrize("build", [encoder, user_encoder])
def test_prune_wraps_attention_dense_and_embedding_with_the_same_outputs(build):
    model = build()
    pruned = tfkd.prune(model, target_sparsity=0.5)
    wrapped = {layer.layer.name for layer in pruned.layers if hasattr(layer, "pruning_step")}
    attention = "block_0_attention" if build is encoder else "attn"
    embedding = "token_embedding" if build is encoder else "emb"
    assert {attention, embedding} <= wrapped
    np.testing.assert_allclose(pruned(TOKENS), model(TOKENS), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_pruned_student_distils_with_attention_and_its_kernels_are_sparse():
    teacher = encoder(name="teacher")
    student = tfkd.prune(encoder(depth=1, name="student"), target_sparsity=0.5,
                         schedule="constant")
    distiller = tfkd.Distiller(teacher=teacher, student=student, distillation_losses=[
        tfkd.losses.AttentionDistillation(["block_0_attention", "block_1_attention"],
                                          ["block_0_attention"]),
        tfkd.losses.LogitsDistillation(),
    ])
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    distiller.fit(TOKENS, LABELS, epochs=2, batch_size=8, verbose=0)
    stripped = tfkd.strip(distiller.student)
    for kernel in attention_kernels(stripped, "block_0_attention"):
        assert np.mean(kernel == 0) >= 0.49
    for name in ("token_embedding", "block_0_ffn_1"):
        assert np.mean(stripped.get_layer(name).get_weights()[0] == 0) >= 0.49


def test_transformer_quantize_config_picks_the_layers_tf_mot_lacks():
    model = encoder()
    configs = {n: transformer_quantize_config(model.get_layer(n)) for n in
               ("block_0_attention", "block_0_output", "token_embedding", "embeddings",
                "block_0_ffn_1")}
    assert isinstance(configs["block_0_attention"], MultiHeadAttentionQuantizeConfig)
    assert isinstance(configs["block_0_output"], LayerNormalizationQuantizeConfig)
    assert isinstance(configs["token_embedding"], EmbeddingQuantizeConfig)
    assert configs["embeddings"] is not None  # position embeddings: output quantized
    assert configs["block_0_ffn_1"] is None  # TF-MOT's own Dense config


def test_quantize_wraps_every_encoder_layer_and_fake_quantizes_attention():
    model = encoder(depth=1)
    qat = tfkd.quantize(model)
    wrapped = {layer.layer.name for layer in qat.layers if hasattr(layer, "quantize_config")}
    for name in ("token_embedding", "block_0_attention", "block_0_output", "block_0_ffn_1",
                 "block_0_gelu", "embeddings", "logits"):
        assert name in wrapped
    attention = qat.get_layer("quant_block_0_attention")
    # 4 kernels quantized, 7 activation points (q, k, v, output, scores, softmax, context).
    assert len(attention._weight_vars) == 4 and len(attention._quantize_activations) == 7
    assert qat.inputs[0].dtype == "int32"
    # Untrained, the fake quantizers' ranges are TF-MOT's initial ones (outputs can differ much
    # from the float model's until QAT trains them): here only that the ids run through.
    outputs = np.asarray(qat(TOKENS))
    assert outputs.shape == np.asarray(model(TOKENS)).shape and np.all(np.isfinite(outputs))


def test_integer_inputs_get_no_fake_quantizer():
    """TF-MOT puts a QuantizeLayer after every input; tfkd's scheme leaves int32 ids alone."""
    qat = tfkd.quantize(encoder(depth=1))
    after_input = [node.outbound_layer for node in qat.layers[0]._outbound_nodes]
    assert after_input and all(layer.name == "token_embedding" or "quant_token" in layer.name
                               for layer in after_input)


@pytest.mark.slow
@pytest.mark.parametrize("build", [lambda: encoder(depth=1), user_encoder])
def test_qat_encoder_converts_to_an_all_integer_tflite(tmp_path, build):
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(True))
    model.fit(TOKENS, LABELS, epochs=5, verbose=0)  # decisive logits: argmax comparable
    qat = tfkd.quantize(model)
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    qat.fit(TOKENS, LABELS, epochs=2, verbose=0)
    path = tmp_path / "encoder_int8.tflite"
    tfkd.export.to_tflite(qat, path, quantization="int8", representative_data=TOKENS,
                          check=False)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    tensors = interpreter.get_tensor_details()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert {"FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "GATHER"} <= ops
    assert not any(t["dtype"] == np.float32 for t in tensors)
    matmul_inputs = [tensors[i]["dtype"] for op in interpreter._get_ops_details()
                     if op["op_name"] in ("BATCH_MATMUL", "FULLY_CONNECTED")
                     for i in op["inputs"] if i >= 0]
    assert set(matmul_inputs) <= {np.int8, np.int32}  # int32: biases
    runner = tfkd.TFLiteModel(path)
    agree = np.mean(np.argmax(runner.predict(TOKENS), -1) == np.argmax(qat(TOKENS), -1))
    assert agree >= 0.85


def test_keras3_encoder_converts_and_quantizes_whole():
    import importlib

    k3 = importlib.import_module("keras")  # Keras 3, beside tfkd's tf_keras
    inputs = k3.Input((8,), dtype="int32")
    h = k3.layers.Embedding(20, 16)(inputs)
    a = k3.layers.MultiHeadAttention(2, 8, name="attn")(h, h)
    h = k3.layers.LayerNormalization()(k3.layers.Add()([h, a]))
    outputs = k3.layers.Dense(2)(k3.layers.GlobalAveragePooling1D()(h))
    model3 = k3.Model(inputs, outputs)
    converted = tfkd.from_keras3(model3)
    np.testing.assert_allclose(converted(TOKENS), np.asarray(model3(TOKENS)), atol=1e-5)
    qat = tfkd.quantize(converted)
    assert "attn" in {layer.layer.name for layer in qat.layers if hasattr(layer, "layer")}
