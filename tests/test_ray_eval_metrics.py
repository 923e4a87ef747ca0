"""Evaluator actors and Ray gauges on a real local Ray, with the session's real redis-server.

Gauges are read back the way Prometheus reads them: from the metrics agent's HTTP endpoint.
Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from typing import Callable

import pytest
import ray
import torch
from prometheus_client.parser import text_string_to_metric_families

from actors.evaluator import initial_league
from actors.games import load_game
from actors.scripted import references_for
from cluster.config import load_config
from cluster.remote.evaluator_service import EvaluatorPool
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from cluster.stores.replay_store import ReplayStore
from cluster.ui.metrics import MetricsSink, run_scalars
from league.records import LEARNER_ID, RANDOM_ID
from learner.model import PolicyNet, state_dict_numpy

pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def metrics_port():
    if ray.is_initialized():
        pytest.fail("a previous test left Ray initialised")
    port = _free_port()
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, _metrics_export_port=port,
        _system_config={"metrics_report_interval_ms": 500},  # export within a second, not Ray's default 10 s
    )
    yield port
    ray.shutdown()


def wait_for(condition: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)  # polling interval of a condition with a deadline, not synchronisation by sleep


def _samples(port: int, name: str) -> dict[tuple, float]:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}  # the metrics agent is still starting
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == name:
                out[(s.labels.get("run_id"), s.labels.get("player"))] = s.value
    return out


def test_gauges_reach_rays_prometheus_endpoint(metrics_port):
    state = initial_league(load_config(None), references_for("tictactoe_v3"))
    state.players[LEARNER_ID].elo = 321.5
    sink = MetricsSink(None, "gauge-run", league_every_s=0.0)
    sink.record(run_scalars({"learner_version": 12}, {"env_steps_per_s": 950.0}, state), 100)

    elo = wait_for(lambda: (s := _samples(metrics_port, "ray_selfplay_league_elo")).get(("gauge-run", LEARNER_ID)) == 321.5 and s,
                   60, "the Elo gauge")
    assert elo[("gauge-run", RANDOM_ID)] == 0.0 and elo[("gauge-run", "minimax")] == 0.0
    assert _samples(metrics_port, "ray_selfplay_system_learner_version") == {("gauge-run", None): 12.0}
    assert _samples(metrics_port, "ray_selfplay_charts_env_steps_per_s") == {("gauge-run", None): 950.0}

    state.players[LEARNER_ID].elo = 400.0  # a later tick overwrites the gauge
    sink.record(run_scalars({"learner_version": 13}, {}, state), 200)
    wait_for(lambda: _samples(metrics_port, "ray_selfplay_league_elo").get(("gauge-run", LEARNER_ID)) == 400.0, 60, "the new Elo")
    wait_for(lambda: _samples(metrics_port, "ray_selfplay_system_learner_version") == {("gauge-run", None): 13.0}, 60, "the new version")


def _run_setup(redis_server, redis_client, overrides: list[str], weights_hidden=(16,)):
    cfg = load_config(None, ["redis.key_prefix=test", "model.hidden_sizes=[16]", *overrides])
    keys_run = "eval-run"
    from cluster.stores.keys import RunKeys

    keys = RunKeys("test", keys_run)
    _, spec = load_game(cfg.game.name)
    torch.manual_seed(0)
    ParamStore(redis_client, keys).publish(0, state_dict_numpy(PolicyNet(spec.obs_dim, spec.num_actions, weights_hidden)))
    store = LeagueStore(redis_client, keys)
    store.save(initial_league(cfg, references_for(cfg.game.name)))
    return cfg, keys_run, store


def test_evaluator_actors_report_rating_games_until_stopped(metrics_port, redis_server, redis_client):
    cfg, run_id, store = _run_setup(redis_server, redis_client, ["eval.num_evaluators=2", "eval.games_per_pair=4", "eval.interval_s=0.2", "eval.num_cpus=0.5"])
    pool = EvaluatorPool(cfg, redis_server.url, run_id, log=lambda s: None)
    seen: dict = {}
    try:
        def enough():
            seen.update((g.game_id, g) for g in store.pop_games())
            store.save(store.load())  # acknowledges the popped games, as the league manager's step does
            return len({gid.split("-")[0] for gid in seen}) == 2 and len(seen) >= 4 * 2 * 4  # both evaluators, 2+ rounds' worth
        wait_for(enough, 120, "rating games from both evaluators")
        wait_for(lambda: pool.games() >= 16, 60, "the pool's game count to catch up")
        assert {g.kind for g in seen.values()} == {"eval"}
        assert {tuple(sorted(g.players)) for g in seen.values()} == {(LEARNER_ID, RANDOM_ID), (LEARNER_ID, "minimax")}
    finally:
        pool.stop()
    assert ray.wait(pool.runs, num_returns=2, timeout=0)[0] and all(r["rounds"] >= 1 for r in ray.get(pool.runs))
    assert pool.replacements == [0, 0]
    # Both evaluators kept their last games for replays, bounded per pair: latest against each reference.
    replays = ReplayStore(redis_client, RunKeys("test", run_id))
    assert replays.pairs() == [(LEARNER_ID, "minimax", 5), (LEARNER_ID, RANDOM_ID, 5)]  # eval.replays_per_pair
    assert {r.game_id for r in replays.games(LEARNER_ID, "minimax")} <= set(seen) | {g.game_id for g in store.pop_games()}


def test_a_failing_evaluator_is_replaced_then_given_up_on(metrics_port, redis_server, redis_client):
    # Weights published with other layer sizes than the config's: every round fails to load them.
    cfg, run_id, _ = _run_setup(redis_server, redis_client, ["eval.num_evaluators=1", "eval.num_cpus=0.5"], weights_hidden=(8,))
    lines: list[str] = []
    pool = EvaluatorPool(cfg, redis_server.url, run_id, log=lines.append)
    pool.MAX_REPLACEMENTS = 1
    try:
        wait_for(lambda: (pool.check(), pool.runs[0] is None)[1], 120, "the pool to give up on the evaluator")
    finally:
        pool.stop()
    assert pool.replacements == [1]
    assert len(lines) == 2 and "starting a replacement (1/1)" in lines[0] and "giving up" in lines[1], lines
    assert "size mismatch" in lines[0] or "shape" in lines[0], lines
