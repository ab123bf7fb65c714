"""`Ensemble`: several frozen teachers whose soft targets are averaged (Hinton's "set of models")."""

from tfkd._keras import check_model, keras, tf


class Ensemble(keras.Model):
    """Averages the probabilities of several teachers and outputs their log, usable as logits.

    `softmax(log(mean_i softmax(z_i)))` is the averaged distribution, so every logit-based loss sees
    the ensemble's averaged soft targets.

    Args:
        models: The teachers, `tfkd.keras.Model`s with outputs of one shape.
        weights: One non-negative weight per model. Defaults to `None` (equal weights).
    """

    def __init__(self, models, weights=None, name="ensemble", **kwargs):
        super().__init__(name=name, **kwargs)
        self.members = [check_model(f"models[{i}]", m) for i, m in enumerate(models)]
        n = len(self.members)
        self.member_weights = [1.0 / n] * n if weights is None else [w / sum(weights) for w in weights]

    def call(self, inputs, training=False):
        probabilities = [
            w * tf.nn.softmax(m(inputs, training=training), axis=-1)
            for w, m in zip(self.member_weights, self.members)
        ]
        return tf.math.log(tf.add_n(probabilities) + 1e-12)
