"""Runs of several learners (one per role) on a real local Ray and a real embedded redis-server:
evaluators rate every role, a stopped run resumes every learner and league exactly where it
stopped, and a three-role game survives its learner being killed."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from cluster.config import load_config
from cluster.events import LearnerRestarted, Progress, RunStarted
from cluster.run.trainer import run_training
from cluster.stores.connection import connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from fault_support import EventWatch
from learner.checkpoint import CheckpointDir, decode_checkpoint

pytestmark = pytest.mark.ray

TAG = ("adversary", "agent")
SMALL_TAG = [
    "game.kwargs={max_cycles: 25}", "run.eval_games=4", "rollout.envs_per_actor=4", "rollout.actor_num_cpus=0.5",
    "learner.num_cpus=0.5", "ppo.batch_size=512", "ppo.minibatch_size=256", "league.snapshot_every=2", "model.hidden_sizes=[32]",
    "eval.num_evaluators=1", "eval.num_cpus=0.5", "eval.interval_s=0", "eval.games_per_pair=2", "eval.snapshots_per_round=1",
    "checkpoint.every_versions=4", "run.total_env_steps=10000000",
]


def _leagues(run_dir: Path, roles) -> dict:
    """Per role: (its league, its newest published version), read from the run's embedded Redis."""
    with EmbeddedRedis(run_dir / "redis") as r:
        client = connect(r.url)
        keys = RunKeys("selfplay", run_dir.name)
        return {role: (LeagueStore(client, keys.for_role(role)).load(), ParamStore(client, keys.for_role(role)).latest_version()) for role in roles}


def test_evaluators_rate_every_role_and_a_stopped_roles_run_resumes_every_learner_and_league(local_ray, tmp_path):
    run_dir = tmp_path / "run"
    cfg = load_config("configs/simple_tag_smoke.yaml", SMALL_TAG)

    # 1. Train until the prey's learner has a few versions and the evaluator's games are rated in the
    # leagues in Redis (rated on the league's own cadence, so the condition is read there, not guessed
    # from a count of games played); stop as Ctrl-C does.
    watch, clients = EventWatch(), []

    def rated(w: EventWatch) -> bool:
        progress = w.of(Progress)
        if not progress or min(progress[-1].learner.versions().values()) < 3 or progress[-1].eval_games < 8:
            return False
        if not clients:
            clients.append(connect(w.of(RunStarted)[0].redis_url))
        client, keys = clients[0], RunKeys("selfplay", run_dir.name)
        leagues = {role: LeagueStore(client, keys.for_role(role)).load() for role in TAG}
        return all(
            leagues[TAG[1 - k]].players[f"{role}/latest"].elo_stderr is not None
            and any(p.elo_stderr is not None for p in leagues[role].players.values() if p.kind == "snapshot")
            for k, role in enumerate(TAG)
        )

    watch.stop_when = rated
    first = run_training(cfg, run_dir, log=lambda line: None, observers=[watch])
    assert first.summary["interrupted"], watch.text()
    before = _leagues(run_dir, TAG)
    ckpts = CheckpointDir(run_dir / "checkpoints")
    ckpt = decode_checkpoint(ckpts.read(ckpts.latest_version()))
    saved = {name: st.version for name, st in ckpt.learner_states().items()}
    # The final checkpoint holds every learner at its newest published version, and every league.
    assert saved == {role: before[role][1] for role in TAG} and ckpts.latest_version() == sum(saved.values())
    for k, role in enumerate(TAG):
        other = TAG[1 - k]
        league = before[role][0]
        assert ckpt.league_of(role)["games_total"] == league.games_total
        # The evaluator rated this role's latest (in the other role's league) and its snapshots (in its own):
        # no final matches ran (the run was interrupted) and training games are not rated by default.
        assert before[other][0].players[f"{role}/latest"].elo_stderr is not None
        assert any(p.elo_stderr is not None for p in league.players.values() if p.kind == "snapshot"), role
        assert all(pid.startswith(f"{role}/") for pid, p in league.players.items() if p.kind == "snapshot")
    assert (run_dir / "checkpoints" / "snapshots" / "adversary").is_dir()  # snapshot weights kept beside, per role

    # 2. --resume: every learner continues from its own checkpointed version, every league from where it stopped.
    watch = EventWatch()
    watch.stop_when = lambda w: bool(w.of(Progress)) and all(
        v >= saved[r] + 2 for r, v in w.of(Progress)[-1].learner.versions().items())
    second = run_training(load_config(str(run_dir / "config.yaml")), run_dir, log=lambda line: None, resume=True, observers=[watch])
    [started] = watch.of(RunStarted)
    assert started.resumed_from == sum(saved.values())
    first_progress = watch.of(Progress)[0].learner.versions()
    assert all(first_progress[r] >= saved[r] for r in TAG)  # numbering went on per role, never back to 0
    after = _leagues(run_dir, TAG)
    for role in TAG:
        old, new = before[role][0], after[role][0]
        assert new.epoch == old.epoch and set(old.players) <= set(new.players)  # the same league, grown
        assert all(new.players[pid].games >= p.games for pid, p in old.players.items())
        assert new.games_total > old.games_total
        assert second.versions[role] == after[role][1] >= saved[role] + 2


def test_a_three_role_game_trains_and_its_killed_learner_is_replaced(local_ray, tmp_path):
    """mpe2 simple_world_comm: a leader, three adversaries and two good agents observe and act
    differently: three learners, three leagues. The learner service is killed once; a new one
    restores every learner from the newest checkpoint and each goes on past what it published."""
    roles = ("leadadversary", "adversary", "agent")
    cfg = load_config("configs/simple_world_comm_smoke.yaml", [*SMALL_TAG, "eval.num_evaluators=0", "learner.max_restarts=1"])
    watch = EventWatch()
    kills: list[dict] = []

    def kill(w: EventWatch) -> None:
        kills.append(dict(w.of(Progress)[-1].learner.versions()))
        ray.kill(ray.get_actor(w.learner_name))

    watch.at_version(2, kill, needs="learner")
    watch.stop_when = lambda w: bool(w.of(LearnerRestarted)) and min(w.of(Progress)[-1].learner.versions().values()) >= 3
    result = run_training(cfg, tmp_path / "run", log=lambda line: None, observers=[watch])
    [restart] = watch.of(LearnerRestarted)
    assert kills and result.summary["learner_restarts"] == 1, watch.text()
    assert restart.version > restart.died_at  # past every version the dead one published (summed over learners)
    leagues = _leagues(tmp_path / "run", roles)
    for role in roles:
        league, published = leagues[role]
        assert published >= kills[0][role] and result.versions[role] == published
        snaps = [pid for pid, p in league.players.items() if p.kind == "snapshot"]
        assert snaps and all(s.startswith(f"{role}/") for s in snaps)
        assert {f"{o}/latest" for o in roles if o != role} <= set(league.players)  # every other learner meets this league
        assert league.games_total > 0
