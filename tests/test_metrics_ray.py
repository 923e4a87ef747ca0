"""A run of several learners on Ray's Prometheus endpoint: each learner's gauges carry a `learner`
tag beside the run id; the run's own stay untagged (real local Ray, its metrics agent scraped over HTTP)."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cluster.ui.metrics import MetricsSink, run_scalars
from test_metrics import _role_league
from test_ray_eval_metrics import metrics_port, wait_for  # noqa: F401 (a fixture)

pytestmark = pytest.mark.ray


def _labelled(port: int, name: str) -> dict[tuple, float]:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}  # the metrics agent is still starting
    return {(s.labels.get("run_id"), s.labels.get("learner"), s.labels.get("player")): s.value
            for family in text_string_to_metric_families(body) for s in family.samples if s.name == name}


def test_each_learners_gauges_are_tagged_with_its_name(metrics_port):  # noqa: F811 (the fixture)
    sink = MetricsSink(None, "roles-run", league_every_s=0.0)
    leagues = {"adversary": _role_league("adversary", "agent"), "agent": _role_league("agent", "adversary")}
    sink.record(run_scalars({"queue": 3}, {"env_steps_per_s": 900.0}, None), 100)
    for name, version in (("adversary", 96), ("agent", 32)):
        sink.record(run_scalars({"learner_version": version, "losses/policy": 0.5}, {}, leagues[name]), 100, learner=name)

    versions = wait_for(lambda: len(s := _labelled(metrics_port, "ray_selfplay_system_learner_version")) == 2 and s, 60, "both versions")
    assert versions == {("roles-run", "adversary", None): 96.0, ("roles-run", "agent", None): 32.0}
    elo = wait_for(lambda: len(s := _labelled(metrics_port, "ray_selfplay_league_elo")) >= 4 and s, 60, "both leagues' Elo")
    assert elo[("roles-run", "adversary", "agent/latest")] == pytest.approx(leagues["adversary"].players["agent/latest"].elo)
    assert elo[("roles-run", "agent", "adversary/latest")] == pytest.approx(leagues["agent"].players["adversary/latest"].elo)
    assert _labelled(metrics_port, "ray_selfplay_system_queue") == {("roles-run", None, None): 3.0}
    assert _labelled(metrics_port, "ray_selfplay_charts_env_steps_per_s") == {("roles-run", None, None): 900.0}
