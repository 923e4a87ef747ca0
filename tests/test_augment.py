"""ppo.augment: the learner sees each sample in a random orientation of the board."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actors.games import GameSpec
from learner.arch import ModelConfig
from learner.config import LearnerConfig, PPOConfig
from learner.learner import Learner
from learner.segment import Segment

C4 = GameSpec("c4", ("a", "b"), (6, 7, 2), 7)
CONV = ModelConfig(kind="conv", channels=8, blocks=1, policy_planes=2, value_planes=2, hidden_sizes=(16,))


def _segment(obs: np.ndarray, masks: np.ndarray, actions: np.ndarray) -> Segment:
    t = len(actions)
    rng = np.random.default_rng(1)
    return Segment(
        actor_id=0, segment_id=0, obs=obs.reshape(t, -1).astype(np.float32), masks=masks, actions=actions.astype(np.int64),
        logp=np.full(t, -1.5, np.float32), values=rng.normal(size=t).astype(np.float32),
        rewards=rng.choice([-1.0, 0.0, 1.0], size=t).astype(np.float32), dones=np.ones(t, bool),
        versions=np.zeros(t, np.int64), bootstrap_value=0.0,
    )


def _loss(augment: str, seg: Segment, turns: torch.Tensor | None):
    learner = Learner(C4, CONV, PPOConfig(batch_size=len(seg), minibatch_size=len(seg), augment=augment), LearnerConfig(device="cpu"), seed=0)
    b = learner._prepare([seg])
    return learner._loss(b, torch.arange(b.n), turns)


def test_a_mirrored_sample_costs_what_the_mirrored_position_costs_played_as_is():
    rng = np.random.default_rng(0)
    t = 12
    obs = rng.integers(0, 2, size=(t, 6, 7, 2))
    masks = rng.random((t, 7)) < 0.8
    masks[:, 0] = True  # a legal move in every row, and one that moves under the mirror
    actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
    as_played = _segment(obs, masks, actions)
    mirrored = _segment(obs[:, :, ::-1], masks[:, ::-1].copy(), 6 - actions)

    turned = _loss("mirror", as_played, torch.ones(t, dtype=torch.long))
    by_hand = _loss("none", mirrored, None)
    untouched = _loss("mirror", as_played, torch.zeros(t, dtype=torch.long))
    plain = _loss("none", as_played, None)
    for name in ("total", "policy", "value", "entropy"):
        assert torch.allclose(getattr(turned, name), getattr(by_hand, name), atol=1e-6), name
        assert torch.allclose(getattr(untouched, name), getattr(plain, name), atol=1e-6), name
    # The check has teeth: this network is not mirror-symmetric, so the two orientations differ.
    assert not torch.allclose(turned.total, plain.total, atol=1e-4)


def test_an_update_draws_both_orientations_and_trains():
    rng = np.random.default_rng(0)
    t = 64
    obs = rng.integers(0, 2, size=(t, 6, 7, 2))
    masks = np.ones((t, 7), bool)
    learner = Learner(C4, CONV, PPOConfig(batch_size=t, minibatch_size=16, epochs=2, augment="mirror"), LearnerConfig(device="cpu"), seed=0)
    seen: list[torch.Tensor] = []
    real_loss = learner._loss
    learner._loss = lambda b, picked, turns=None: (seen.append(turns[picked]), real_loss(b, picked, turns))[1]
    learner.add([_segment(obs, masks, rng.integers(0, 7, size=t))])
    m = learner.update()
    assert m["losses/grad_steps"] == 8.0 and learner.version == 1
    drawn = torch.cat(seen)
    assert set(drawn.tolist()) == {0, 1} and 0.25 < drawn.float().mean().item() < 0.75


@pytest.mark.parametrize(
    "model, spec, why",
    [
        (ModelConfig(kind="conv", channels=8, blocks=1, symmetry="mirror"), C4, "symmetry"),
        (ModelConfig(hidden_sizes=(16,)), GameSpec("flat", ("a", "b"), (5,), 3), "board"),
    ],
)
def test_augmentation_that_cannot_apply_is_refused_with_the_reason(model, spec, why):
    with pytest.raises(ValueError, match=why):
        Learner(spec, model, PPOConfig(augment="mirror"), LearnerConfig(device="cpu"))


def test_a_wrong_augment_setting_is_a_config_error_before_anything_starts(tmp_path, capsys):
    from cluster.config import ConfigError, load_config
    from cluster.run.cli import main

    with pytest.raises(ConfigError, match="ppo.augment 'flip' is unknown; choose one of none, mirror, dihedral"):
        load_config(None, ["ppo.augment=flip"])
    with pytest.raises(ConfigError, match="symmetric network sees every orientation"):
        load_config(None, ["model.symmetry=mirror", "ppo.augment=mirror"])
    assert main(["train", "--config", "configs/connect_four.yaml", "--run-dir", str(tmp_path / "r"), "--set", "ppo.augment=dihedral"]) == 2
    assert "ppo.augment dihedral does not fit this game: model.symmetry dihedral needs a square board" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing was written
