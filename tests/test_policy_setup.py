"""A policy file, or a learner checkpoint, plays the game as it was set up in training: the env's
kwargs (4-player hold'em here), sides and roles travel with the weights. Before, a file kept only
the game's name, so a 4-player hold'em policy (whose observation has the same size as 2-player
hold'em's) was silently evaluated at a 2-player table, and a policy learned from an Atari game's RAM
was refused as not fitting the screen-image game."""

from __future__ import annotations

import argparse

import pytest

from actors.config import GameConfig
from actors.games import load_game
from cluster.run.policies import GameRef, file_game_ref, load_named_policy
from learner.arch import ModelConfig
from learner.checkpoint import Checkpoint, encode_checkpoint, model_spec
from learner.config import LearnerConfig, PPOConfig
from learner.export import policy_meta, save_policy
from learner.learner import Learner
from learner.wire import PayloadError

GAME = "texas_holdem_no_limit_v6"
FOUR = GameConfig(name=GAME, kwargs={"num_players": 4})
HIDDEN = (16, 16)


def _args(policy, game: str = "") -> argparse.Namespace:
    return argparse.Namespace(policy=str(policy), game=game, role="", config="", run_dir="", redis_url="", run="", prefix="selfplay")


@pytest.fixture
def learner() -> Learner:
    _, spec = load_game(GAME, FOUR.kwargs)
    return Learner(spec, ModelConfig(hidden_sizes=HIDDEN), PPOConfig(), LearnerConfig(device="cpu"), seed=1)


def test_a_policy_file_plays_at_the_table_it_learned_at(learner, tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    spec = learner.spec
    path = tmp_path / "four.msgpack"
    save_policy(path, learner.weights(), 3, policy_meta(GAME, HIDDEN, spec.obs_shape, spec.num_actions, setup=vars(FOUR)))
    named = load_named_policy(_args(path))
    assert named.spec.num_sides == 4
    slot = named.make_slot()
    slot.reset(seed=0)
    assert len(slot.agents) == 4


def test_a_checkpoint_plays_the_game_its_run_configured(learner, tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    spec = learner.spec
    config = {"game": {"name": GAME, "kwargs": {"num_players": 4}, "sides": {}, "roles": {}}}
    ckpt = Checkpoint(5, learner.state_dict(), model_spec(GAME, spec.obs_shape, spec.num_actions, HIDDEN), config, {})
    (tmp_path / "ckpt-v00000005.pt").write_bytes(encode_checkpoint(ckpt))
    assert load_named_policy(_args(tmp_path / "ckpt-v00000005.pt")).spec.num_sides == 4


def test_a_file_without_a_setup_and_a_game_named_by_hand_are_played_as_built(learner, tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    spec = learner.spec
    old = tmp_path / "old.msgpack"  # as files were written before: the name only
    save_policy(old, learner.weights(), 3, policy_meta(GAME, HIDDEN, spec.obs_shape, spec.num_actions))
    assert load_named_policy(_args(old)).spec.num_sides == 2
    meta = policy_meta(GAME, HIDDEN, spec.obs_shape, spec.num_actions, setup=vars(FOUR))
    assert file_game_ref(meta, GAME, "f") == GameRef(GAME, {"num_players": 4}, {}, {})
    # --game naming another game: the file's kwargs were for its own game and are not applied to that one.
    assert file_game_ref(meta, "texas_holdem_v4", "f") == GameRef("texas_holdem_v4")


@pytest.mark.parametrize("meta", [{"game_kwargs": [1, 2]}, {"game_kwargs": {1: 2}}, {"sides": {"a": "first_0"}}, {"roles": {"r": [3]}}])
def test_a_malformed_setup_in_a_file_is_refused_by_name(learner, tmp_path, monkeypatch, meta):
    monkeypatch.delenv("REDIS_URL", raising=False)
    spec = learner.spec
    path = tmp_path / "bad.msgpack"
    save_policy(path, learner.weights(), 3, {**policy_meta(GAME, HIDDEN, spec.obs_shape, spec.num_actions), **meta})
    with pytest.raises(PayloadError, match=str(path)):
        load_named_policy(_args(path))
