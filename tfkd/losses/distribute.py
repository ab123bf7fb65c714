"""The global batch under `tf.distribute`: what losses relating samples, and averages, need.

Inside `strategy.run` (as in `fit`) each replica holds a slice of the global batch, and the slices
may differ in size (the last batch of an epoch). A loss averaged per replica, or relating only the
samples of one replica, would then differ from the single-device loss; these helpers make every
replica compute its part of the single-device value.
"""

from tfkd._keras import tf


def _replica_context():
    """The replica context when several replicas run in sync, else `None`."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def gather_global_batch(*tensors):
    """The global batch of each tensor and where this replica's samples lie in it.

    In a replica context with several replicas in sync, all-gathers each tensor along the batch
    axis (`ReplicaContext.all_gather`; replicas may hold different numbers of samples). Its
    gradient returns to each replica the part of every replica's loss that depends on that
    replica's own samples, so the summed gradients are those of one device. Elsewhere (one device,
    or outside `strategy.run`) the tensors already are the batch.

    Args:
        *tensors: Tensors `[local_batch, ...]` of one replica.

    Returns:
        `(gathered, local)`: the list of the gathered tensors `[global_batch, ...]`, and a function
        taking a tensor `[global_batch, ...]` (or a scalar) and returning this replica's rows.
    """
    context = _replica_context()
    if context is None:
        return list(tensors), lambda values: values
    size = tf.shape(tensors[0])[0]
    sizes = context.all_gather(tf.reshape(size, [1]), axis=0)
    start = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    gathered = context.all_gather(list(tensors), axis=0)

    def local(values):
        if values.shape.rank == 0:
            return values
        return values[start : start + size]

    return gathered, local


def average_over_global_batch(per_sample_loss):
    """`sum(per_sample_loss) / global batch size`, this replica's share of the batch mean.

    Like `tf.nn.compute_average_loss`, but the global batch size is the sum of every replica's
    number of samples (an all-reduce), not this replica's times the number of replicas, so an
    uneven last batch gives the single-device loss and gradients too.

    Args:
        per_sample_loss: A float tensor `[local_batch]` (sample weights already applied).

    Returns:
        A scalar float tensor; summed over the replicas it is the mean over the global batch.
    """
    context = _replica_context()
    if context is None:
        return tf.nn.compute_average_loss(per_sample_loss)
    global_size = context.all_reduce("sum", tf.shape(per_sample_loss)[0])
    return tf.nn.compute_average_loss(per_sample_loss, global_batch_size=global_size)
