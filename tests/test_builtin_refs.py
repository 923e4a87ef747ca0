"""The built-in references for hold'em (actors/poker_refs.py) and MPE (actors/mpe_refs.py): the
observation layouts they read, checked against the real environments, and that they play legally
and better than random."""

from __future__ import annotations

import numpy as np
import pytest

from actors.evaluate import Agent, play_match
from actors.games import load_game
from actors.poker_refs import MIDDLING, STRONG, WEAK, category, hand_strength, holdem_strength
from actors.role_match import Seat, role_match
from actors.scripted import random_legal, references_for

H, S, D, C = 1, 0, 2, 3  # RLCard's suits in card2index order: S, H, D, C


def test_hand_categories():
    assert category([(14, S), (14, H), (3, D), (9, C), (12, S)]) == 1
    assert category([(14, S), (14, H), (3, D), (3, C), (12, S)]) == 2
    assert category([(5, S), (6, H), (7, D), (8, C), (9, S)]) == 4
    assert category([(14, S), (2, H), (3, D), (4, C), (5, S)]) == 4  # the wheel
    assert category([(2, S), (6, S), (9, S), (11, S), (13, S), (4, H)]) == 5
    assert category([(9, S), (9, H), (9, D), (4, C), (4, S)]) == 6
    assert holdem_strength([(14, S), (13, H)]) == STRONG
    assert holdem_strength([(7, S), (7, H)]) == MIDDLING
    assert holdem_strength([(7, S), (2, H)]) == WEAK


def test_holdem_observation_layout_as_the_bot_reads_it():
    """No-limit: 52 card bits (the mover's two cards before the flop), its chips at 52 and the most
    anyone has in at 53; the blinds are 1 and 2 with two players."""
    from pettingzoo.classic import texas_holdem_no_limit_v6

    env = texas_holdem_no_limit_v6.env()
    env.reset(seed=1)
    obs = env.observe(env.agent_selection)["observation"]
    assert obs.shape == (54,) and obs[:52].sum() == 2
    assert sorted([obs[52], obs[53]]) in ([1.0, 2.0], [2.0, 2.0])
    game = env.unwrapped.env.game
    hand = game.players[game.game_pointer].hand
    ranks = "A23456789TJQK"
    idx = sorted("SHDC".index(c.suit) * 13 + ranks.index(c.rank) for c in hand)
    assert np.flatnonzero(obs[:52]).tolist() == idx


@pytest.mark.parametrize("game,kwargs", [("leduc_holdem_v4", {}), ("texas_holdem_v4", {}), ("texas_holdem_no_limit_v6", {}),
                                         ("texas_holdem_no_limit_v6", {"num_players": 4})])
def test_the_hand_strength_bot_plays_legally(game, kwargs):
    make_slot, spec = load_game(game, kwargs)
    assert references_for(game, spec)["hand_strength"] is hand_strength
    r = play_match(make_slot, Agent(scripted=hand_strength), Agent(scripted=random_legal), 60, seed=2)  # illegal: GameError
    assert r.games == 60


def test_the_hand_strength_bot_beats_random_at_limit_holdem():
    make_slot, _ = load_game("texas_holdem_v4")
    r = play_match(make_slot, Agent(scripted=hand_strength), Agent(scripted=random_legal), 200, seed=3)
    assert r.confidence_interval()[0] > 0.6


def test_mpe_observation_layouts_as_the_heuristics_read_them():
    from mpe2 import simple_tag_v3, simple_world_comm_v3

    env = simple_tag_v3.parallel_env()
    obs, _ = env.reset(seed=0)
    world = env.unwrapped.world
    pos = {a.name: a.state.p_pos for a in world.agents}
    np.testing.assert_allclose(obs["adversary_0"][12:14], pos["agent_0"] - pos["adversary_0"], atol=1e-6)
    prey = obs["agent_0"]
    for k in range(3):
        np.testing.assert_allclose(prey[8 + 2 * k : 10 + 2 * k], pos[f"adversary_{k}"] - pos["agent_0"], atol=1e-6)
    env = simple_world_comm_v3.parallel_env()
    obs, _ = env.reset(seed=0)
    world = env.unwrapped.world
    pos = {a.name: a.state.p_pos for a in world.agents}
    for who in ("adversary_1", "leadadversary_0"):
        expect = np.concatenate([pos["agent_0"] - pos[who], pos["agent_1"] - pos[who]])
        assert np.allclose(obs[who][20:24], expect, atol=1e-6) or not obs[who][20:24].any()  # zeros: hidden in a forest
    food = [f.state.p_pos - pos["agent_0"] for f in world.food]
    np.testing.assert_allclose(obs["agent_0"][6:10], np.concatenate(food), atol=1e-6)
    np.testing.assert_allclose(obs["agent_0"][16:18], pos["adversary_0"] - pos["agent_0"], atol=1e-6)


def test_references_per_role_and_role_less_games_unchanged():
    _, spec = load_game("simple_tag_v3")
    assert sorted(references_for("simple_tag_v3", spec.role("adversary"))) == ["chaser", "random"]
    assert sorted(references_for("simple_tag_v3", spec.role("agent"))) == ["evader", "random"]
    assert list(references_for("simple_tag_v3", spec)) == ["random"]
    assert list(references_for("simple_tag_v3")) == ["random"]


def test_chasers_catch_more_than_random_predators_and_evaders_are_caught_less():
    make_slot, spec = load_game("simple_tag_v3", {"max_cycles": 50})

    def catches(predator: str, prey: str) -> float:
        seats = {
            "adversary": Seat("adversary/" + predator, -1, Agent(scripted=references_for(spec.name, spec.role("adversary"))[predator])),
            "agent": Seat("agent/" + prey, -1, Agent(scripted=references_for(spec.name, spec.role("agent"))[prey])),
        }
        return role_match(make_slot, spec, seats, 6, seed=1).mean_return["adversary"] / 10.0

    assert catches("chaser", "random") > 3 * max(catches("random", "random"), 1.0)
    assert catches("chaser", "evader") < catches("chaser", "random") / 2
