"""ShardedByS3Key: shards are disjoint, cover every object and are balanced to +-1."""

from __future__ import annotations

import pytest

from resources.sharding import shard_objects


@pytest.mark.parametrize("objects", [0, 1, 2, 3, 7, 10, 24, 99, 100, 101, 1000])
@pytest.mark.parametrize("instances", [1, 2, 3, 4, 5, 8, 16, 100])
def test_shards_are_disjoint_covering_and_balanced(objects, instances):
    keys = [f"data/x/dt=2026-11-01/part-{i:05d}.parquet" for i in range(objects)]
    shards = shard_objects(list(reversed(keys)), instances)
    assert len(shards) == instances
    flat = [k for shard in shards for k in shard]
    assert len(flat) == len(set(flat)), "a key is in two shards"
    assert set(flat) == set(keys), "a key is in no shard"
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    if instances > objects:
        assert sizes.count(0) == instances - objects


def test_sharding_is_deterministic_regardless_of_listing_order():
    keys = [f"k{i}" for i in range(17)]
    assert shard_objects(keys, 4) == shard_objects(list(reversed(keys)), 4)


def test_zero_instances_is_an_error():
    with pytest.raises(ValueError, match="instance_count"):
        shard_objects(["a"], 0)
