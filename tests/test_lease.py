"""The run lease (cluster/stores/lease.py) against a real redis-server: one driver per run; a second
is refused with the holder's host and pid; a dead holder's lease is taken over once it expires; a
driver that lost its lease stops before writing anything more."""

from __future__ import annotations

import os
import socket
import time

import msgpack
import pytest

from cluster.events import Observer, Observers, Progress, RunStopped
from cluster.run.driver import drive
from cluster.run.trainer import run_training
from cluster.stores.connection import connect
from cluster.stores.lease import LEASE_SCHEMA, LeaseHeld, LeaseLost, RunLease, holder_of, lease_key
from fault_support import EventWatch, small_config
from test_driver import _parts


def _lease(redis_server, run_id: str = "run-1", ttl_s: float = 3.0) -> RunLease:
    return RunLease(connect(redis_server.url), "test", run_id, ttl_s)


def test_a_second_driver_is_refused_with_the_holders_host_and_pid(redis_server, redis_client):
    first = _lease(redis_server)
    first.claim()
    try:
        t0 = time.monotonic()
        with pytest.raises(LeaseHeld) as refused:
            _lease(redis_server).claim()
        # the holder renews every ttl/3: a live holder is told apart from a dead one within about that
        assert time.monotonic() - t0 < 3.0
        assert f"host {socket.gethostname()} pid {os.getpid()}" in str(refused.value) and "expires in" in str(refused.value)
        assert holder_of(redis_client, "test", "run-1")["pid"] == os.getpid()
        first.renew()  # still ours
    finally:
        first.release()
    assert redis_client.get(lease_key("test", "run-1")) is None  # released: the run is free at once
    again = _lease(redis_server)
    again.claim()
    again.release()


def test_a_dead_drivers_lease_is_taken_over_once_it_expires(redis_server, redis_client):
    dead = msgpack.packb({"schema": LEASE_SCHEMA, "token": "0" * 32, "host": "gone", "pid": 1, "started_at": 0.0})
    redis_client.set(lease_key("test", "run-1"), dead, px=1500)  # nobody renews it
    t0 = time.monotonic()
    lease = _lease(redis_server)
    lease.claim()
    try:
        assert 0.5 < time.monotonic() - t0 < 4.0
        assert holder_of(redis_client, "test", "run-1")["pid"] == os.getpid()
    finally:
        lease.release()


def test_a_driver_whose_lease_was_taken_finds_out_and_never_releases_the_other_ones(redis_server, redis_client):
    lease = _lease(redis_server)
    lease.claim()
    other = msgpack.packb({"schema": LEASE_SCHEMA, "token": "f" * 32, "host": "elsewhere", "pid": 4242, "started_at": 0.0})
    redis_client.set(lease_key("test", "run-1"), other, px=60_000)
    with pytest.raises(LeaseLost, match="host elsewhere pid 4242"):
        lease.renew()
    with pytest.raises(LeaseLost):
        lease.check()
    lease.release()
    assert redis_client.get(lease_key("test", "run-1")) == other  # the other driver's lease is untouched


class _Steal(Observer):
    """At `at`, another driver takes the run's lease (as one that started after this one stalled)."""

    def __init__(self, client, key: str, at: int) -> None:
        self.client, self.key, self.at = client, key, at

    def progress(self, e: Progress) -> None:
        if e.version == self.at:
            self.client.set(self.key, msgpack.packb({"schema": LEASE_SCHEMA, "token": "e" * 32, "host": "other", "pid": 7}), px=60_000)


def test_a_driver_that_lost_its_lease_stops_before_writing_anything_more(redis_server, redis_client, tmp_path):
    lease = RunLease(connect(redis_server.url), "selfplay", "driver", ttl_s=30.0)
    lease.claim()
    steal = _Steal(redis_client, lease.key, at=4)
    watch = EventWatch()
    parts = _parts(redis_server, tmp_path, Observers([steal, watch]), "run.max_versions=50", lease=lease)
    with pytest.raises(LeaseLost, match="lost the lease"):
        drive(parts)
    league = parts.store.league_meta()
    # the league was last saved at version 4's tick (before the steal): nothing after it
    assert league["learner_version"] == 4
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("ckpt-v*.pt")) == ["ckpt-v00000003.pt"]  # no final checkpoint
    stopped = watch.of(RunStopped)
    assert len(stopped) == 1 and "LeaseLost" in stopped[0].error
    lease.release()


@pytest.mark.parametrize("resume", [False, True, "auto"])
def test_run_training_is_refused_while_another_driver_holds_the_run(redis_server, redis_client, tmp_path, resume):
    """Fresh start, --resume and --resume auto (with another checkpoint.uri: the lease is the run
    name's, not the checkpoints'): refused before Ray starts or anything is written."""
    cfg = small_config(f"redis.url={redis_server.url}", "run.run_id=live", f"checkpoint.uri={tmp_path / 'elsewhere'}")
    holder = RunLease(connect(redis_server.url), cfg.redis.key_prefix, "live", ttl_s=3.0)
    holder.claim()
    try:
        with pytest.raises(LeaseHeld, match=f"pid {os.getpid()}"):
            run_training(cfg, tmp_path / "run", log=lambda line: None, resume=resume)
    finally:
        holder.release()
    assert redis_client.keys(f"{cfg.redis.key_prefix}:live:*") == []  # nothing written for the run
