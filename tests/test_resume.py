"""Checkpoints and `--resume`: the learner's state round-trips exactly, files are written atomically,
bad checkpoints are refused before anything changes, and a stopped or crashed run continues with the
same versions, pool and ratings (real local Ray, real redis-server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from actors.games import load_game
from cluster.events import LearnerStarted, RunStarted
from cluster.run.cli import main
from cluster.run.resume import RunError
from cluster.run.trainer import run_training
from cluster.stores.connection import connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from fault_support import SMALL, EventWatch, make_segment, small_config
from learner.checkpoint import (
    Checkpoint,
    CheckpointDir,
    CheckpointError,
    check_compatible,
    decode_checkpoint,
    encode_checkpoint,
    model_spec,
    resume_version,
)
from learner.learner import Learner

def _learner(seed: int = 0) -> Learner:
    cfg = small_config("ppo.batch_size=64", "ppo.minibatch_size=16")
    _, spec = load_game(cfg.game.name)
    return Learner(spec, cfg.model, cfg.ppo, cfg.learner, seed=seed)


def _train(learner: Learner, seed: int) -> None:
    learner.add([make_segment(version=learner.version, seed=seed + i) for i in range(2)])
    learner.update()


def _checkpoint(learner: Learner, hidden=(128, 128)) -> bytes:
    spec = model_spec("tictactoe_v3", 18, 9, hidden)
    return encode_checkpoint(Checkpoint(learner.version, learner.state_dict(), spec, {}, {"env_steps": 7, "games": 3}))


# --- the checkpoint itself ---------------------------------------------------------------------


def test_restored_learner_continues_exactly_as_the_original(tmp_path):
    original = _learner(seed=1)
    for i in range(3):
        _train(original, seed=10 * i)
    ckpts = CheckpointDir(tmp_path)
    path = ckpts.save(_checkpoint(original), original.version)

    raw = torch.load(path, weights_only=True)  # plain tensors and types only: no code can run on load
    assert raw["version"] == 3 and raw["progress"] == {"env_steps": 7, "games": 3}
    restored = _learner(seed=99)  # different seed and fresh optimizer: everything must come from the file
    restored.load_state_dict(decode_checkpoint(path.read_bytes()).learner)
    assert restored.version == 3 and restored.stats.samples_in == original.stats.samples_in

    for learner in (original, restored):
        _train(learner, seed=1000)  # same data; minibatch order comes from the restored numpy RNG
    for k, v in original.weights().items():
        np.testing.assert_array_equal(v, restored.weights()[k])  # weights, Adam moments and RNG all restored
    assert restored.version == original.version == 4


def test_a_crash_mid_write_leaves_the_previous_checkpoint_as_the_latest(tmp_path, monkeypatch):
    learner = _learner()
    ckpts = CheckpointDir(tmp_path, keep=3)
    first = ckpts.save(_checkpoint(learner), 0)
    before = first.read_bytes()
    _train(learner, seed=5)

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)  # the temp file is written, the rename never happens
    with pytest.raises(OSError, match="disk full"):
        ckpts.save(_checkpoint(learner), 1)
    monkeypatch.undo()
    assert ckpts.latest() == first and first.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no half-written file left behind
    (tmp_path / ".ckpt-v00000009.pt.123.tmp").write_bytes(b"half a checkp")  # as a kill -9 would leave it
    assert ckpts.latest() == first
    assert decode_checkpoint(first.read_bytes()).version == 0


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    learner = _learner()
    ckpts = CheckpointDir(tmp_path, keep=2)
    for v in range(4):
        learner.version = v
        ckpts.save(_checkpoint(learner), v)
    assert ckpts.versions() == [2, 3]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not-a-checkpoint"])
def test_a_damaged_checkpoint_is_a_clear_error(tmp_path, damage):
    path = CheckpointDir(tmp_path).save(_checkpoint(_learner()), 0)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 100)
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match=str(path)) as e:
        decode_checkpoint(path.read_bytes(), f"checkpoint {path}")
    assert "corrupt or truncated" in str(e.value) or "not a selfplay checkpoint" in str(e.value)


def test_a_checkpoint_that_unpickles_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "ckpt-v00000000.pt"
    torch.save({"format": "selfplay-checkpoint", "evil": Evil()}, path)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        decode_checkpoint(path.read_bytes(), str(path))


def test_an_incompatible_checkpoint_names_every_difference():
    ckpt = decode_checkpoint(_checkpoint(_learner()))
    check_compatible(ckpt, model_spec("tictactoe_v3", 18, 9, (128, 128)))
    with pytest.raises(CheckpointError, match=r"hidden_sizes: checkpoint \[128, 128\], config \[64\]") as e:
        check_compatible(ckpt, model_spec("connect_four_v3", 84, 7, (64,)))
    for what in ("game: checkpoint 'tictactoe_v3', config 'connect_four_v3'", "obs_dim", "num_actions"):
        assert what in str(e.value)


def test_resume_version_never_reuses_a_published_number():
    assert resume_version(10, 10) == 10  # clean stop: the checkpoint is the newest state
    assert resume_version(10, 8) == 10  # publish_every > 1
    assert resume_version(10, 13) == 14  # crash: 11..13 were published and are lost with the learner


# --- refusing to start: nothing is changed -------------------------------------------------------


def _snapshot_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_resume_refusals_change_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    CheckpointDir(run_dir / "checkpoints").save(_checkpoint(_learner()), 0)
    (run_dir / "config.yaml").write_text("game: {name: tictactoe_v3}\n")
    before = _snapshot_files(run_dir)
    base = ["train", "--config", "configs/tictactoe_smoke.yaml", "--run-dir", str(run_dir)]

    assert main([*base, "--resume", "--set", "model.kind=mlp", "--set", "model.symmetry=none", "--set", "model.hidden_sizes=[64]"]) == 2
    assert "does not fit this config (model.hidden_sizes: checkpoint [128, 128], config [64])" in capsys.readouterr().err
    assert main([*base, "--resume"]) == 2  # the smoke config's conv network
    err = capsys.readouterr().err
    assert "model.kind: checkpoint 'mlp', config 'conv'" in err and "model.symmetry: checkpoint 'none', config 'dihedral'" in err
    assert main(base) == 2  # a fresh run over an existing one
    err = capsys.readouterr().err
    assert "already holds a run" in err and "continue it with --resume" in err
    assert main(["train", "--config", "configs/tictactoe_smoke.yaml", "--run-dir", str(tmp_path / "nothing"), "--resume"]) == 2
    assert "no checkpoint in" in capsys.readouterr().err
    with pytest.raises(RunError, match="--run-dir"):
        run_training(small_config(), None, resume=True)
    assert _snapshot_files(run_dir) == before
    assert not (tmp_path / "nothing").exists()


# --- real runs: stop and resume ------------------------------------------------------------------


def _league(run_dir: Path, run_id: str):
    """The run's league, read from its embedded Redis' append-only file after the run."""
    with EmbeddedRedis(run_dir / "redis") as r:
        client = connect(r.url)
        keys = RunKeys("selfplay", run_id)
        store, params = LeagueStore(client, keys), ParamStore(client, keys)
        state = store.load()
        snapshots = {pid: params.fetch_snapshot(pid)[0] for pid, p in state.players.items() if p.kind == "snapshot"}
        history = sum(len(points) for points in store.elo_history(list(state.players)).values())
        return state, history, params.latest_version(), snapshots


def _assert_league_continued(before, after) -> None:
    (old, old_history, _, old_snaps), (new, new_history, _, new_snaps) = before, after
    assert set(old.players) <= set(new.players)  # the same pool ...
    assert old_snaps.items() <= new_snaps.items()  # ... with the same frozen weights per snapshot
    for pid, p in old.players.items():
        assert new.players[pid].games >= p.games  # ratings rest on everything played so far
    assert new.games_total >= old.games_total and new_history > old_history
    assert len(new_snaps) > len(old_snaps)  # and it grew


def _stop_with_sigterm(run_dir: Path) -> str:
    """`selfplay train` in its own process; SIGTERM (what `ray job stop` sends) once it has written a
    checkpoint. Returns its output."""
    cmd = [sys.executable, "-m", "cluster.run.cli", "train", "--config", "configs/tictactoe_smoke.yaml", "--run-dir", str(run_dir)]
    for s in SMALL:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ckpts = CheckpointDir(run_dir / "checkpoints")
        deadline = time.monotonic() + 120
        while not ckpts.versions() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # polling a condition (a checkpoint exists), bounded by the deadline
        assert ckpts.versions(), "no checkpoint within 120 s"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    return out


def _versions(watch: EventWatch) -> list[int]:
    """Learner versions of the progress events, from the learner's start on."""
    return watch.versions_after(lambda e: isinstance(e, LearnerStarted))


@pytest.mark.ray
def test_stop_resume_learner_death_resume_keeps_versions_pool_and_ratings(tmp_path, request):
    run_dir = tmp_path / "run"
    ckpts = CheckpointDir(run_dir / "checkpoints")

    # 1. A clean stop by SIGTERM writes a checkpoint of the final state.
    out = _stop_with_sigterm(run_dir)
    assert "interrupted: writing a checkpoint" in out and "--resume" in out
    stopped_at = ckpts.versions()[-1]
    first = _league(run_dir, "run")
    assert first[2] == stopped_at  # the final checkpoint holds the newest published version

    # 2. --resume continues from it: same numbering, pool and ratings. The learner is then killed.
    request.getfixturevalue("local_ray")  # after the subprocess: one Ray at a time on a 2-core machine
    watch = EventWatch()
    watch.at_version(stopped_at + 3, lambda w: os.kill(w.pids["learner"], signal.SIGKILL), needs="learner")
    no_restarts = small_config("run.max_versions=60", "learner.max_restarts=0")  # the run stops (tests/test_learner_recovery.py: it goes on)
    with pytest.raises(RunError, match=r"learner died .*continue from the last checkpoint \(v\d+\) with: selfplay train") as e:
        run_training(no_restarts, run_dir, log=lambda line: None, resume=True, observers=[watch])
    assert f"--run-dir {run_dir} --resume" in str(e.value)
    [started] = watch.of(RunStarted)
    assert started.resumed_from == stopped_at and (run_dir / "checkpoints" / f"ckpt-v{stopped_at:08d}.pt").is_file()
    assert [e.version for e in watch.of(LearnerStarted)] == [stopped_at]  # it published that version first
    assert started.config_changes == ("learner.max_restarts: 3 -> 0", "run.max_versions: 0 -> 60")
    assert min(_versions(watch)) >= stopped_at  # numbering went on, never restarted at 0
    second = _league(run_dir, "run")
    _assert_league_continued(first, second)

    # 3. --resume after the learner died: from the last checkpoint, after every published version.
    checkpointed = ckpts.versions()[-1]
    assert checkpointed > stopped_at
    watch = EventWatch()
    watch.stop_when = lambda w: bool(_versions(w)) and w.version() >= second[2] + 3
    result = run_training(small_config("run.max_versions=60"), run_dir, log=lambda line: None, resume=True, observers=[watch])
    [started] = watch.of(RunStarted)
    assert started.resumed_from == checkpointed
    expected_start = resume_version(checkpointed, second[2])
    assert [e.version for e in watch.of(LearnerStarted)] == [expected_start]
    assert started.start_version == expected_start  # past every published version, when some came after the checkpoint
    assert min(_versions(watch)) >= expected_start and result.learner_version >= second[2] + 3
    third = _league(run_dir, "run")
    _assert_league_continued(second, third)
    assert third[2] == result.learner_version == ckpts.versions()[-1]


def test_a_redis_that_lost_everything_is_refilled_from_the_checkpoint(local_ray, tmp_path):
    """The league travels in every checkpoint and the snapshots' weights are kept beside them: with
    the run's Redis gone (its data directory deleted), --resume restores players, ratings, payoff and
    snapshot weights from the checkpoint alone, says so, and training goes on."""
    run_dir = tmp_path / "run"
    cfg = small_config("run.max_versions=12", "checkpoint.every_versions=4", "league.snapshot_every=3")
    run_training(cfg, run_dir, log=lambda line: None)
    before = _league(run_dir, "run")
    kept = {p.name for p in (run_dir / "checkpoints" / "snapshots").iterdir()}
    assert kept == {f"{pid}.msgpack" for pid in before[3]}  # every snapshot's weights, once each
    for path in (run_dir / "redis").iterdir():
        path.unlink()  # Redis lost everything
    lines: list[str] = []
    run_training(small_config("run.max_versions=16", "league.snapshot_every=3"), run_dir, log=lines.append, resume=True)
    assert any("restored it from checkpoint" in line for line in lines), lines
    after = _league(run_dir, "run")
    old, new = before[0], after[0]
    assert set(old.players) <= set(new.players)
    assert before[3].items() <= after[3].items()  # the same frozen weights per snapshot
    for pid, p in old.players.items():
        assert new.players[pid].games >= p.games and new.players[pid].kind == p.kind
    assert new.learner_version >= 16 and new.games_total > old.games_total


def test_a_checkpoint_league_naming_snapshots_without_kept_weights_is_refused(local_ray, tmp_path):
    run_dir = tmp_path / "run"
    run_training(small_config("run.max_versions=6", "checkpoint.every_versions=3", "league.snapshot_every=2"), run_dir, log=lambda line: None)
    for path in (run_dir / "redis").iterdir():
        path.unlink()
    victim = sorted((run_dir / "checkpoints" / "snapshots").iterdir())[-1]
    victim.unlink()
    with pytest.raises(RunError, match=rf"have no kept weights .*{victim.stem}"):
        run_training(small_config("run.max_versions=8"), run_dir, log=lambda line: None, resume=True)
