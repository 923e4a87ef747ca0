"""The pieces issue 9 added for strength: network kinds, schedules, equal minibatches, the
AlphaStar sampler and the snapshot quality rule. Pure logic and torch on CPU, no services."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from actors.games import GameSpec
from cluster.config import ConfigError, load_config
from league.league import LeagueState
from league.records import LEARNER_ID, RANDOM_ID, GameResult
from league.sampling import ALPHASTAR_MIX, choose_opponent, PoolEntry, sample_alphastar
from learner.arch import ModelConfig, model_from_meta
from learner.checkpoint import CheckpointError, check_compatible, decode_checkpoint, encode_checkpoint, Checkpoint, model_spec
from learner.config import LearnerConfig, PPOConfig
from learner.export import load_policy, policy_meta, save_policy
from learner.learner import Learner
from learner.model import InferencePolicy, PolicyNet, state_dict_numpy
from learner.ppo import discount_at, linear_schedule, minibatch_slices
from learner.wire import decode_weights, encode_weights

CONV = ModelConfig(kind="conv", channels=8, blocks=2, hidden_sizes=(16,))
C4 = GameSpec("connect_four_v3", ("player_0", "player_1"), (6, 7, 2), 7)


# --- networks ----------------------------------------------------------------------------


def _board(batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 3, size=(batch, 6, 7))
    return np.stack([cells == 1, cells == 2], axis=-1).astype(np.float32)


@pytest.mark.parametrize("model", [ModelConfig(hidden_sizes=(32, 32)), CONV], ids=["mlp", "conv"])
def test_every_kind_maps_boards_to_masked_logits_and_values(model):
    net = PolicyNet((6, 7, 2), 7, model)
    obs = torch.from_numpy(_board(5).reshape(5, -1))
    mask = torch.ones(5, 7, dtype=torch.bool)
    mask[:, 3] = False
    logits, values = net(obs, mask)
    assert logits.shape == (5, 7) and values.shape == (5,)
    probs = torch.softmax(logits, -1)
    assert torch.all(probs[:, 3] == 0) and torch.allclose(probs.sum(-1), torch.ones(5))
    assert torch.all(probs[:, [0, 1, 2, 4, 5, 6]] > 0.1)  # near-uniform at initialisation


def test_conv_reads_the_board_spatially_not_as_a_flat_vector():
    """The trunk sees channels-last planes: the same piece shifted by one column gives the same
    features shifted by one column, so logits of an interior piece move with it."""
    torch.manual_seed(0)
    net = PolicyNet((6, 7, 2), 7, ModelConfig(kind="conv", channels=4, blocks=0, hidden_sizes=(8,)))
    a, b = np.zeros((6, 7, 2), np.float32), np.zeros((6, 7, 2), np.float32)
    a[5, 2, 0], b[5, 3, 0] = 1, 1
    trunk = lambda x: torch.relu(net.conv.stem(torch.from_numpy(x).permute(2, 0, 1)[None]))  # noqa: E731
    fa, fb = trunk(a), trunk(b)
    assert torch.allclose(fa[..., 1:5], fb[..., 2:6], atol=1e-6)


def test_conv_weights_round_trip_through_msgpack_and_policy_files(tmp_path):
    net = PolicyNet((6, 7, 2), 7, CONV)
    blob = encode_weights(state_dict_numpy(net), 12, policy_meta("connect_four_v3", CONV, (6, 7, 2), 7))
    version, tensors, meta = decode_weights(blob)
    assert version == 12 and model_from_meta(meta) == CONV and meta["obs_shape"] == [6, 7, 2]
    save_policy(tmp_path / "p.msgpack", tensors, version, meta)
    policy = load_policy(tmp_path / "p.msgpack")
    obs, mask = _board(4).reshape(4, -1), np.ones((4, 7), bool)
    with torch.no_grad():
        want, _ = net(torch.from_numpy(obs), torch.from_numpy(mask))
    got, _ = policy.net(torch.from_numpy(obs), torch.from_numpy(mask))
    assert torch.allclose(want, got)
    assert policy.version == 12


def test_conv_head_planes_shape_the_heads_and_old_weights_keep_alphazeros_two_and_one():
    wide = ModelConfig(kind="conv", channels=8, blocks=1, hidden_sizes=(16,), policy_planes=8, value_planes=4)
    net = PolicyNet((6, 7, 2), 7, wide)
    assert net.conv.pi_conv.out_channels == 8 and net.conv.pi_out.in_features == 8 * 42
    assert net.conv.v_conv.out_channels == 4 and net.conv.v_mlp[0].in_features == 4 * 42
    meta = policy_meta("connect_four_v3", wide, (6, 7, 2), 7)
    assert model_from_meta(meta) == wide
    old = dict(meta, model={k: v for k, v in meta["model"].items() if k not in ("policy_planes", "value_planes")})
    assert (model_from_meta(old).policy_planes, model_from_meta(old).value_planes) == (2, 1)
    with pytest.raises(ValueError, match="do not fit this model"):  # planes are part of the shape
        InferencePolicy((6, 7, 2), 7, CONV).load(state_dict_numpy(net), 1)
    with pytest.raises(ValueError, match="policy_planes"):
        ModelConfig(kind="conv", policy_planes=0).check()


def test_the_stem_kernel_sees_a_whole_line_through_a_cell_and_old_weights_keep_three():
    wide = ModelConfig(kind="conv", channels=8, blocks=1, hidden_sizes=(16,), stem_kernel=7)
    net = PolicyNet((6, 7, 2), 7, wide)
    assert net.conv.stem.kernel_size == (7, 7) and net.conv.stem.padding == (3, 3)
    # One cell's stem output reads the whole row it lies on, three cells either way of it.
    x = torch.zeros(1, 6, 7, 2)
    x[0, 2, 0, 0] = 1.0
    probe = torch.relu(net.conv.stem(x.permute(0, 3, 1, 2)))
    base = torch.relu(net.conv.stem(torch.zeros(1, 2, 6, 7)))
    assert not torch.allclose(probe[..., 2, 3], base[..., 2, 3])  # column 0 reaches column 3
    meta = policy_meta("connect_four_v3", wide, (6, 7, 2), 7)
    assert model_from_meta(meta) == wide
    old = dict(meta, model={k: v for k, v in meta["model"].items() if k != "stem_kernel"})
    assert model_from_meta(old).stem_kernel == 3
    with pytest.raises(ValueError, match="do not fit this model"):  # the kernel is part of the shape
        InferencePolicy((6, 7, 2), 7, dataclasses.replace(wide, stem_kernel=3)).load(state_dict_numpy(net), 1)
    with pytest.raises(ValueError, match="stem_kernel must be an odd"):
        ModelConfig(kind="conv", stem_kernel=4).check()


def test_weights_of_another_kind_are_refused_with_the_reason():
    conv_weights = state_dict_numpy(PolicyNet((6, 7, 2), 7, CONV))
    with pytest.raises(ValueError, match="do not fit this model"):
        InferencePolicy((6, 7, 2), 7, ModelConfig()).load(conv_weights, 1)


def test_checkpoints_name_a_change_of_model_kind():
    learner = Learner(C4, CONV, PPOConfig(batch_size=8, minibatch_size=8), LearnerConfig(device="cpu"))
    ckpt = decode_checkpoint(encode_checkpoint(Checkpoint(0, learner.state_dict(), model_spec(C4.name, C4.obs_shape, 7, CONV), {}, {})))
    check_compatible(ckpt, model_spec(C4.name, C4.obs_shape, 7, CONV))
    with pytest.raises(CheckpointError, match="model.kind: checkpoint 'conv', config 'mlp'"):
        check_compatible(ckpt, model_spec(C4.name, C4.obs_shape, 7, ModelConfig()))


def test_conv_needs_board_planes():
    with pytest.raises(ValueError, match="height x width x channels"):
        PolicyNet(18, 9, CONV)
    with pytest.raises(ConfigError, match="model.kind"):
        load_config(None, ["model.kind=transformer"])


def test_policy_files_written_before_model_kinds_still_load():
    old_meta = {"game": "tictactoe_v3", "hidden_sizes": [16], "obs_dim": 18, "num_actions": 9}
    assert model_from_meta(old_meta) == ModelConfig(hidden_sizes=(16,))


# --- schedules and minibatches ---------------------------------------------------------------


def test_linear_schedule_golden_values():
    assert linear_schedule(0.01, 0.1, 0, 100) == pytest.approx(0.01)
    assert linear_schedule(0.01, 0.1, 50, 100) == pytest.approx(0.0055)
    assert linear_schedule(0.01, 0.1, 100, 100) == pytest.approx(0.001)
    assert linear_schedule(0.01, 0.1, 500, 100) == pytest.approx(0.001)  # held after the end
    assert linear_schedule(0.01, 0.1, 500, 0) == 0.01  # no schedule


@pytest.mark.parametrize("n,mb", [(2048 + 31, 512), (512, 512), (100, 512), (1000, 300)])
def test_minibatches_cover_the_batch_once_in_near_equal_pieces(n, mb):
    pieces = minibatch_slices(n, mb)
    sizes = [s.stop - s.start for s in pieces]
    assert sum(sizes) == n and pieces[0].start == 0 and all(a.stop == b.start for a, b in zip(pieces, pieces[1:]))
    assert max(sizes) - min(sizes) <= 1
    assert min(sizes) >= min(mb, n)  # never a sliver at the end of an epoch
    assert len(pieces) == max(1, n // mb)


def _segment(t: int, version: int) -> "object":
    from learner.segment import Segment

    rng = np.random.default_rng(t)
    return Segment(0, 0, _board(t).reshape(t, -1), np.ones((t, 7), bool), rng.integers(0, 7, t), np.full(t, -np.log(7), np.float32),
                   np.zeros(t, np.float32), rng.choice([-1.0, 0.0, 1.0], t).astype(np.float32), np.ones(t, bool),
                   np.full(t, version, np.int64), 0.0)


def test_learner_follows_its_schedules_by_version_and_a_restored_learner_continues_them():
    cfg = PPOConfig(batch_size=40, minibatch_size=16, epochs=1, lr=1e-3, ent_coef=0.01,
                    schedule_versions=10, lr_end_factor=0.5, ent_end_factor=0.1, max_policy_lag=100)
    learner = Learner(C4, CONV, cfg, LearnerConfig(device="cpu"))
    seen = []
    for _ in range(6):
        learner.add([_segment(45, learner.version)])
        m = learner.update()
        seen.append((m["losses/lr"], m["losses/ent_coef"], m["losses/grad_steps"]))
    assert seen[0][:2] == pytest.approx((1e-3, 0.01))
    assert seen[5][:2] == pytest.approx((1e-3 * 0.75, 0.01 * 0.55))
    assert {s[2] for s in seen} == {2.0}  # 45 samples -> two minibatches of 22 and 23, not 16 + 16 + 13
    restored = Learner(C4, CONV, cfg, LearnerConfig(device="cpu"))
    restored.load_state_dict(learner.state_dict())
    restored.add([_segment(45, restored.version)])
    assert restored.update()["losses/lr"] == pytest.approx(1e-3 * 0.7)  # version 6 of 10


def test_a_rising_discount_follows_the_schedule_by_learner_version():
    assert discount_at(PPOConfig(gamma=0.9, gamma_end=0.99, schedule_versions=10), 5) == pytest.approx(0.945)
    assert discount_at(PPOConfig(gamma=0.9, gamma_end=0.99, schedule_versions=10), 50) == pytest.approx(0.99)
    assert discount_at(PPOConfig(gamma=0.9, schedule_versions=10), 5) == 0.9  # no gamma_end: constant
    cfg = PPOConfig(batch_size=40, minibatch_size=40, epochs=1, gamma=0.5, gamma_end=1.0, gae_lambda=1.0,
                    schedule_versions=2, max_policy_lag=100)
    learner = Learner(C4, CONV, cfg, LearnerConfig(device="cpu"))
    seen = []
    for _ in range(3):
        learner.add([_segment(40, learner.version)])
        seen.append(learner.update()["losses/gamma"])
    assert seen == pytest.approx([0.5, 0.75, 1.0])
    with pytest.raises(ConfigError, match="gamma_end needs ppo.schedule_versions"):
        load_config(None, ["ppo.gamma_end=0.99"])


def test_target_kl_stops_an_update_early():
    cfg = PPOConfig(batch_size=64, minibatch_size=16, epochs=8, lr=0.05, target_kl=1e-4, max_policy_lag=100)
    learner = Learner(C4, CONV, cfg, LearnerConfig(device="cpu"))
    learner.add([_segment(64, 0)])
    m = learner.update()
    assert m["losses/kl_stop"] == 1.0 and m["losses/grad_steps"] < 32


# --- opponents -----------------------------------------------------------------------------


def test_alphastar_mix_frequencies_fixed_seed():
    win_rates = {"a": 0.9, "b": 0.5, "c": 0.1}  # the learner beats a, is even with b, loses to c
    rng = np.random.default_rng(0)
    picks = [sample_alphastar(LEARNER_ID, win_rates, rng).player_id for _ in range(20_000)]
    freq = {k: picks.count(k) / len(picks) for k in ("a", "b", "c", LEARNER_ID)}
    # PFSP hard: weights 0.01, 0.25, 0.81; verification: b and c only (a is beaten 90% > 70%).
    pf = {"a": 0.01 / 1.07, "b": 0.25 / 1.07, "c": 0.81 / 1.07}
    ver = {"a": 0.0, "b": 0.25 / 1.06, "c": 0.81 / 1.06}
    shares = dict(ALPHASTAR_MIX)
    for k in ("a", "b", "c"):
        assert freq[k] == pytest.approx(shares["pfsp"] * pf[k] + shares["verification"] * ver[k], abs=0.01)
    assert freq[LEARNER_ID] == pytest.approx(shares["self_play"], abs=0.01)


def test_alphastar_with_nothing_forgotten_plays_itself_instead():
    rng = np.random.default_rng(1)
    picks = [choose_opponent("alphastar", LEARNER_ID, {"a": PoolEntry(0.0, 0.95)}, rng).player_id for _ in range(4000)]
    assert picks.count(LEARNER_ID) / len(picks) == pytest.approx(0.35 + 0.15, abs=0.03)


def test_a_new_snapshot_joins_at_the_pool_max_not_at_an_evaluation_only_reference():
    from league.config import LeagueConfig

    state = LeagueState.new(reference_ids=(RANDOM_ID,), eval_references=("tactical",))
    first = state.add_snapshot(0)
    for i in range(3):  # the learner beats random and v000000: both lose quality
        for opp in (RANDOM_ID, first.id):
            state.record(GameResult(f"g{i}{opp}", (LEARNER_ID, opp), (5, 0), (1.0, 0.0), 9, "train", 0.5, 0.0), LeagueConfig())
    pool = {p.id: p.quality for p in state.players.values() if p.kind == "snapshot" or p.id == RANDOM_ID}
    assert max(pool.values()) < 0 and state.players["tactical"].quality == 0.0
    second = state.add_snapshot(10)
    assert second.quality == pytest.approx(max(pool.values()))


# --- symmetric policies ----------------------------------------------------------------------


@pytest.mark.parametrize("shape,actions,symmetry,count", [((6, 7, 2), 7, "mirror", 1), ((3, 3, 2), 9, "dihedral", 7)])
def test_a_symmetric_policy_plays_every_orientation_of_a_board_alike(shape, actions, symmetry, count):
    from learner.arch import board_symmetries

    torch.manual_seed(0)
    net = PolicyNet(shape, actions, ModelConfig(kind="conv", channels=8, blocks=1, hidden_sizes=(8,), symmetry=symmetry))
    for p in net.parameters():
        p.data.normal_(0, 0.3)  # away from the near-uniform initialisation, so a difference would show
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 2, size=(6, *shape)).astype(np.float32).reshape(6, -1)
    mask = torch.from_numpy(rng.random((6, actions)) < 0.8)
    mask[:, 0] = True
    logits, values = net(torch.from_numpy(obs), mask)
    group = board_symmetries(symmetry, shape, actions)
    assert len(group) == count
    for obs_index, action_index in group:
        moved_mask = torch.zeros_like(mask)
        moved_mask[:, action_index] = mask  # legal moves travel with the board
        t_logits, t_values = net(torch.from_numpy(obs[:, obs_index]), moved_mask)
        assert torch.allclose(torch.softmax(logits, -1), torch.softmax(t_logits[:, action_index], -1), atol=1e-5)
        assert torch.allclose(values, t_values, atol=1e-5)


def test_symmetries_move_pieces_and_moves_together():
    from learner.arch import board_symmetries

    board = np.zeros((6, 7, 2), np.float32)
    board[5, 1, 0] = 1  # a piece at the bottom of column 1
    (obs_index, action_index), = board_symmetries("mirror", (6, 7, 2), 7)
    assert action_index == [6, 5, 4, 3, 2, 1, 0]
    assert board.reshape(-1)[obs_index].reshape(6, 7, 2)[5, 5, 0] == 1  # now in column 5
    cell = np.zeros((3, 3, 2), np.float32)
    cell[0, 1, 0] = 1  # cell 1 (row 0, column 1)
    for obs_index, action_index in board_symmetries("dihedral", (3, 3, 2), 9):
        assert cell.reshape(-1)[obs_index].reshape(9, 2)[action_index[1], 0] == 1
    with pytest.raises(ValueError, match="square board"):
        board_symmetries("dihedral", (6, 7, 2), 42)
    with pytest.raises(ValueError, match="cells"):
        board_symmetries("mirror", (6, 7, 2), 5)


def test_a_model_that_cannot_play_the_game_is_refused_before_anything_starts(tmp_path, capsys):
    from cluster.run.cli import main

    assert main(["train", "--config", "configs/tictactoe_smoke.yaml", "--run-dir", str(tmp_path / "r"),
                 "--set", "game.name=connect_four_v3", "--set", "model.kind=conv", "--set", "model.symmetry=dihedral"]) == 2
    err = capsys.readouterr().err
    assert "model.symmetry dihedral needs a square board; got 6 x 7 (game connect_four_v3)" in err
    assert not (tmp_path / "r").exists()  # nothing was written
