"""Faults survived and bad input refused, on a real local Ray and real redis-servers.

Faults are injected at a point of the run (an EventWatch action fires when the driver reports a given
learner version), and runs end on a condition (the watching observer asks for a stop, handled as
Ctrl-C, once what is tested has happened), never after a sleep. Each real run is short: tic-tac-toe, small batches.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import numpy as np
import pytest

from cluster.events import ActorRestarted
from cluster.remote.learner_service import LearnerService
from cluster.run.cli import main
from cluster.run.resume import RunError
from cluster.run.trainer import run_training
from cluster.stores.connection import connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from learner.report import IterationReport
from learner.wire import PayloadError, decode_weights, encode_segments
from fault_support import EventWatch, make_segment, small_config

# --- a rollout actor dies ------------------------------------------------------------------


def test_crashed_rollout_actors_are_restarted_and_training_goes_on(local_ray, tmp_path):
    """Two crashes in one run: actor 0's process is killed, and later a game raises in some actor.
    Ray restarts both, the driver logs what each lost, and training goes on."""
    flag = tmp_path / "fault-fired"
    cfg = small_config(
        "game.name=tests.fault_support:env", f"game.kwargs={{mode: raise_once, flag: '{flag}', after: 3000}}", "run.max_versions=60"
    )
    watch = EventWatch()
    killed_at: list[int] = []

    def kill_actor0(w: EventWatch) -> None:
        killed_at.append(w.version())
        os.kill(w.pids["actor0"], signal.SIGKILL)

    def killed(e) -> bool:
        return isinstance(e, ActorRestarted) and e.actor == 0 and e.reason == "its process died"

    def failed(e) -> bool:
        return isinstance(e, ActorRestarted) and e.reason.startswith("RuntimeError: injected fault in a game")

    def both_recovered(w: EventWatch) -> bool:
        return bool(killed_at) and max(w.versions_after(killed), default=-1) >= killed_at[0] + 2 and len(w.versions_after(failed)) >= 2

    watch.at_version(2, kill_actor0, needs="actor0")
    watch.stop_when = both_recovered
    result = run_training(cfg, tmp_path / "run", log=lambda line: None, observers=[watch])

    assert killed_at and flag.exists(), watch.text()
    restarts = watch.of(ActorRestarted)
    assert len(restarts) == 2 and all(
        re.fullmatch(rf"a{e.actor}-\w+", e.old_source) and re.fullmatch(rf"a{e.actor}-\w+", e.new_source) and e.new_source != e.old_source
        for e in restarts
    ), watch.text()
    assert len([e for e in restarts if killed(e)]) == 1 and len([e for e in restarts if failed(e)]) == 1, watch.text()
    s = result.summary
    # What the two dead incarnations lost is what their restart events said, and at most what an
    # actor can have in flight: max_inflight calls, each its gathered segments plus a tick's
    # worth (a segment per seat of each game copy).
    r = cfg.rollout
    per_call = r.send_segments + 2 * r.envs_per_actor
    assert s["actor_restarts"] == 2 and s["lost_segments"] == sum(e.lost_segments for e in restarts)
    assert s["lost_segments"] <= 2 * r.max_inflight * per_call, watch.text()
    assert s["duplicate_games"] == 0  # the dead incarnations' finished games were counted once
    assert killed_at[0] + 2 <= result.learner_version < 60  # training went on, and stopped on our condition
    assert s["checkpoint_version"] == result.learner_version


def test_only_a_restarted_incarnation_gets_a_restart_salt(local_ray):
    """What the rollout actor seeds its games with: the run's seed at first, fresh entropy after Ray restarts it."""
    import ray

    from cluster.remote.process import restart_salt as _restart_salt

    @ray.remote(num_cpus=0, max_restarts=1)
    class Probe:
        def salt(self):
            return _restart_salt()

        def pid(self):
            return os.getpid()

    probe = Probe.remote()
    assert ray.get(probe.salt.remote()) is None
    os.kill(ray.get(probe.pid.remote()), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:  # a call that reaches the dying process fails; Ray holds later ones until the restart
        try:
            salt = ray.get(probe.salt.remote(), timeout=30)
            break
        except ray.exceptions.RayActorError:
            assert time.monotonic() < deadline, "the probe actor was not restarted within 60 s"
    assert isinstance(salt, int)
    ray.kill(probe)


# --- Redis restarts mid-run ------------------------------------------------------------------


def _history_points(store: LeagueStore) -> int:
    return sum(len(points) for points in store.elo_history(list(store.load().players)).values())


def test_redis_restart_mid_run_loses_nothing(local_ray, tmp_path):
    server = EmbeddedRedis(tmp_path / "redis-ext").start()  # appendonly, like a production Redis with AOF
    run_dir = tmp_path / "run"
    keys = RunKeys("selfplay", "run")
    before: dict = {}
    restarted = threading.Event()

    def restart_redis() -> None:
        client = connect(server.url)
        before["state"] = LeagueStore(client, keys).load()
        before["history"] = _history_points(LeagueStore(client, keys))
        before["version"] = ParamStore(client, keys).latest_version()
        client.close()
        server.stop()  # SIGTERM: redis-server writes its append-only file and exits
        server.start()  # same port, password and data directory
        restarted.set()

    watch = EventWatch()
    watch.at_version(3, lambda w: threading.Thread(target=restart_redis, daemon=True).start())
    watch.stop_when = lambda w: restarted.is_set() and w.version() >= before["version"] + 3
    try:
        result = run_training(small_config(f"redis.url={server.url}", "run.max_versions=40"), run_dir, log=lambda line: None, observers=[watch])
        client = connect(server.url)
        after = LeagueStore(client, keys).load()
        history = _history_points(LeagueStore(client, keys))
        params = ParamStore(client, keys)
        assert restarted.is_set()
        assert result.learner_version >= before["version"] + 3 and result.learner_version < 40
        assert params.latest_version() == result.learner_version  # versions went on being published
        # Nothing in the league was lost: every player, snapshot and game from before is still there.
        old = before["state"]
        assert set(old.players) <= set(after.players)
        for pid, p in old.players.items():
            assert after.players[pid].games >= p.games
            if p.kind == "snapshot":
                assert params.fetch_snapshot(pid)[0] == p.version
        assert after.games_total >= old.games_total and history >= before["history"]  # no Elo history lost
        # A push whose reply was lost in the restart is retried, so a game can arrive twice; the
        # league counts it once (summary["duplicate_games"] says how often that happened; whether
        # a reply is lost here is up to timing: test_redis_retry.py loses one on purpose). Each is
        # a copy of a game the league holds once, and no game was refused.
        s = result.summary
        assert s["duplicate_games"] <= after.games_total and s["bad_games"] == 0
    finally:
        server.stop()


# --- NaN/inf losses ----------------------------------------------------------------------------


def test_repeated_nan_losses_stop_the_run_without_publishing_broken_weights(local_ray, tmp_path):
    # Finite rewards whose losses overflow: NaN rewards themselves never reach the learner (a
    # Segment refuses them, test_hostile_segments.py).
    cfg = small_config("game.name=tests.fault_support:env", "game.kwargs={mode: huge_rewards}", "rollout.num_actors=1", "run.max_versions=40")
    watch = EventWatch()
    with pytest.raises(RunError, match=r"consecutive learner iterations had only NaN/inf losses") as e:
        run_training(cfg, tmp_path / "run", log=lambda line: None, observers=[watch])
    assert "--resume" in str(e.value)
    assert len([u for u in watch.of(IterationReport) if u.nonfinite_skipped > 0]) >= 2, watch.text()
    with EmbeddedRedis(tmp_path / "run" / "redis") as r:
        client = connect(r.url)
        blobs = [client.get(k) for k in client.keys("selfplay:run:params:w:*")]
    assert blobs
    for blob in blobs:
        _, tensors, _ = decode_weights(blob)
        assert all(np.isfinite(t).all() for t in tensors.values())


def test_a_game_that_hands_out_nan_rewards_stops_the_run_with_that_error(local_ray, tmp_path):
    """NaN rewards never reach the learner: the actor's Segment refuses them, and with its restarts
    used up the run stops naming them."""
    cfg = small_config(
        "game.name=tests.fault_support:env", "game.kwargs={mode: nan_rewards}", "rollout.num_actors=1", "rollout.max_restarts=0", "run.max_versions=40",
    )
    with pytest.raises(RunError, match=r"rollout actor 0 died .*last error: ValueError: segment field rewards holds NaN or inf values"):
        run_training(cfg, tmp_path / "run", log=lambda line: None)


# --- corrupt trajectory payloads -----------------------------------------------------------------


def test_corrupt_truncated_or_misshapen_segment_payloads_are_counted_and_dropped(redis_server, redis_client):
    cfg = small_config("ppo.batch_size=32", "ppo.minibatch_size=16")
    learner = LearnerService(cfg.to_dict(), redis_server.url, "corrupt-segments")  # the Ray actor's class, in-process
    good = encode_segments([make_segment()])
    for n, payload in enumerate((b"\xc1 not msgpack", good[: len(good) // 2], encode_segments([make_segment(obs_dim=5)]))):
        assert learner.submit(payload, source="a0-x", produced=n + 1, count=1)
    assert learner.submit(good, source="a0-x", produced=4, count=1)
    m = learner.train(0.0)
    assert m.status.corrupt_payloads == 3
    assert m.status.learner_version == 1 and len(m.updates) == 1  # the good batch was trained on
    assert learner.incarnation_ended("a0-x") == (0, "")  # 4 produced, 4 reached the queue
    # An incarnation whose 3rd segment arrived but whose first two never did, and which then crashed:
    learner.submit(good, source="a1-y", produced=3, count=1)
    learner.report_failure("a1-y", "RuntimeError: boom")
    assert learner.incarnation_ended("a1-y") == (2, "RuntimeError: boom")


# --- bad input: one clear error, nothing damaged ---------------------------------------------------


def test_config_errors_are_one_line_naming_the_key(capsys):
    assert main(["train", "--config", "configs/tictactoe_smoke.yaml", "--set", "ppo.lrr=0.1"]) == 2
    assert "unknown config key ppo.lrr" in capsys.readouterr().err
    assert main(["train", "--config", "configs/tictactoe_smoke.yaml", "--set", "ppo.epochs=four"]) == 2
    assert "ppo.epochs: expected an integer" in capsys.readouterr().err


@pytest.mark.parametrize(
    "game,message",
    [
        ("no_such_game_v0", "unknown game 'no_such_game_v0'"),
        ("tests.fault_support:uneven_env", "split it with game.sides"),
    ],
)
def test_a_game_that_does_not_exist_or_does_not_fit_is_refused(game, message, capsys, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "--config", "configs/tictactoe_smoke.yaml", "--set", f"game.name={game}", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not run_dir.exists()  # refused before anything was written


def test_a_side_whose_agents_act_differently_is_refused():
    from actors.games import GameError, load_game

    with pytest.raises(GameError, match="side 'a' has agents that observe or act differently"):
        load_game("tests.fault_support:uneven_env", {"what": "actions"})


def test_wrong_redis_password_is_one_clear_error(local_ray, redis_server, tmp_path, capsys):
    wrong = redis_server.url.replace(redis_server.password, "not-the-password")
    rc = main(["train", "--config", "configs/tictactoe_smoke.yaml", "--redis-url", wrong, "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "refused the credentials" in err and "not-the-password" not in err
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_payload_error_names_the_key(redis_client, run_keys):
    redis_client.set(run_keys.league_meta, b"\x85truncated")
    with pytest.raises(PayloadError, match=r"league in Redis \(test:run-1:league:meta and its hashes\).*corrupt or truncated"):
        LeagueStore(redis_client, run_keys).load()
    redis_client.set(run_keys.param_version, b"3")
    redis_client.set(run_keys.weights(3), b"\x92\x01")
    with pytest.raises(PayloadError, match=r"weights v3 in Redis \(test:run-1:params:w:3\)"):
        ParamStore(redis_client, run_keys).fetch()


# --- Redis away for a moment: clients retry, nothing is lost ---------------------------------------


def test_a_client_rides_out_a_redis_restart(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        client = connect(server.url)
        client.set("k", b"v")
        server.stop()  # SIGTERM: the append-only file is complete
        starter = threading.Thread(target=server.start)
        starter.start()
        assert client.get("k") == b"v"  # refused until the server is back: retried with backoff
        starter.join(timeout=30)
    finally:
        server.stop()


def _result(i: int):
    from league.records import LEARNER_ID, RANDOM_ID, GameResult

    return GameResult(f"g{i}", (LEARNER_ID, RANDOM_ID), (i, -1), (1.0, 0.0), 5, "train", 1.0, 1000.0 + i)


def test_games_taken_but_not_yet_saved_into_the_league_are_not_lost(redis_client, run_keys):
    from league.league import LeagueState

    store = LeagueStore(redis_client, run_keys)
    store.push_games([_result(0), _result(1)])
    assert [g.game_id for g in store.pop_games()] == ["g0", "g1"]
    # The driver dies here (or Redis restarts and the call is retried) before the state is saved.
    store.push_games([_result(2)])
    again = LeagueStore(redis_client, run_keys)  # the resumed driver
    assert [g.game_id for g in again.pop_games()] == ["g0", "g1"]  # the unacknowledged claim comes back
    again.save(LeagueState.new())  # the state they went into acknowledges them
    assert [g.game_id for g in again.pop_games()] == ["g2"]


def test_learner_republishes_weights_that_a_restarted_redis_lost(redis_server, redis_client):
    learner = LearnerService(small_config().to_dict(), redis_server.url, "republish")  # in-process
    learner.publish()
    redis_client.flushall()  # Redis came back without its data (no persistence configured)
    assert learner.train(0.0).status.republished == 1
    assert ParamStore(redis_client, RunKeys("selfplay", "republish")).fetch()[0] == 0
    assert learner.train(0.0).status.republished == 1  # once: nothing lost, nothing to do


# --- resuming against bad Redis content: one clear error, nothing changed ---------------------------


@pytest.mark.parametrize(
    "damage,error,message",
    [
        ("corrupt league", PayloadError, r"league in Redis \(selfplay:run:league:meta and its hashes\) cannot be read"),
        ("truncated weights", PayloadError, r"weights v0 in Redis \(selfplay:run:params:w:0\) cannot be read"),
        ("weights of another shape", RunError, r"weights of run 'run' in Redis \(v1\) do not fit this config"),
        ("no league", RunError, r"run 'run' has no league in this Redis"),
    ],
)
def test_resume_refuses_bad_redis_content_and_changes_nothing(local_ray, redis_server, redis_client, tmp_path, damage, error, message):
    from actors.games import load_game
    from league.league import LeagueState
    from learner.checkpoint import Checkpoint, CheckpointDir, encode_checkpoint, model_spec
    from learner.learner import Learner
    from learner.model import PolicyNet, state_dict_numpy

    run_dir = tmp_path / "run"
    cfg = small_config(f"redis.url={redis_server.url}")
    _, spec = load_game(cfg.game.name)
    learner = Learner(spec, cfg.model, cfg.ppo, cfg.learner)
    ckpt = Checkpoint(0, learner.state_dict(), model_spec(spec.name, spec.obs_shape, spec.num_actions, cfg.model), cfg.to_dict(), {})
    CheckpointDir(run_dir / "checkpoints").save(encode_checkpoint(ckpt), 0)
    (run_dir / "config.yaml").write_text("the run's config\n")
    keys = RunKeys("selfplay", "run")
    LeagueStore(redis_client, keys).save(LeagueState.new())
    params = ParamStore(redis_client, keys)
    params.publish(0, learner.weights())
    if damage == "corrupt league":
        redis_client.set(keys.league_meta, b"\x85\xa6schema")
    elif damage == "truncated weights":
        blob = redis_client.get(keys.weights(0))
        redis_client.set(keys.weights(0), blob[: len(blob) // 2])
    elif damage == "weights of another shape":
        params.publish(1, state_dict_numpy(PolicyNet(18, 9, (32,))))
    else:
        redis_client.delete(keys.league_meta)
    redis_before = {k: redis_client.dump(k) for k in redis_client.keys("*")}
    files_before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    with pytest.raises(error, match=message):
        run_training(cfg, run_dir, log=lambda line: None, resume=True)
    assert {k: redis_client.dump(k) for k in redis_client.keys("*")} == redis_before
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == files_before


def test_a_game_that_always_fails_stops_the_run_with_its_error(local_ray, tmp_path):
    cfg = small_config(
        "game.name=tests.fault_support:env", "game.kwargs={mode: raise_always, after: 200}",
        "rollout.num_actors=1", "rollout.max_restarts=0", "run.max_versions=40",
    )  # restarts used up at the first failure: the give-up path without waiting for restarts
    with pytest.raises(RunError, match=r"rollout actor 0 died and was restarted 0 times .*last error: RuntimeError: injected fault in every game") as e:
        run_training(cfg, tmp_path / "run", log=lambda line: None)
    assert "--resume" in str(e.value)
