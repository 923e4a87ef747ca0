"""Parameter store (cluster/stores/param_store.py) against a real redis-server."""

from __future__ import annotations

import numpy as np
import pytest

from cluster.stores.param_store import ParamStore, SnapshotConflictError, StaleVersionError


def _weights(seed: float) -> dict[str, np.ndarray]:
    return {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3) * seed,
        "b": np.array([seed, -seed], np.float32),
        "steps": np.array([int(seed)], np.int64),
    }


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        np.testing.assert_array_equal(a[k], b[k])


@pytest.fixture
def store(redis_client, run_keys) -> ParamStore:
    return ParamStore(redis_client, run_keys, keep_versions=3)


def test_empty_store(store):
    assert store.latest_version() == -1
    assert store.fetch() is None
    assert store.poll(-1) is None


def test_publish_poll_fetch_round_trip(store):
    store.publish(0, _weights(1.0))
    assert store.latest_version() == 0
    version, tensors = store.poll(-1)
    assert version == 0
    _assert_same(tensors, _weights(1.0))
    assert store.poll(0) is None  # nothing newer than what the caller has
    store.publish(1, _weights(2.0))
    version, tensors = store.poll(0)
    assert version == 1
    _assert_same(tensors, _weights(2.0))
    _assert_same(store.fetch(0)[1], _weights(1.0))  # the previous version is still fetchable
    assert store.poll(1) is None and store.poll(5) is None


@pytest.mark.parametrize("bad_version", [3, 2])
def test_publishing_the_same_or_an_older_version_is_refused_and_changes_nothing(store, redis_client, bad_version):
    store.publish(1, _weights(1.0))
    store.publish(3, _weights(3.0))
    before = {k: redis_client.dump(k) for k in redis_client.keys("*")}
    with pytest.raises(StaleVersionError, match=f"version {bad_version}.*another learner"):
        store.publish(bad_version, _weights(9.0))
    assert {k: redis_client.dump(k) for k in redis_client.keys("*")} == before
    assert store.latest_version() == 3
    _assert_same(store.fetch()[1], _weights(3.0))


def test_versions_may_skip_but_only_increase(store):
    store.publish(0, _weights(1.0))
    store.publish(10, _weights(2.0))
    assert store.latest_version() == 10
    assert store.poll(3)[0] == 10


def test_old_versions_are_trimmed_to_keep_versions(store, redis_client, run_keys):
    for v in range(6):
        store.publish(v, _weights(float(v)))
    assert [store.fetch(v) is not None for v in range(6)] == [False, False, False, True, True, True]
    assert sorted(int(x) for x in redis_client.zrange(run_keys.param_versions, 0, -1)) == [3, 4, 5]
    weight_keys = redis_client.keys(run_keys.weights_prefix + "*")
    assert sorted(k.decode() for k in weight_keys) == sorted(run_keys.weights(v) for v in (3, 4, 5))
    _assert_same(store.fetch(5)[1], _weights(5.0))


def test_snapshot_write_then_fetch_is_identical(store):
    store.write_snapshot("v000004", 4, _weights(4.0))
    version, tensors = store.fetch_snapshot("v000004")
    assert version == 4
    _assert_same(tensors, _weights(4.0))
    store.write_snapshot("v000004", 4, _weights(4.0))  # the same bytes again: a harmless no-op


def test_snapshot_conflict_leaves_the_original_intact(store):
    store.write_snapshot("v000004", 4, _weights(4.0))
    with pytest.raises(SnapshotConflictError, match="v000004"):
        store.write_snapshot("v000004", 4, _weights(5.0))
    with pytest.raises(SnapshotConflictError):
        store.write_snapshot("v000004", 5, _weights(4.0))
    version, tensors = store.fetch_snapshot("v000004")
    assert version == 4
    _assert_same(tensors, _weights(4.0))


def test_missing_snapshot_raises_key_error(store):
    with pytest.raises(KeyError, match="nope"):
        store.fetch_snapshot("nope")


def test_snapshot_from_published_is_a_copy_not_an_alias(store):
    store.publish(0, _weights(1.0))
    store.publish(1, _weights(2.0))
    store.snapshot_from_published("v000001", 1)
    for v in range(2, 8):  # version 1 is trimmed away and newer weights are published
        store.publish(v, _weights(10.0 + v))
    assert store.fetch(1) is None
    version, tensors = store.fetch_snapshot("v000001")
    assert version == 1
    _assert_same(tensors, _weights(2.0))


def test_snapshot_of_a_trimmed_version_is_refused(store):
    for v in range(5):
        store.publish(v, _weights(float(v)))
    with pytest.raises(KeyError, match="no longer in the parameter store"):
        store.snapshot_from_published("v000000", 0)
    with pytest.raises(KeyError):
        store.fetch_snapshot("v000000")


def test_runs_in_one_redis_do_not_see_each_other(redis_client, run_keys):
    from cluster.stores.keys import RunKeys

    a = ParamStore(redis_client, run_keys)
    b = ParamStore(redis_client, RunKeys(run_keys.prefix, "other-run"))
    a.publish(5, _weights(1.0))
    assert b.latest_version() == -1 and b.poll(-1) is None
    b.publish(0, _weights(2.0))  # not stale: each run has its own version line
    assert a.latest_version() == 5
