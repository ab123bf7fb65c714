"""TF-MOT quantize configs for layers of converted Keras 3 models that TF-MOT's 8-bit scheme lacks.

`from_keras3` turns Keras 3 graphs into tf_keras layers TF-MOT's default 8-bit registry does not
cover: `Activation` layers with Keras 3 activations (`hard_silu`, `hard_sigmoid`, ...), and the
`Multiply` and `Rescaling` layers of squeeze-excite blocks and preprocessing. None has weights;
quantizing their output (8-bit, asymmetric, moving-average ranges, as TF-MOT does for `ReLU` and
`Add`) is what the TFLite converter needs to keep the graph integer. `quantize_config_for(layer)`
returns such a config for these layers and `None` for all others, for `tfkd.quantize` to pass to
`quantize_annotate_layer`.

Without it, TF-MOT's 8-bit layout transforms give every `Activation` after a BatchNormalization
TF-MOT's own activation config, which raises "Activation <function hard_silu> not supported" (even
when the layer was not selected). `TFOpLambda` nodes (`x + 3.0`) are left alone: annotating them
makes TF-MOT's model transformer rebuild a rank-6 tensor (tried on MobileNetV3Small); they stay
float in the QAT model and are calibrated by `representative_data` in the int8 export.
"""

import tensorflow_model_optimization as tfmot

from tfkd._keras import keras
from tfkd.keras3 import activations

_WRITTEN_OUT = frozenset(activations.WRITTEN_OUT.values())


@keras.utils.register_keras_serializable(package="tfkd")
class OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """Quantizes only a layer's output (8-bit, asymmetric, moving-average range): for layers
    without weights whose inputs TF-MOT already quantizes."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [
            tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False
            )
        ]

    def get_config(self):
        return {}


def quantize_config_for(layer):
    """An `OutputQuantizeConfig` for the converted-model layers TF-MOT lacks, else `None`.

    Args:
        layer: A tf_keras layer.

    Returns:
        A `QuantizeConfig` to pass as `quantize_annotate_layer(layer, quantize_config=...)`, or
        `None` when TF-MOT's own registry should decide (or the layer is not one of these).
    """
    if isinstance(layer, keras.layers.Activation) and layer.activation in _WRITTEN_OUT:
        return OutputQuantizeConfig()
    if isinstance(layer, (keras.layers.Multiply, keras.layers.Rescaling)):
        return OutputQuantizeConfig()
    return None
