"""Which channels of a Functional model must be removed together: the channel-dependency graph.

Every tensor's last axis is described by a *space*: a list of segments `(group_id, size)` (one
segment for a plain tensor, several after `Concatenate`) and a `repeat` count (`Flatten` of an
`(H, W, C)` tensor repeats the channel layout `H * W` times). A *group* is a set of channels that
must be kept or removed as one: the output filters of a Conv/Dense layer, joined with everything
that is tied to them channel by channel (BatchNorm, depthwise convolutions, activations, pooling)
and with every other tensor added to them (`Add`, `Multiply`, ...). A group is *blocked* (cannot
be cut) when it reaches a model input or output, or a layer that mixes channels in a way that
cannot be cut (`Reshape`, `LayerNormalization`, a softmax, a nested model, a shared layer ...);
`blockers` names those layers.
"""

import dataclasses

import numpy as np

from tfkd._keras import keras, tf

L = keras.layers

# Layers whose output channels are a new group (their filters/units can be removed).
PRODUCERS = (L.Conv1D, L.Conv2D, L.Conv3D, L.Dense, L.SeparableConv1D, L.SeparableConv2D)
# Layers whose weights hold one entry per channel of their input (sliced, never mixed).
PER_CHANNEL = (L.BatchNormalization, L.DepthwiseConv2D, L.DepthwiseConv1D, L.PReLU)
# Channel-wise layers without weights.
PASS_THROUGH = (
    L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.ThresholdedReLU, L.Dropout, L.SpatialDropout1D,
    L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianNoise, L.GaussianDropout, L.AlphaDropout,
    L.ActivityRegularization, L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D,
    L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D, L.GlobalAveragePooling1D,
    L.GlobalAveragePooling2D, L.GlobalAveragePooling3D, L.GlobalMaxPooling1D,
    L.GlobalMaxPooling2D, L.GlobalMaxPooling3D, L.ZeroPadding1D, L.ZeroPadding2D,
    L.ZeroPadding3D, L.Cropping1D, L.Cropping2D, L.Cropping3D, L.UpSampling1D, L.UpSampling2D,
    L.UpSampling3D, L.Rescaling,
)
# Zero in, zero out: a masked input stays masked, no mask needed after these.
ZERO_PRESERVING = (
    L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum, L.Concatenate, L.Flatten,
    L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D, L.MaxPooling1D,
    L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
    L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
    L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D, L.ZeroPadding1D,
    L.ZeroPadding2D, L.ZeroPadding3D, L.Cropping1D, L.Cropping2D, L.Cropping3D,
    L.UpSampling1D, L.UpSampling2D, L.UpSampling3D,
)
MERGES = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
_MIXING_ACTIVATIONS = ("softmax", "log_softmax")


@dataclasses.dataclass
class Group:
    """Channels removed together. `producers` score them; `blockers` say why they cannot be cut."""

    size: int
    producers: list = dataclasses.field(default_factory=list)
    batch_norms: list = dataclasses.field(default_factory=list)
    blockers: list = dataclasses.field(default_factory=list)

    @property
    def name(self):
        return self.producers[0] if self.producers else None


@dataclasses.dataclass(frozen=True)
class Space:
    segments: tuple  # ((group_id, size), ...)
    repeat: int = 1

    @property
    def channels(self):
        return sum(size for _, size in self.segments)


class ChannelGraph:
    """The channel groups of a Functional model, found by `analyze`.

    Attributes:
        groups: `{group_id: Group}` for the root groups (after merging).
        nodes: `[(layer, node, input_spaces, output_spaces)]` in topological order.
    """

    def __init__(self):
        self._parent = {}
        self._groups = {}
        self.nodes = []

    def new_group(self, size, blocker=None):
        gid = len(self._parent)
        self._parent[gid] = gid
        self._groups[gid] = Group(size, blockers=[blocker] if blocker else [])
        return gid

    def find(self, gid):
        while self._parent[gid] != gid:
            self._parent[gid] = self._parent[self._parent[gid]]
            gid = self._parent[gid]
        return gid

    def group(self, gid):
        return self._groups[self.find(gid)]

    @property
    def groups(self):
        return {gid: self._groups[gid] for gid in self._parent if self.find(gid) == gid}

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        keep, gone = self._groups[a], self._groups.pop(b)
        keep.producers += gone.producers
        keep.batch_norms += gone.batch_norms
        keep.blockers += gone.blockers
        self._parent[b] = a
        return a

    def block(self, space, blocker):
        for gid, _ in space.segments:
            self.group(gid).blockers.append(blocker)

    def kept(self, space, kept_by_group):
        """Indices (in the tensor's last axis) of the channels of `space` that are kept."""
        indices, offset = [], 0
        for gid, size in space.segments:
            kept = kept_by_group.get(self.find(gid))
            indices.extend(offset + np.arange(size) if kept is None else offset + kept)
            offset += size
        indices = np.asarray(indices, dtype=np.int64)
        if space.repeat == 1:
            return indices
        return (np.arange(space.repeat)[:, None] * offset + indices[None, :]).reshape(-1)


def walk(model):
    """`(layer, node)` of every non-input node of a Functional model, in topological order."""
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if not node.is_input:
                yield node.layer, node


def node_inputs(node):
    return list(node.keras_inputs)


def node_outputs(node):
    return tf.nest.flatten(node.outputs)


def analyze(model, exclude=(), mask_class=None):
    """Finds the channel groups of `model` (a built Functional or Sequential model).

    Args:
        model: The model.
        exclude: Names of producer layers whose groups must not be cut.
        mask_class: The mask layer class, treated as the identity.

    Returns:
        A `ChannelGraph`; `graph.spaces` maps `id(keras_tensor)` to its `Space`.
    """
    graph = ChannelGraph()
    spaces = {}
    for tensor in model.inputs:
        name = tensor._keras_history.layer.name
        spaces[id(tensor)] = _fresh(graph, tensor, (name, "is a model input"))
    counts = {}
    for layer, _ in walk(model):
        counts[id(layer)] = counts.get(id(layer), 0) + 1
    for layer, node in walk(model):
        inputs = [spaces[id(t)] for t in node_inputs(node)]
        if counts[id(layer)] > 1:
            outs = _unknown(graph, layer, node, inputs, "is called more than once (shared)")
        else:
            outs = _rule(graph, layer, node, inputs, exclude, mask_class)
        for tensor, space in zip(node_outputs(node), outs, strict=True):
            spaces[id(tensor)] = space
        graph.nodes.append((layer, node, inputs, outs))
    for tensor in model.outputs:
        layer = tensor._keras_history.layer
        graph.block(spaces[id(tensor)], (layer.name, "gives a model output"))
    graph.spaces = spaces
    return graph


def _fresh(graph, tensor, blocker=None):
    size = tensor.shape[-1] if tensor.shape.rank else 1
    return Space(((graph.new_group(int(size or 1), blocker), int(size or 1)),))


def _unknown(graph, layer, node, inputs, why):
    for space in inputs:
        graph.block(space, (layer.name, why))
    return [_fresh(graph, t, (layer.name, why)) for t in node_outputs(node)]


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _rule(graph, layer, node, inputs, exclude, mask_class):
    """The output spaces of one node, joining and blocking groups as the layer requires."""
    if mask_class is not None and isinstance(layer, mask_class):
        return inputs
    if isinstance(layer, keras.Model):
        return _unknown(graph, layer, node, inputs, "is a nested model (cut it on its own)")
    if len(inputs) != 1 and not isinstance(layer, (*MERGES, L.Concatenate)):
        return _unknown(graph, layer, node, inputs, "takes several inputs")
    if isinstance(layer, PRODUCERS):
        return _producer(graph, layer, node, inputs, exclude)
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)) and layer.depth_multiplier != 1:
        return _unknown(graph, layer, node, inputs, "has depth_multiplier > 1")
    if isinstance(layer, L.BatchNormalization) and list(layer.axis) != [_rank(node) - 1]:
        return _unknown(graph, layer, node, inputs, "normalizes an axis other than the last")
    if isinstance(layer, (*PER_CHANNEL, *PASS_THROUGH)):
        return _per_channel(graph, layer, node, inputs)
    if isinstance(layer, MERGES):
        return _merge(graph, layer, node, inputs)
    if isinstance(layer, L.Concatenate):
        if layer.axis not in (-1, _rank(node) - 1) or any(s.repeat != 1 for s in inputs):
            return _unknown(graph, layer, node, inputs, "concatenates along another axis")
        return [Space(sum((s.segments for s in inputs), ()))]
    if isinstance(layer, L.Flatten) and _channels_last(layer):
        shape = node_inputs(node)[0].shape
        spatial = int(np.prod(shape[1:-1])) if shape.rank > 2 else 1
        return [Space(inputs[0].segments, inputs[0].repeat * spatial)]
    why = f"is a {type(layer).__name__}, which tfkd cannot cut"
    return _unknown(graph, layer, node, inputs, why)


def _rank(node):
    return node_inputs(node)[0].shape.rank


def _mixes(layer):
    return getattr(layer, "activation", None) is not None and getattr(
        layer.activation, "__name__", ""
    ) in _MIXING_ACTIVATIONS


def _producer(graph, layer, node, inputs, exclude):
    space = inputs[0]
    if not _channels_last(layer) or getattr(layer, "groups", 1) != 1:
        return _unknown(graph, layer, node, inputs, "is channels_first or grouped")
    if space.repeat != 1 and not isinstance(layer, L.Dense):
        graph.block(space, (layer.name, "reads a flattened tensor"))
    out = _fresh(graph, node_outputs(node)[0])
    gid = out.segments[0][0]
    graph.group(gid).producers.append(layer.name)
    if layer.name in exclude:
        graph.block(out, (layer.name, "is excluded"))
    if _mixes(layer):
        graph.block(out, (layer.name, "applies a softmax across its outputs"))
    return [out]


def _per_channel(graph, layer, node, inputs):
    space = inputs[0]
    if not _channels_last(layer):
        return _unknown(graph, layer, node, inputs, "is channels_first")
    if space.repeat != 1 and not isinstance(layer, (L.Activation, L.Dropout)):
        return _unknown(graph, layer, node, inputs, "acts on a flattened tensor")
    if _mixes(layer) or isinstance(layer, L.Softmax):
        graph.block(space, (layer.name, "applies a softmax across channels"))
    if isinstance(layer, L.BatchNormalization):
        for gid, _ in space.segments:
            graph.group(gid).batch_norms.append(layer.name)
    if isinstance(layer, L.PReLU) and layer.shared_axes and _rank(node) - 1 in layer.shared_axes:
        graph.block(space, (layer.name, "shares its alpha across channels"))
    return [space]


def _merge(graph, layer, node, inputs):
    first = inputs[0]
    shapes = [tuple(size for _, size in s.segments) for s in inputs]
    if any(s.repeat != first.repeat for s in inputs) or len(set(shapes)) != 1:
        return _unknown(graph, layer, node, inputs, "merges tensors laid out differently")
    for other in inputs[1:]:
        for (a, _), (b, _) in zip(first.segments, other.segments, strict=True):
            graph.union(a, b)
    return [first]


def rebuild(model, make):
    """A new Functional model from `model`'s graph, each layer replaced as `make` says.

    Args:
        model: A Functional (or graph Sequential) model.
        make: `make(layer, node, args, kwargs)` returning the new output(s) of the node, given
            its arguments with tensors of the new graph.

    Returns:
        The new `keras.Model`, with the same inputs, outputs and name.
    """
    new = {}
    for tensor in model.inputs:
        layer = tensor._keras_history.layer
        new[id(tensor)] = keras.Input(
            batch_shape=tensor.shape, dtype=tensor.dtype, name=layer.name
        )

    def swap(value):
        return new[id(value)] if id(value) in new else value

    for layer, node in walk(model):
        args, kwargs = tf.nest.map_structure(swap, (node.call_args, node.call_kwargs))
        outputs = make(layer, node, args, kwargs)
        for old, out in zip(node_outputs(node), tf.nest.flatten(outputs), strict=True):
            new[id(old)] = out
    inputs = [new[id(t)] for t in model.inputs]
    outputs = tf.nest.map_structure(lambda t: new[id(t)], model._nested_outputs)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)


def copy_layer(layer, config=None, weights=None, input_shape=None):
    """A fresh layer from `config` (the layer's own by default), holding `weights` if given."""
    copy = layer.__class__.from_config(config or layer.get_config())
    if weights is not None and input_shape is not None:
        with tf.name_scope(copy.name):
            copy.build(input_shape)
        copy.set_weights(weights)
    return copy
