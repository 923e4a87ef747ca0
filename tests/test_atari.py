"""Atari games as actors/atari.py builds them: stepped directly, with a frame skip (real ALE emulator).

Volleyball pong, four players from RAM: the team game configs/volleyball_pong.yaml trains."""

from __future__ import annotations

import numpy as np
import pytest

from tests.needs import needs

needs("multi_agent_ale_py", "the Atari games need pettingzoo[atari] (the test extra installs it)")
needs("ale_py", "the Atari ROMs ship with ale-py (the test extra installs it)")

from actors.atari import ale_roms  # noqa: E402 - after the skip above
from actors.games import GameError, load_game  # noqa: E402
from actors.game_names import resolve_game  # noqa: E402

GAME = "volleyball_pong_v3"


def _pettingzoos_own(max_cycles: int):
    """PettingZoo's parallel_env as PettingZoo builds it (its AEC round trip and wrappers)."""
    from pettingzoo.atari import volleyball_pong_v3

    return volleyball_pong_v3.parallel_env(obs_type="ram", max_cycles=max_cycles, auto_rom_install_path=ale_roms())


def test_direct_stepping_matches_pettingzoos_parallel_env_frame_by_frame():
    ref = _pettingzoos_own(max_cycles=600)
    fast = resolve_game(GAME)(obs_type="ram", max_cycles=600, agent_indicator=False)
    assert type(fast).__name__ == "AtariGame"
    ref.reset(seed=3)
    fast.reset(seed=3)
    rng = np.random.default_rng(0)
    frames = points = 0
    while ref.agents:
        actions = {a: int(rng.integers(6)) for a in ref.agents}
        want, got = ref.step(actions), fast.step(actions)
        frames += 1
        assert [set(d) for d in want] == [set(d) for d in got], frames
        for agent in want[0]:
            np.testing.assert_array_equal(want[0][agent], got[0][agent])
        assert {a: float(r) for a, r in want[1].items()} == got[1], frames
        assert (want[2], want[3]) == (got[2], got[3]), frames
        assert ref.agents == fast.agents, frames
        points += sum(1 for r in want[1].values() if r)
    assert frames == 600 and fast.agents == []  # the game ends by truncation in both
    assert points > 0  # the comparison covered rewarded frames, not only quiet ones


def test_frameskip_plays_each_decision_for_k_frames_and_sums_the_rewards():
    make = resolve_game(GAME)
    each = make(obs_type="ram", max_cycles=402)
    skip4 = make(obs_type="ram", max_cycles=402, frameskip=4)  # both with the agent indicator, on by default
    each.reset(seed=5)
    skip4.reset(seed=5)
    rng = np.random.default_rng(1)
    decisions = rewarded = 0
    while skip4.agents:
        actions = {a: int(rng.integers(6)) for a in skip4.agents}
        got = skip4.step(actions)
        summed = dict.fromkeys(actions, 0.0)
        for _ in range(4):
            want = each.step(actions)
            for a, r in want[1].items():
                summed[a] += float(r)
            if not each.agents:
                break
        decisions += 1
        assert got[1] == summed, decisions
        for agent in got[0]:
            np.testing.assert_array_equal(got[0][agent], want[0][agent])
        assert skip4.agents == each.agents
        rewarded += any(summed.values())
    # 402 frames: 100 decisions of 4 frames, then one cut short after 2 by max_cycles.
    assert decisions == 101 and each.agents == []
    assert rewarded > 0


def test_each_agent_sees_which_player_it_is():
    """All four players observe the same RAM; a network they share must be told whose move it picks."""
    game = resolve_game(GAME)(obs_type="ram")
    observations, _ = game.reset(seed=0)
    for _ in range(3):
        for i, agent in enumerate(game.possible_agents):
            obs = observations[agent]
            assert obs.shape == (132,) == game.observation_space(agent).shape == game.observation_spaces[agent].shape
            np.testing.assert_array_equal(obs[:128], observations["first_0"][:128])  # the shared RAM
            np.testing.assert_array_equal(obs[128:], np.eye(4, dtype=np.uint8)[i] * 255)
        observations = game.step(dict.fromkeys(game.agents, 2))[0]
    image = resolve_game(GAME)(obs_type="grayscale_image")
    observations, _ = image.reset(seed=0)
    assert observations["third_0"].shape == (210, 160, 5) and (observations["third_0"][..., 3] == 255).all()
    assert (observations["third_0"][..., [1, 2, 4]] == 0).all()


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4", True])
def test_a_frameskip_that_is_not_a_whole_number_from_1_is_refused_by_name(bad):
    with pytest.raises(GameError, match="frameskip must be a whole number >= 1"):
        load_game(GAME, {"obs_type": "ram", "frameskip": bad})


def test_a_non_boolean_agent_indicator_is_refused_by_name():
    with pytest.raises(GameError, match="agent_indicator must be true or false"):
        load_game(GAME, {"obs_type": "ram", "agent_indicator": "yes"})


def test_a_team_game_with_frameskip_plays_to_its_end_through_the_slot():
    sides = {"odd": ["first_0", "third_0"], "even": ["second_0", "fourth_0"]}
    make_slot, spec = load_game(GAME, {"obs_type": "ram", "max_cycles": 200, "frameskip": 4}, sides=sides)
    assert spec.num_sides == 2 and spec.obs_shape == (132,)  # 128 bytes of RAM, then which of 4 players
    slot = make_slot()
    slot.reset(seed=0)
    rng = np.random.default_rng(2)
    steps = 0
    while not slot.over:
        for seat in list(slot.decisions):
            slot.decide(seat, int(rng.integers(spec.num_actions)))
        steps += 1
    assert steps == 50  # 200 frames, 4 a decision
    assert all(0.0 <= x <= 1.0 for x in slot.obs)  # RAM bytes scaled to [0, 1]
