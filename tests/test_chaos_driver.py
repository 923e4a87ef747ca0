"""The chaos benchmark's second-driver fault (benchmarks/chaos_parts.py): `selfplay train --resume
auto` of a run that a live driver holds, started as a process of its own against a real
redis-server, is refused naming the holder, writes nothing, and the holder keeps its run; the
report's row and verdict follow."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.chaos_parts import Chaos, table  # noqa: E402
from cluster.stores.connection import connect  # noqa: E402
from cluster.stores.lease import RunLease  # noqa: E402
from fault_support import small_config  # noqa: E402


@pytest.mark.slow
def test_a_second_driver_of_a_live_run_is_refused_and_the_first_keeps_it(redis_server, redis_client, tmp_path):
    cfg = small_config(f"redis.url={redis_server.url}", "run.run_id=chaos")
    first = RunLease(connect(redis_server.url), cfg.redis.key_prefix, "chaos", ttl_s=6.0)  # the live driver of the run
    first.claim()
    try:
        args = argparse.Namespace(minutes=1.0, every=1.0, kinds=("driver",), set=[], config="configs/tictactoe_smoke.yaml",
                                  baseline=False, local_cluster=False)
        lines: list[str] = []
        monkey = Chaos(args, cfg, redis_server, None, lines.append)
        monkey.run_dir = tmp_path / "chaos"
        what = monkey._kill_driver()
        monkey.kills["driver"] += 1  # as Chaos.progress counts it
        monkey.finish()  # waits for the second driver's process
        assert what and monkey.recovered["driver"] == 1, lines
        assert f"pid {os.getpid()}" in lines[-1] and "was refused" in lines[-1]
        first.renew()  # the first driver still holds its run
        assert redis_client.keys(f"{cfg.redis.key_prefix}:chaos:*") == [f"{cfg.redis.key_prefix}:chaos:lease".encode()]
    finally:
        first.release()
    text, ok = table([_run(monkey)], args)
    assert "| **second driver** of the run: started / refused (the run goes on) | 1 / 1 |" in text and ok


def test_the_report_fails_a_run_whose_second_driver_was_not_refused():
    args = argparse.Namespace(minutes=1.0, every=1.0, kinds=("driver",), set=[], config="c.yaml", baseline=False, local_cluster=False)
    monkey = Chaos(args, small_config(), None, None, lambda line: None)
    monkey.kills["driver"] = 1  # started, never refused
    text, ok = table([_run(monkey)], args)
    assert not ok and "| 1 / 0 |" in text and "FAIL" in text


def _run(monkey) -> dict:
    class _Result:
        learner_version, summary, final_matches = 10, {"duplicate_games": 0}, {}

    return {"name": "chaos", "kinds": monkey.args.kinds, "minutes": 1.0, "result": _Result(), "monkey": monkey, "lines": [],
            "reported": set(), "recorded": set(), "games_total": 0, "versions": [1, 2], "progress_versions": [1, 2], "strength": "n/a"}
