"""Our own connect four (actors/native_games.py) against PettingZoo's connect_four_v3, move by move."""

from __future__ import annotations

import numpy as np
import pytest

from actors.games import GameError, GameSlot, load_game
from actors.native_games import ConnectFourSlot
from actors.scripted import connect_four_tactical


def _pettingzoo_slot() -> GameSlot:
    make_slot, _ = load_game("connect_four_v3", native=False)
    slot = make_slot()
    assert isinstance(slot, GameSlot)
    return slot


def _same_state(ours: ConnectFourSlot, theirs: GameSlot, where: str) -> None:
    assert ours.over == theirs.over, where
    assert ours.length == theirs.length and ours.returns == theirs.returns, where
    if ours.over:
        assert ours.scores() == theirs.scores(), where
        return
    assert ours.seat == theirs.seat, where
    assert ours.raw_obs.dtype == theirs.raw_obs.dtype and ours.raw_obs.shape == theirs.raw_obs.shape, where
    np.testing.assert_array_equal(ours.raw_obs, theirs.raw_obs, err_msg=where)
    np.testing.assert_array_equal(ours.obs, theirs.obs, err_msg=where)
    assert ours.obs.dtype == theirs.obs.dtype == np.float32, where
    np.testing.assert_array_equal(ours.mask, theirs.mask, err_msg=where)


@pytest.mark.parametrize("mover", ["random", "tactical"])
def test_native_connect_four_plays_exactly_as_pettingzoo(mover):
    """Random games end mostly in long, scattered positions; games between two tactical players
    (win or block, else random) end in many more wins on every kind of line and in full boards."""
    rng = np.random.default_rng(7)
    ours, theirs = ConnectFourSlot(), _pettingzoo_slot()
    outcomes = {"first": 0, "second": 0, "draw": 0}
    games = 600 if mover == "random" else 300
    for g in range(games):
        ours.reset(seed=g)
        theirs.reset(seed=g)
        _same_state(ours, theirs, f"game {g} start")
        while not theirs.over:
            if mover == "random":
                action = int(rng.choice(np.flatnonzero(theirs.mask)))
            else:
                action = connect_four_tactical(theirs.raw_obs, theirs.mask, rng)
            r_theirs = theirs.step(action)
            r_ours = ours.step(action)
            assert r_ours == r_theirs, f"game {g} move {theirs.length}"
            _same_state(ours, theirs, f"game {g} move {theirs.length}")
        s = ours.scores()
        outcomes["draw" if s == (0.5, 0.5) else "first" if s[0] == 1.0 else "second"] += 1
    assert outcomes["first"] > 0 and outcomes["second"] > 0
    if mover == "tactical":
        assert outcomes["draw"] > 0  # full boards were compared too


def test_load_game_serves_the_native_connect_four_unless_told_not_to():
    make_slot, spec = load_game("connect_four_v3")
    assert isinstance(make_slot(), ConnectFourSlot)
    assert spec == load_game("connect_four_v3", native=False)[1]
    assert isinstance(load_game("connect_four_v3", native=False)[0](), GameSlot)
    # kwargs belong to PettingZoo's environment (render modes...): they select it.
    assert isinstance(load_game("connect_four_v3", {"render_mode": None})[0](), GameSlot)
    assert isinstance(load_game("tictactoe_v3")[0](), GameSlot)  # no native tic-tac-toe


def test_native_connect_four_refuses_illegal_moves():
    slot = ConnectFourSlot()
    slot.reset()
    for _ in range(6):
        slot.step(3)
    assert not slot.mask[3]
    with pytest.raises(GameError, match="illegal action 3"):
        slot.step(3)
    with pytest.raises(GameError, match="illegal action 9"):
        slot.step(9)
    slot.reset()
    for a in (0, 1, 0, 1, 0, 1, 0):  # seat 0 stacks four in column 0
        slot.step(a)
    assert slot.over and slot.scores() == (1.0, 0.0)
    with pytest.raises(GameError, match="illegal action"):
        slot.step(2)  # the game is over
