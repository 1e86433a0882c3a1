"""How ``ShardedByS3Key`` splits input objects between instances.

SageMaker documents only that each instance gets about 1/N of the objects; our
local runner guarantees what the pipeline may rely on: shards are disjoint,
together cover every object, and differ in size by at most one. Instances beyond
the object count get an empty shard.
"""

from __future__ import annotations

from collections.abc import Sequence


def shard_objects(keys: Sequence[str], instance_count: int) -> list[list[str]]:
    """Split ``keys`` (sorted first) into ``instance_count`` contiguous, balanced shards."""
    if instance_count < 1:
        raise ValueError(f"instance_count must be at least 1, got {instance_count}")
    ordered = sorted(keys)
    base, extra = divmod(len(ordered), instance_count)
    shards = []
    start = 0
    for index in range(instance_count):
        size = base + (1 if index < extra else 0)
        shards.append(ordered[start : start + size])
        start += size
    return shards
