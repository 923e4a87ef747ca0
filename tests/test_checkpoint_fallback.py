"""Checkpoints that go bad, and files written at a stop: a corrupt newest checkpoint falls back to
the newest readable one (resume and learner recovery), saying which was skipped and why;
config.yaml and the final policy are written atomically; object-store pruning never deletes another
run's objects (fsspec's real memory:// filesystem)."""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest

from actors.games import load_game
from cluster.config import write_config_file
from cluster.run.resume import checkpoint_to_resume
from fault_support import small_config
from learner.checkpoint import Checkpoint, CheckpointDir, CheckpointError, encode_checkpoint, model_spec
from learner.checkpoint_store import newest_readable, open_checkpoints
from learner.export import save_policy
from learner.learner import Learner


def _payload(version: int, cfg=None) -> bytes:
    cfg = cfg or small_config()
    _, spec = load_game(cfg.game.name)
    learner = Learner(spec, cfg.model, cfg.ppo, cfg.learner)
    learner.version = version
    meta = model_spec(spec.name, spec.obs_shape, spec.num_actions, cfg.model)
    return encode_checkpoint(Checkpoint(version, learner.state_dict(), meta, cfg.to_dict(), {"env_steps": 10 * version, "games": version}))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_resume_falls_back_past_a_corrupt_newest_checkpoint_and_says_so(tmp_path, damage):
    cfg = small_config()
    _, spec = load_game(cfg.game.name)
    ckpts = CheckpointDir(tmp_path / "checkpoints", keep=3)
    for v in (2, 4, 6):
        ckpts.save(_payload(v, cfg), v)
    good = ckpts.file(6).read_bytes()
    ckpts.file(6).write_bytes({"truncated": good[: len(good) // 2], "garbage": b"\x00not a checkpoint", "empty": b""}[damage])
    lines: list[str] = []
    start = checkpoint_to_resume(cfg, spec, tmp_path, ckpts, True, lines.append)
    assert start.checkpoint_version == 4 and start.env_steps == 40  # the newest readable one
    assert len(lines) == 1 and lines[0].startswith(f"skipped checkpoint {ckpts.file(6)}: ")
    assert "corrupt or truncated" in lines[0] or "not a selfplay checkpoint" in lines[0]


def test_learner_recovery_skips_the_corrupt_newest_checkpoint_and_none_readable_is_a_clear_error(tmp_path):
    """What trainer._relaunch reads: the newest readable checkpoint, each try (not the corrupt one again)."""
    ckpts = CheckpointDir(tmp_path, keep=3)
    for v in (2, 4):
        ckpts.save(_payload(v), v)
    ckpts.file(4).write_bytes(b"torn")
    lines: list[str] = []
    version, data, ckpt = newest_readable(ckpts, lines.append)
    assert (version, ckpt.version) == (2, 2) and data == ckpts.file(2).read_bytes() and len(lines) == 1
    ckpts.file(2).write_bytes(b"also torn")
    with pytest.raises(CheckpointError, match="none of the 2 checkpoints .* is readable"):
        newest_readable(ckpts, lines.append)
    assert newest_readable(CheckpointDir(tmp_path / "none"), lines.append) is None


def _killed_at_fsync(*args):
    raise KeyboardInterrupt("killed before the new file was on disk")


def test_config_yaml_and_the_final_policy_are_the_old_file_or_the_new_never_a_part(tmp_path, monkeypatch):
    cfg = small_config()
    write_config_file(tmp_path, cfg)
    before_cfg = (tmp_path / "config.yaml").read_bytes()
    save_policy(tmp_path / "final_policy.msgpack", {"w": np.zeros(3, np.float32)}, 1, {"game": "g"})
    before_policy = (tmp_path / "final_policy.msgpack").read_bytes()
    monkeypatch.setattr(os, "fsync", _killed_at_fsync)  # the process dies while the new bytes are being flushed
    with pytest.raises(KeyboardInterrupt):
        write_config_file(tmp_path, small_config("run.seed=7"))
    with pytest.raises(KeyboardInterrupt):
        save_policy(tmp_path / "final_policy.msgpack", {"w": np.ones(3, np.float32)}, 2, {"game": "g"})
    monkeypatch.undo()
    assert (tmp_path / "config.yaml").read_bytes() == before_cfg
    assert (tmp_path / "final_policy.msgpack").read_bytes() == before_policy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "final_policy.msgpack"]  # no temp file left


def test_object_store_pruning_never_deletes_another_runs_objects():
    pytest.importorskip("fsspec")
    uri = f"memory://ckpt-{secrets.token_hex(4)}/shared"
    a = open_checkpoints(uri, keep=2, run_id="run-a")
    for v in (4, 6):
        a.save(_payload(v), v)
    theirs = sorted(a.fs.ls(a.root, detail=False))
    b = open_checkpoints(uri, keep=2, run_id="run-b")  # another run given the same checkpoint.uri by mistake
    with pytest.raises(CheckpointError, match="holds the checkpoints of run 'run-a'.* a checkpoint.uri of its own"):
        b.save(_payload(2), 2)
    assert sorted(a.fs.ls(a.root, detail=False)) == theirs  # run-a's objects and pointer untouched
    assert a.latest_version() == 6 and a.versions() == [4, 6]
    a.save(_payload(8), 8)  # its own run goes on pruning its own
    assert a.versions() == [6, 8]
