"""A Redis that evicts or runs out of memory (real redis-servers started here with maxmemory and
an evicting policy, or noeviction): a run refuses an evicting one before anything starts; evicted
weights are published again; a snapshot that is gone is counted and logged; a full Redis stops the
run with a checkpoint and a message."""

from __future__ import annotations

import logging

import pytest

from cluster.events import CheckpointWritten, Observers, Progress, RunStopped
from cluster.remote.learner_service import LearnerService
from cluster.run.driver import drive
from cluster.run.resume import RunError
from cluster.run.trainer import run_training
from cluster.stores.connection import RedisUnavailable, connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.redis_memory import is_out_of_memory, refuse_evicting_redis
from fault_support import EventWatch, small_config
from league.league import LeagueState
from league.records import LEARNER_ID
from test_driver import _parts
from test_evaluator import setup  # noqa: F401 - the fixture
from test_rollout import _worker, tictactoe  # noqa: F401 - the fixture


@pytest.fixture
def own_redis(tmp_path):
    """A fresh redis-server of this test's own, whose memory settings it may change."""
    server = EmbeddedRedis(tmp_path / "own-redis").start()
    yield server
    server.stop()


def test_a_run_on_a_redis_that_evicts_keys_is_refused_before_anything_starts(own_redis, tmp_path):
    client = connect(own_redis.url)
    client.config_set("maxmemory", "64mb")
    client.config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(RedisUnavailable, match=r"maxmemory-policy allkeys-lru.*CONFIG SET maxmemory-policy noeviction"):
        run_training(small_config(f"redis.url={own_redis.url}", "run.run_id=evicting"), tmp_path / "run", log=lambda line: None)
    assert client.keys("selfplay:evicting:*") == []  # nothing written
    client.config_set("maxmemory-policy", "noeviction")
    refuse_evicting_redis(own_redis.url)  # the safe policy passes


def test_weights_that_redis_evicted_are_published_again(own_redis):
    client = connect(own_redis.url)
    cfg = small_config()
    service = LearnerService(cfg.to_dict(), own_redis.url, "evict", own_process=False)
    service.publish()
    key = RunKeys(cfg.redis.key_prefix, "evict").weights(0)
    assert client.exists(key)
    # A real eviction: allkeys-lfu under a limit, filled with new keys until the weights go, while
    # the version key stays in use (actors poll it all the time, and fetch the weights rarely).
    client.config_set("maxmemory-policy", "allkeys-lfu")
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) + 2_000_000))
    filler = b"x" * 10_000
    for i in range(5000):
        client.set(f"filler:{i}", filler)
        for _ in range(5):
            service.params.latest_version()
        if not client.exists(key):
            break
    assert not client.exists(key) and service.params.latest_version() == 0  # the version key may survive, the weights did not
    client.config_set("maxmemory", "0")
    service._republish_if_lost("")
    assert client.exists(key) and service.republished == 1
    assert service.params.fetch(0) is not None


def test_a_snapshot_that_redis_lost_is_counted_and_logged(tictactoe, caplog):  # noqa: F811 - the fixture
    state = LeagueState.new(reference_ids=())
    state.add_snapshot(3)  # in the league, but its weights are gone from the store
    worker, _, _, results = _worker(tictactoe, state, sampler="uniform", envs=2)
    with caplog.at_level(logging.WARNING, logger="actors.rollout"):
        worker.run(lambda: False, max_ticks=30)
    assert worker.stats.opponent_fallbacks >= 2 and all(g.players == (LEARNER_ID, LEARNER_ID) for g in results.games)
    said = [r.getMessage() for r in caplog.records if "missing from Redis" in r.getMessage()]
    assert said and "snapshot v000003 is missing from Redis (lost or evicted)" in said[0]
    assert len(said) < worker.stats.opponent_fallbacks  # once per snapshot (then every 100th), not per draw


class _FillsRedis(EventWatch):
    """At version `at`, Redis' maxmemory is set to what it uses now: every write that grows it fails."""

    def __init__(self, client, at: int) -> None:
        super().__init__()
        self.client, self.at = client, at

    def progress(self, e: Progress) -> None:
        super().progress(e)
        if e.version == self.at:
            self.client.config_set("maxmemory", str(int(self.client.info("memory")["used_memory"])))


def test_a_full_redis_stops_the_run_with_a_checkpoint_and_a_clear_message(own_redis, tmp_path):
    client = connect(own_redis.url)
    client.config_set("maxmemory-policy", "noeviction")
    watch = _FillsRedis(client, at=4)
    parts = _parts(own_redis, tmp_path, Observers([watch]), "run.max_versions=50")
    with pytest.raises(RunError, match=r"Redis is out of memory .*stopped with checkpoint v\d+ in .*checkpoints.*--resume") as stop:
        drive(parts)
    assert is_out_of_memory(stop.value.__cause__)
    final = [c for c in watch.of(CheckpointWritten) if c.final]
    assert len(final) == 1 and final[0].version >= 4 and (tmp_path / "checkpoints" / f"ckpt-v{final[0].version:08d}.pt").exists()
    assert parts.learner.stopped and parts.rollouts.stopped
    assert "Redis out of memory" in watch.of(RunStopped)[0].error


def test_an_evaluator_logs_a_snapshot_that_redis_lost(setup, caplog):  # noqa: F811 - the fixture
    cfg, params, store, evaluator, weights = setup
    state = store.load()
    state.add_snapshot(4)  # in the league, its weights gone
    state.players["v000004"].elo_stderr = None  # the "uncertain" pick takes it first
    store.save(state)
    ev = evaluator()
    with caplog.at_level(logging.WARNING, logger="actors.evaluator"):
        ev.round()
    assert ev.stats.missing_snapshots == 1
    assert any("snapshot v000004 is missing from Redis (lost or evicted)" in r.getMessage() for r in caplog.records)
