"""Leduc hold'em (actors/leduc.py): the game model against PettingZoo's own leduc_holdem_v4, and the
exact best response against hand-computed values and against play in the real game."""

from __future__ import annotations

import numpy as np
import pytest

from actors.leduc import (
    CALL,
    CHECK,
    FOLD,
    RANKS,
    apply,
    best_response,
    deal_probability,
    info_key,
    network_probs,
    observation,
    payoff,
    play_against,
    start,
    tabulate,
    uniform_random,
)


def test_the_model_matches_pettingzoos_game_move_by_move():
    """Random hands in leduc_holdem_v4: at every decision the model's observation and legal mask are
    the env's, and at the end its payoffs (in chips) are the env's rewards x 2."""
    from pettingzoo.classic import leduc_holdem_v4

    env = leduc_holdem_v4.env()
    rng = np.random.default_rng(3)
    for hand in range(300):
        env.reset(seed=hand)
        b, cards, public, rewards = None, [None, None], None, {}
        for agent in env.agent_iter():
            obs, reward, term, trunc, _ = env.last()
            seat = int(agent[-1])
            if term or trunc:
                rewards[seat] = reward
                env.step(None)
                continue
            b = start(seat) if b is None else b
            o, mask = obs["observation"], obs["action_mask"].astype(bool)
            cards[seat] = int(np.flatnonzero(o[:3])[0])
            public = int(np.flatnonzero(o[3:6])[0]) if o[3:6].any() else None
            mine, m = observation(b, seat, cards[seat], public)
            assert b.pointer == seat
            np.testing.assert_array_equal(mine, o)
            np.testing.assert_array_equal(m, mask)
            action = int(rng.choice(np.flatnonzero(mask)))
            b = apply(b, action)
            env.step(action)
        assert b.over
        if None in cards:  # a fold before one seat moved: its card is in the env only
            players = env.unwrapped.env.game.players
            cards = [c if c is not None else "JQK".index(players[s].hand.rank) for s, c in enumerate(cards)]
        won = payoff(b, tuple(cards), public)
        assert won == pytest.approx((2 * rewards[0], 2 * rewards[1]))
    env.close()


def test_always_folding_gives_away_one_and_a_half_chips_a_hand():
    """By hand: in the small blind it folds at once and loses its 1 chip; in the big blind it folds
    to the small blind's first move and loses its 2; the blinds are drawn at random: (1 + 2) / 2."""
    fold = lambda obs, mask: np.eye(4)[FOLD]  # noqa: E731
    br = best_response([fold])
    assert br.value == pytest.approx(1.5)
    assert br.seat_values[0] == pytest.approx(br.seat_values[1])


def _station(obs, mask):
    return np.eye(4)[CALL if mask[CALL] else CHECK]


def test_a_calling_station_against_its_closed_form_value():
    """A player that never raises nor folds is exploited by betting by hand strength: the closed form
    (computed here from the showdown odds alone) equals the tree walk."""
    total = 0.0
    for r in range(RANKS):
        joint = {}  # (opp card, public) -> probability, given r
        for c in range(RANKS):
            for p in range(RANKS):
                joint[c, p] = deal_probability(c, [r]) * deal_probability(p, [r, c])
        def sign(c, p):
            won = payoff(apply(apply(start(0), CALL), CHECK), (r, c), p)[0]
            return np.sign(won)
        edge = sum(q * sign(c, p) for (c, p), q in joint.items())
        round2 = sum(4 * max(0.0, sum(joint[c, p] * sign(c, p) for c in range(RANKS))) for p in range(RANKS))
        as_sb = max(-1.0, 2 * edge, 4 * edge)
        as_bb = max(2 * edge, 4 * edge)
        total += deal_probability(r, []) * (0.5 * as_sb + 0.5 * as_bb + round2)
    assert best_response([_station]).value == pytest.approx(total)


def test_uniform_random_exploitability_and_its_best_response_in_the_real_game():
    """The uniform random policy gives away 2.943 chips a hand (238.4/81, from the tree walk, and
    checked here by playing its best response in PettingZoo's game: within 4 standard errors)."""
    br = best_response([uniform_random])
    assert br.value == pytest.approx(238.4 / 81, abs=1e-9)
    won = play_against(br, [uniform_random], 2000, seed=5)
    assert abs(won.mean() - br.value) < 4 * won.std() / np.sqrt(len(won))


def test_a_mixture_drawn_per_hand_against_its_best_response_in_the_real_game():
    """The opponent draws one policy per hand; one best response serves the whole mixture, so it wins
    at most the weighted mean of what each part's own best response wins, and playing it in the real
    game, drawing the opponent per hand, gives the computed value (within 4 standard errors)."""
    fold = lambda obs, mask: np.eye(4)[FOLD]  # noqa: E731
    parts = [best_response([p]).value for p in (fold, uniform_random)]
    br = best_response([fold, uniform_random], [0.25, 0.75])
    assert br.value <= 0.25 * parts[0] + 0.75 * parts[1] + 1e-9
    assert best_response([fold, uniform_random], [1.0, 0.0]).value == pytest.approx(parts[0])
    won = play_against(br, [fold, uniform_random], 2000, seed=6, weights=[0.25, 0.75])
    assert abs(won.mean() - br.value) < 4 * won.std() / np.sqrt(len(won))


def test_a_network_policy_tabulates_to_valid_probabilities():
    from learner.arch import ModelConfig
    from learner.model import InferencePolicy

    policy = InferencePolicy((36,), 4, ModelConfig(hidden_sizes=(16,)))
    table = tabulate(network_probs(policy), batched=True)
    for key, probs in table.probs.items():
        assert probs.sum() == pytest.approx(1.0) and all(probs[a] == 0 for a in range(4) if a not in key[4])
    assert 0.0 < best_response([table]).value < 14.0
    obs, mask = observation(start(0), 0, 2, None)
    assert info_key(obs, mask) in table.probs
