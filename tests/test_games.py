"""Game adapter (actors/games.py) with real PettingZoo games and tiny custom ones."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from gymnasium.spaces import Discrete

from actors.games import GameError, GameSlot, load_game, resolve_game
from actors.parallel_games import ParallelSlot

# A custom two-player game module (mask in infos, not in the observation) and a three-player one.
# They are written to disk and imported by module path, exactly as a user's own game would be.
CUSTOM_GAMES = textwrap.dedent(
    '''
    import numpy as np
    from gymnasium.spaces import Box, Discrete
    from pettingzoo import AECEnv


    class Nim(AECEnv):
        """Take 1 or 2 from a pile; whoever takes the last one wins. Action 0 is never legal."""

        metadata = {"name": "nim"}

        def __init__(self, pile=5):
            self.start_pile = pile
            self.possible_agents = ["first", "second"]

        def action_space(self, agent):
            return Discrete(3)

        def observation_space(self, agent):
            return Box(0, 100, (1,), np.float32)

        def reset(self, seed=None, options=None):
            self.pile = self.start_pile
            self.agents = list(self.possible_agents)
            self.agent_selection = "first"
            self.rewards = {a: 0.0 for a in self.agents}
            self._cumulative_rewards = {a: 0.0 for a in self.agents}
            self.terminations = {a: False for a in self.agents}
            self.truncations = {a: False for a in self.agents}
            self._set_infos()

        def _set_infos(self):
            mask = np.array([False, self.pile >= 1, self.pile >= 2])
            self.infos = {a: {"action_mask": mask} for a in self.agents}

        def observe(self, agent):
            return np.array([self.pile], np.float32)

        def step(self, action):
            me = self.agent_selection
            other = "second" if me == "first" else "first"
            self.rewards = {a: 0.0 for a in self.agents}
            self.pile -= int(action)
            if self.pile == 0:
                self.rewards = {me: 1.0, other: -1.0}
                self.terminations = {a: True for a in self.agents}
            self.agent_selection = other
            self._set_infos()


    class ThreeWay(AECEnv):
        metadata = {"name": "three"}
        possible_agents = ["a", "b", "c"]

        def action_space(self, agent):
            return Discrete(2)


    def make_nim(pile=5):
        return Nim(pile)


    def make_three():
        return ThreeWay()
    '''
)


@pytest.fixture
def custom_games(tmp_path, monkeypatch):
    pkg = tmp_path / "selfplay_testgames"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "custom.py").write_text(CUSTOM_GAMES)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "selfplay_testgames.custom"
    for name in ("selfplay_testgames.custom", "selfplay_testgames"):
        sys.modules.pop(name, None)


# --- resolving ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,agents,obs_shape,num_actions",
    [
        ("tictactoe_v3", ("player_1", "player_2"), (3, 3, 2), 9),
        ("connect_four_v3", ("player_0", "player_1"), (6, 7, 2), 7),
        ("pettingzoo.classic.tictactoe_v3", ("player_1", "player_2"), (3, 3, 2), 9),
        ("pettingzoo.classic.tictactoe_v3:env", ("player_1", "player_2"), (3, 3, 2), 9),
    ],
)
def test_builtin_and_module_path_names_resolve(name, agents, obs_shape, num_actions):
    make_slot, spec = load_game(name)
    assert (spec.name, spec.agents, spec.obs_shape, spec.num_actions) == (name, agents, obs_shape, num_actions)
    assert spec.obs_dim == int(np.prod(obs_shape))
    slot = make_slot()
    slot.reset(seed=1)
    assert slot.obs.shape == (spec.obs_dim,) and slot.obs.dtype == np.float32
    assert slot.mask.shape == (num_actions,) and slot.mask.all()  # opening position: every move legal


def test_custom_module_factory_with_mask_in_infos(custom_games):
    make_slot, spec = load_game(f"{custom_games}:make_nim", {"pile": 4})
    assert spec.agents == ("first", "second") and spec.num_actions == 3 and spec.obs_shape == (1,)
    slot = make_slot()
    slot.reset(seed=0)
    np.testing.assert_array_equal(slot.mask, [False, True, True])
    with pytest.raises(GameError, match="illegal action 0"):
        slot.step(0)
    assert slot.step(2) == [0.0, 0.0]  # first: 4 -> 2
    assert slot.seat == 1 and slot.obs.tolist() == [2.0]
    assert slot.step(2) == [-1.0, 1.0]  # second takes the last two and wins
    assert slot.over and slot.scores() == (0.0, 1.0) and slot.length == 2


def test_unknown_builtin_name_gives_a_helpful_error():
    with pytest.raises(GameError) as e:
        resolve_game("no_such_game_v1")
    msg = str(e.value)
    assert "unknown game 'no_such_game_v1'" in msg
    assert "connect_four_v3" in msg  # tells the user what a valid name looks like


def test_unknown_module_path_gives_a_helpful_error():
    with pytest.raises(GameError, match="unknown game 'nosuchpkg_xyz.game'"):
        resolve_game("nosuchpkg_xyz.game")


def test_missing_factory_attribute_is_named(custom_games):
    with pytest.raises(GameError, match="no attribute 'nope'"):
        resolve_game(f"{custom_games}:nope")


def test_game_with_three_agents_is_three_sides(custom_games):
    """Agents that share no team prefix play free-for-all: each its own side (actors/teams.py)."""
    slot = GameSlot(resolve_game(f"{custom_games}:make_three"), name="three")
    assert slot.sides == ((0,), (1,), (2,)) and slot.num_sides == 3


def test_game_with_one_side_is_refused(custom_games):
    with pytest.raises(GameError, match="two or more"):
        load_game(f"{custom_games}:make_three", sides={"all": ["a", "b", "c"]})


def test_bad_kwargs_are_reported_as_game_error():
    with pytest.raises(GameError, match="rejected its kwargs"):
        load_game("tictactoe_v3", {"no_such_option": 1})


# --- masks and legal play ----------------------------------------------------------------


def _tictactoe_legal(obs: np.ndarray) -> np.ndarray:
    return obs.reshape(9, 2).sum(1) == 0  # a cell is legal iff neither player has a piece in it


@pytest.mark.parametrize("name,games", [("tictactoe_v3", 40), ("connect_four_v3", 10), ("texas_holdem_v4", 20)])
def test_random_legal_play_never_hits_an_illegal_move(name, games):
    make_slot, spec = load_game(name)
    slot = make_slot()
    rng = np.random.default_rng(0)
    for g in range(games):
        slot.reset(seed=g)
        steps = 0
        while not slot.over:
            assert slot.mask.any()
            if name == "tictactoe_v3":
                np.testing.assert_array_equal(slot.mask, _tictactoe_legal(slot.raw_obs))
            slot.step(int(rng.choice(np.flatnonzero(slot.mask))))
            steps += 1
            assert steps < 500
        assert slot.length == steps
        assert sum(slot.scores()) == 1.0 and set(slot.scores()) <= {0.0, 0.5, 1.0}
        if name == "tictactoe_v3":
            assert 5 <= steps <= 9


def test_illegal_action_raises_and_leaves_the_game_unchanged():
    make_slot, _ = load_game("tictactoe_v3")
    slot = make_slot()
    slot.reset(seed=0)
    slot.step(4)
    seat, obs = slot.seat, slot.obs.copy()
    with pytest.raises(GameError, match="illegal action 4"):
        slot.step(4)
    assert slot.seat == seat and slot.length == 1
    np.testing.assert_array_equal(slot.obs, obs)


# --- reward attribution ------------------------------------------------------------------


def _play(slot: GameSlot, moves: list[int]) -> list[tuple[int, list[float]]]:
    slot.reset(seed=0)
    out = []
    for a in moves:
        seat = slot.seat
        out.append((seat, slot.step(a)))
    return out


def test_tictactoe_first_player_win_is_attributed_on_the_winning_move():
    slot = load_game("tictactoe_v3")[0]()
    log = _play(slot, [0, 3, 1, 4, 2])  # seat 0 completes 0-1-2
    assert [s for s, _ in log] == [0, 1, 0, 1, 0]
    assert all(r == [0.0, 0.0] for _, r in log[:-1])
    assert log[-1][1] == [1.0, -1.0]  # the loser's -1 arrives on the winner's move
    assert slot.over and slot.scores() == (1.0, 0.0) and slot.returns == [1.0, -1.0] and slot.length == 5


def test_tictactoe_second_player_win():
    slot = load_game("tictactoe_v3")[0]()
    log = _play(slot, [0, 3, 1, 4, 8, 5])  # seat 1 completes 3-4-5
    assert log[-1] == (1, [-1.0, 1.0])
    assert all(r == [0.0, 0.0] for _, r in log[:-1])
    assert slot.over and slot.scores() == (0.0, 1.0)


def test_tictactoe_draw():
    slot = load_game("tictactoe_v3")[0]()
    log = _play(slot, [0, 1, 2, 4, 3, 5, 7, 6, 8])
    assert all(r == [0.0, 0.0] for _, r in log)
    assert slot.over and slot.scores() == (0.5, 0.5) and slot.length == 9


def test_reset_clears_the_previous_game():
    slot = load_game("tictactoe_v3")[0]()
    _play(slot, [0, 3, 1, 4, 2])
    slot.reset(seed=1)
    assert not slot.over and slot.returns == [0.0, 0.0] and slot.length == 0 and slot.mask.all() and slot.seat == 0


# --- parallel games ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rps_v2", "pettingzoo.classic.rps_v2:parallel_env"])
def test_parallel_rock_paper_scissors_offers_its_moves_one_at_a_time_too(name):
    """ParallelSlot's one-decision surface (evaluators, human play) is what PettingZoo's AEC
    conversion gives: the seats of a step in turn, the step's rewards with its last move."""
    make_slot, spec = load_game(name, {"max_cycles": 3})
    assert spec.num_actions == 3 and len(spec.agents) == 2
    slot = make_slot()
    assert isinstance(slot, ParallelSlot)
    slot.reset(seed=0)
    seats, rewards = [], []
    while not slot.over:
        seats.append(slot.seat)
        rewards.append(slot.step(0 if slot.seat == 0 else 1))  # rock vs paper: seat 1 wins each round
    assert seats == [0, 1] * 3
    assert rewards == [[0.0, 0.0], [-1.0, 1.0]] * 3
    assert slot.returns == [-3.0, 3.0] and slot.scores() == (0.0, 1.0)
    assert slot.length == 6


def test_a_parallel_game_is_stepped_with_every_live_agents_action_at_once():
    from pettingzoo.utils.env import ParallelEnv

    assert isinstance(resolve_game("pettingzoo.classic.rps_v2:parallel_env")(), ParallelEnv)
    make_slot, _ = load_game("rps_v2", {"max_cycles": 2})
    slot = make_slot()
    slot.reset(seed=0)
    assert slot.decisions == [0, 1]
    obs, mask, raw = slot.view(1)
    assert mask.all() and obs.dtype == np.float32
    assert slot.decide(1, 2) is None  # scissors; the step waits for seat 0
    assert slot.decisions == [0]
    with pytest.raises(GameError, match="does not move now"):
        slot.decide(1, 0)
    assert slot.decide(0, 0) == [1.0, -1.0]  # rock beats scissors
    assert slot.decisions == [0, 1] and not slot.over and slot.truncated == {}
    slot.decide(0, 1)
    assert slot.decide(1, 1) == [0.0, 0.0]  # paper, paper
    # rps ends by truncation at max_cycles: both agents' final observations are kept for bootstrapping
    assert slot.over and sorted(slot.truncated) == [0, 1]
    assert all(v.dtype == np.float32 for v in slot.truncated.values())


def test_an_aec_game_cut_by_its_time_limit_keeps_every_agents_final_observation():
    make_slot, _ = load_game("pettingzoo.classic.rps_v2:env", {"max_cycles": 2})
    slot = make_slot()
    assert type(slot) is GameSlot
    slot.reset(seed=0)
    while not slot.over:
        assert slot.truncated == {}
        slot.step(0)
    assert sorted(slot.truncated) == [0, 1]
    slot.reset(seed=1)
    assert slot.truncated == {}
