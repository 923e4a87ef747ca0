"""Run lifecycle with a real local Ray and a real password-protected redis-server: the password is
written nowhere (config.yaml, run metadata, checkpoints, any key) and the run resumes with it given
again; a wedged learner is a clear error, not a hang."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from cluster.config import load_config
from cluster.remote.fleet import RolloutFleet
from cluster.remote.learner_handle import LearnerTimeout, RayLearner
from cluster.run.driver import learner_call
from cluster.run.resume import RunError
from cluster.run.trainer import run_training
from cluster.stores.connection import RedisUnavailable
from fault_support import small_config

pytestmark = pytest.mark.ray


def _redis_bytes(client) -> bytes:
    """Every value of every key, read by type (DUMP compresses long strings, which could hide a secret)."""
    out = []
    for key in client.scan_iter("*"):
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key))
        elif kind == b"hash":
            out += [k + v for k, v in client.hgetall(key).items()]
        elif kind == b"list":
            out += client.lrange(key, 0, -1)
        elif kind == b"zset":
            out += client.zrange(key, 0, -1)
        elif kind == b"set":
            out += list(client.smembers(key))
        out.append(key)
    return b"\n".join(out)


def _files_bytes(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def test_the_redis_password_is_written_nowhere_and_the_run_resumes_with_it_given_again(
    local_ray, redis_server, redis_client, tmp_path, monkeypatch
):
    secret = redis_server.password.encode()
    run_dir = tmp_path / "run"
    cfg = small_config(f"redis.url={redis_server.url}", "run.max_versions=4", "run.run_id=secret")
    run_training(cfg, run_dir, log=lambda line: None)
    files = _files_bytes(run_dir)
    assert "config.yaml" in files and any(name.startswith("checkpoints/ckpt-v") for name in files)
    assert [name for name, data in files.items() if secret in data] == []
    assert secret not in _redis_bytes(redis_client)  # the run metadata's config included
    assert b"redis://:***@127.0.0.1" in files["config.yaml"]

    # config.yaml given again: its URL has no password; without one from the environment that is said at once
    again = load_config(run_dir / "config.yaml", ["run.max_versions=6"])
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(RedisUnavailable, match="password .* was removed .*--redis-url .*REDIS_PASSWORD"):
        run_training(again, run_dir, log=lambda line: None, resume=True)
    monkeypatch.setenv("REDIS_PASSWORD", redis_server.password)
    lines: list[str] = []
    result = run_training(again, run_dir, log=lines.append, resume=True)
    assert result.learner_version >= 6
    changed = [line for line in lines if line.startswith("config changed since the checkpoint")]
    assert changed and "run.max_versions" in changed[0] and "redis" not in changed[0]  # the password is no change
    assert not any(secret.decode() in line for line in lines)
    assert [name for name, data in _files_bytes(run_dir).items() if secret in data] == []
    assert secret not in _redis_bytes(redis_client)


def test_a_wedged_learner_is_a_clear_error_not_a_hang(local_ray, tmp_path):
    class _Wedged:  # defined here: Ray ships it by value (workers cannot import this test module)
        """A learner whose every answer hangs (a stuck device, a deadlock)."""

        def progress(self):
            time.sleep(3600)

        def failures(self):
            time.sleep(3600)

    actor = ray.remote(_Wedged).options(max_concurrency=4).remote()
    learner = RayLearner(actor, "selfplay-learner-wedged", timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(RunError, match=r"did not answer progress\(\) within 1 s \(learner.call_timeout_s\).*--resume") as stop:
        learner_call(learner.progress, tmp_path, 8)
    assert isinstance(stop.value.__cause__, LearnerTimeout) and time.monotonic() - t0 < 30
    # the fleet asks the learner why an actor died: a wedged one answers nothing, and the fleet goes on
    fleet = RolloutFleet.__new__(RolloutFleet)
    fleet.cfg, fleet.learner = small_config("learner.call_timeout_s=1"), actor
    t0 = time.monotonic()
    assert fleet._learner_failures() == {} and time.monotonic() - t0 < 30
    ray.kill(actor)


def _dead_slot(fleet: RolloutFleet, started_at: float) -> None:
    """Slot 0 holds an actor that died for good (its Ray restarts used up), created at `started_at`."""

    class _Runs:  # defined here: Ray ships it by value
        def run(self):
            time.sleep(3600)

    actor = ray.remote(_Runs).remote()
    fleet.actors, fleet.runs, fleet.started_at, fleet._pending = [actor], [actor.run.remote()], [started_at], [None]
    ray.kill(actor, no_restart=True)


def test_an_actor_that_used_its_restarts_up_slowly_is_replaced_and_one_that_did_fast_stops_the_run(local_ray):
    from cluster.remote.fleet import FleetError

    fleet = RolloutFleet.__new__(RolloutFleet)
    fleet.cfg, fleet.learner = small_config("rollout.max_restarts=2", "rollout.restart_window_s=60", "learner.call_timeout_s=5"), None
    fleet._learner_failures = lambda: {}
    spawned: list[int] = []
    fleet._spawn = spawned.append
    _dead_slot(fleet, started_at=time.monotonic() - 61)  # its 2 restarts took longer than the window
    deadline = time.monotonic() + 30
    while not spawned and time.monotonic() < deadline:
        fleet.check()
        time.sleep(0.2)
    assert spawned == [0]  # a fresh actor in its place, the run goes on
    _dead_slot(fleet, started_at=time.monotonic())  # its restarts used up within the window
    with pytest.raises(FleetError, match=r"restarted 2 times within 60 s \(rollout.max_restarts per rollout.restart_window_s\)"):
        while time.monotonic() < deadline + 30:
            fleet.check()
            time.sleep(0.2)
