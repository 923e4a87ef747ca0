"""`selfplay evaluate` on every kind of saved policy: a policy file, a learner checkpoint, and a
league player read from a run's real Redis; and the errors for a player or run that is not there."""

from __future__ import annotations

import numpy as np
import pytest

from actors.games import load_game
from cluster.run.cli import main
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from learner.arch import ModelConfig
from learner.checkpoint import Checkpoint, encode_checkpoint, model_spec
from learner.config import LearnerConfig, PPOConfig
from learner.export import load_policy, policy_meta, save_policy
from learner.learner import Learner

HIDDEN = (32, 32)


@pytest.fixture
def learner() -> Learner:
    _, spec = load_game("tictactoe_v3")
    lrn = Learner(spec, ModelConfig(hidden_sizes=HIDDEN), PPOConfig(), LearnerConfig(device="cpu"), seed=3)
    lrn.version = 7
    return lrn


def probe_actions(policy) -> np.ndarray:
    make_slot, _ = load_game("tictactoe_v3")
    slot = make_slot()
    slot.reset(seed=0)
    obs = np.stack([slot.obs] * 4)
    obs[1:, :3] = 1.0  # a few different inputs, so equal outputs mean equal weights
    obs[2:, 9:12] = 1.0
    masks = np.ones((4, 9), bool)
    _, _, values = policy.act(obs, masks, np.random.default_rng(0), greedy=True)
    return values


def test_a_checkpoint_loads_as_the_same_policy_as_its_policy_file(learner, tmp_path):
    spec = learner.spec
    save_policy(tmp_path / "p.msgpack", learner.weights(), learner.version, policy_meta("tictactoe_v3", HIDDEN, spec.obs_dim, spec.num_actions))
    ckpt = Checkpoint(learner.version, learner.state_dict(), model_spec("tictactoe_v3", spec.obs_dim, spec.num_actions, HIDDEN), {}, {})
    (tmp_path / "ckpt-v00000007.pt").write_bytes(encode_checkpoint(ckpt))
    a, b = load_policy(tmp_path / "p.msgpack"), load_policy(tmp_path / "ckpt-v00000007.pt")
    assert a.version == b.version == 7 and b.meta["game"] == "tictactoe_v3"
    np.testing.assert_array_equal(probe_actions(a), probe_actions(b))


def test_evaluate_a_league_player_from_a_run_in_redis(learner, redis_server, redis_client, capsys):
    keys = RunKeys("selfplay", "evalrun")
    params = ParamStore(redis_client, keys)
    params.publish(learner.version, learner.weights())
    params.write_snapshot("v000005", 5, learner.weights())
    LeagueStore(redis_client, keys).set_meta(
        {"run_id": "evalrun", "game": "tictactoe_v3", "config": {"game": {"name": "tictactoe_v3", "kwargs": {}}, "model": {"hidden_sizes": list(HIDDEN)}}}
    )
    assert main(["evaluate", "v000005", "--redis-url", redis_server.url, "--games", "10", "--opponent", "minimax"]) == 0
    out = capsys.readouterr().out
    assert "v000005 vs minimax on tictactoe_v3, 10 games" in out
    # An untrained policy never beats perfect play.
    assert "W 0 " in out

    assert main(["evaluate", "latest", "--redis-url", redis_server.url, "--games", "4"]) == 0
    assert "latest vs random" in capsys.readouterr().out

    assert main(["evaluate", "v000099", "--redis-url", redis_server.url]) == 2
    assert "no snapshot 'v000099' in run 'evalrun'" in capsys.readouterr().err


def test_a_player_name_without_a_run_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["evaluate", "v000005"]) == 2
    assert "--run-dir DIR or --redis-url URL" in capsys.readouterr().err
