"""Scalars for TensorBoard and Ray gauges (cluster/ui/metrics.py): the naming, and real event files.

The Ray half (gauges read back from Ray's Prometheus endpoint) is in tests/test_ray_eval_metrics.py.
"""

from __future__ import annotations

import math

import pytest
import ray
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cluster.ui.metrics import GaugePoint, MetricsSink, gauge_points, run_scalars
from league.config import LeagueConfig
from league.league import LeagueState
from league.records import LEARNER_ID, RANDOM_ID, GameResult


def _league() -> LeagueState:
    state = LeagueState.new((RANDOM_ID,))
    state.add_snapshot(0)
    for i in range(8):
        g = GameResult(f"g{i}", (LEARNER_ID, RANDOM_ID), (3, -1), (1.0, 0.0) if i % 4 else (0.5, 0.5), 9, "eval", 1.0, 0.0)
        state.record(g, LeagueConfig())
    state.refit()
    return state


LEARNER_TICK = {
    "losses/policy": -0.02, "losses/value": 0.3, "losses/entropy": float("nan"),
    "system/staleness_mean": 0.5, "system/sample_reuse": 4.0,
    "learner_version": 7, "sample_reuse": 3.5, "queue": 2, "samples_in": 1000, "corrupt_payloads": 0,
}


def test_run_scalars_names_everything_under_the_four_prefixes():
    state = _league()
    out = run_scalars(LEARNER_TICK, {"env_steps": 5000, "env_steps_per_s": 812.5, "games": 400, "eval_games": 80}, state)
    assert {k.split("/")[0] for k in out} == {"losses", "system", "charts", "league"}
    assert out["losses/policy"] == -0.02 and "losses/entropy" not in out  # non-finite values are left out
    assert out["system/learner_version"] == 7.0 and out["system/queue"] == 2.0
    assert out["system/sample_reuse"] == 4.0  # the learner's own system/ value wins over the plain counter
    assert out["charts/env_steps_per_s"] == 812.5 and out["charts/eval_games"] == 80.0
    assert out["league/elo/random"] == 0.0 and out["league/elo/latest"] == state.players[LEARNER_ID].elo > 100
    assert out["league/elo_stderr/latest"] == state.players[LEARNER_ID].elo_stderr
    assert "league/elo_stderr/v000000" not in out  # never fitted, so no error bar to report
    assert out["league/snapshots"] == 1.0 and out["league/games_total"] == 8.0
    assert out["league/latest_score_vs_random"] == pytest.approx(7 / 8)


def test_a_tick_without_an_update_has_no_losses_and_no_league():
    out = run_scalars({"learner_version": 3}, {"env_steps": 10}, None)
    assert out == {"system/learner_version": 3.0, "charts/env_steps": 10.0}


def test_gauge_points_tag_run_and_player():
    points = gauge_points({"league/elo/v000010": 250.0, "league/elo_stderr/latest": 31.0, "charts/env_steps_per_s": 900.0}, "run-7")
    assert points == [
        GaugePoint("selfplay_league_elo", {"run_id": "run-7", "player": "v000010"}, 250.0),
        GaugePoint("selfplay_league_elo_stderr", {"run_id": "run-7", "player": "latest"}, 31.0),
        GaugePoint("selfplay_charts_env_steps_per_s", {"run_id": "run-7"}, 900.0),
    ]


def test_tensorboard_event_files_hold_the_scalars(tmp_path):
    assert not ray.is_initialized()
    sink = MetricsSink(tmp_path / "tb", "run-1")
    state = _league()
    for step, loss in ((100, 0.5), (200, 0.25)):
        sink.record(run_scalars({**LEARNER_TICK, "losses/value": loss}, {"env_steps": step}, state), step)
    sink.close()
    assert sink._gauges == {}  # no Ray, no gauges

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"losses/value", "system/learner_version", "charts/env_steps", "league/elo/latest", "league/elo/random"} <= tags
    assert [(e.step, e.value) for e in acc.Scalars("losses/value")] == [(100, 0.5), (200, 0.25)]
    assert math.isclose(acc.Scalars("league/elo/latest")[-1].value, state.players[LEARNER_ID].elo, rel_tol=1e-6)


def test_league_scalars_are_written_at_most_every_league_every_s(tmp_path):
    now = [0.0]
    sink = MetricsSink(tmp_path / "tb", "run-1", league_every_s=5.0, clock=lambda: now[0])
    state = _league()
    for step, t in enumerate((0.0, 1.0, 4.9, 5.0, 6.0, 10.5)):
        now[0] = t
        sink.record(run_scalars({"learner_version": step}, {"env_steps": step}, state), step)
    sink.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("system/learner_version")] == [0, 1, 2, 3, 4, 5]
    assert [e.step for e in acc.Scalars("league/elo/latest")] == [0, 3, 5]


# ---- a run of several learners (a game with roles): each learner's scalars under its name ------------


def _role_league(role: str, other: str) -> LeagueState:
    """Role `role`'s league as actors/roles.py role_roster builds it: the other role's latest is its learner."""
    from league.league import Roster

    roster = Roster(learner_id=f"{other}/latest", snapshot_prefix=f"{role}/", random_id=f"{role}/random",
                    pool_latest_id=f"{role}/latest", own_snapshots=False)
    state = LeagueState.new((f"{role}/random",), roster=roster)
    state.add_snapshot(0)
    for i in range(8):
        s = 1.0 if i % 4 else 0.0
        state.record(GameResult(f"{role}{i}", (f"{other}/latest", f"{role}/random"), (3, -1), (s, 1.0 - s), 9, "eval", 1.0, 0.0), LeagueConfig())
    state.refit()
    return state


def _update(role: str, version: int, policy_loss: float):
    from learner.report import IterationReport

    m = {"system/learner_version": version, "system/staleness_min": 0, "system/staleness_mean": 0.5, "system/staleness_max": 1,
         "losses/policy": policy_loss}
    return IterationReport.from_metrics(m, role=role)


def _progress(env_steps: int, status, update, league: LeagueState):
    from cluster.events import Progress

    return Progress(1.0, env_steps, 500.0, 40, 8, status, update, update, league)


def _tags(tb) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(tb))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_gauge_points_tag_the_learner():
    points = gauge_points({"league/elo/agent/latest": 120.0, "losses/policy": 0.1}, "run-7", learner="adversary")
    assert points == [
        GaugePoint("selfplay_league_elo", {"run_id": "run-7", "learner": "adversary", "player": "agent/latest"}, 120.0),
        GaugePoint("selfplay_losses_policy", {"run_id": "run-7", "learner": "adversary"}, 0.1),
    ]
    assert gauge_points({"losses/policy": 0.1}, "run-7", learner="") == [GaugePoint("selfplay_losses_policy", {"run_id": "run-7"}, 0.1)]


def test_a_run_of_several_learners_writes_each_learners_scalars_under_its_name(tmp_path):
    from cluster.ui.metrics import MetricsObserver
    from learner.report import LearnerStatus

    leagues = {"adversary": _role_league("adversary", "agent"), "agent": _role_league("agent", "adversary")}
    observer = MetricsObserver(MetricsSink(tmp_path / "tb", "tag-run", league_every_s=0.0), leagues=lambda: leagues)
    status = LearnerStatus(96, 5000, 4000, 3, queue=2, role_versions=(("adversary", 96), ("agent", 32)))
    observer.update(_update("adversary", 95, 0.5))
    observer.update(_update("agent", 32, -0.25))
    observer.update(_update("adversary", 96, 0.75))  # the newest of a learner's updates since the last tick
    observer.progress(_progress(1000, status, _update("adversary", 96, 0.75), leagues["adversary"]))
    observer.update(_update("agent", 33, -0.125))
    observer.progress(_progress(2000, status, None, leagues["adversary"]))
    observer.close()

    tags = _tags(tmp_path / "tb")
    assert tags["adversary/losses/policy"] == [(1000, 0.75)]  # no update of its own since: nothing at 2000
    assert tags["agent/losses/policy"] == [(1000, -0.25), (2000, -0.125)]
    assert tags["adversary/system/learner_version"] == [(1000, 96.0), (2000, 96.0)]
    assert tags["agent/system/learner_version"] == [(1000, 32.0), (2000, 33.0)]  # its update's, where it has one
    # Each learner's league under its name: adversary's league rates agent's latest against adversary's players.
    assert tags["adversary/league/elo/agent/latest"][-1][1] == pytest.approx(leagues["adversary"].players["agent/latest"].elo)
    assert tags["agent/league/elo/adversary/latest"][-1][1] == pytest.approx(leagues["agent"].players["adversary/latest"].elo)
    assert tags["agent/league/latest_score_vs_random"][-1][1] == pytest.approx(6 / 8)
    # The run's own numbers stay untagged; nothing of a learner is left without its name.
    assert tags["charts/env_steps"] == [(1000, 1000.0), (2000, 2000.0)] and tags["system/queue"][0] == (1000, 2.0)
    assert not {"losses/policy", "system/learner_version", "system/dropped_stale", "league/elo/latest"} & set(tags)


def test_a_run_of_one_learner_keeps_todays_names(tmp_path):
    from cluster.ui.metrics import MetricsObserver
    from learner.report import LearnerStatus

    state = _league()
    observer = MetricsObserver(MetricsSink(tmp_path / "tb", "run-1", league_every_s=0.0))
    update = _update("", 7, 0.5)
    observer.update(update)
    observer.progress(_progress(1000, LearnerStatus(7, 100, 90, 0), update, state))
    observer.close()
    tags = _tags(tmp_path / "tb")
    assert tags["losses/policy"] == [(1000, 0.5)] and tags["system/learner_version"] == [(1000, 7.0)]
    assert "league/elo/latest" in tags and "charts/env_steps" in tags
    assert not any(t.startswith(("adversary/", "agent/", "/")) for t in tags)
