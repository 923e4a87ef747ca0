"""Sides and teams (actors/teams.py): the side mapping, OpenAI Five's team rewards, and the rollout
loop on a scripted team game (tests/team_games.py) and on four-player hold'em."""

from __future__ import annotations

import numpy as np
import pytest

from actors.games import GameError, load_game
from actors.rollout import RolloutWorker
from actors.scripted import random_legal
from actors.teams import SideError, map_sides, placement_scores, shaper_for, team_rewards
from cluster.config import Config
from league.league import LeagueState
from league.records import LEARNER_ID, RANDOM_ID
from tests.test_rollout import HIDDEN, FakeLeague, FakeParams, ListResults, ListSink

RELAY = "tests.team_games:relay"


# --- the side mapping ----------------------------------------------------------------------


def test_default_sides_group_by_prefix_or_give_each_agent_its_own():
    assert map_sides(("player_0", "player_1")) == (("player_0", "player_1"), ((0,), (1,)))
    names, sides = map_sides(("player_0", "player_1", "player_2", "player_3"))
    assert sides == ((0,), (1,), (2,), (3,))  # one prefix: free-for-all
    names, sides = map_sides(("adversary_0", "adversary_1", "adversary_2", "agent_0"))
    assert names == ("adversary", "agent") and sides == ((0, 1, 2), (3,))  # simple_tag's roles
    assert map_sides(("red_0", "blue_0", "red_1", "blue_1"))[1] == ((0, 2), (1, 3))


def test_explicit_sides_cover_every_agent_once():
    agents = ("first_0", "second_0", "third_0", "fourth_0")
    names, sides = map_sides(agents, {"a": ["first_0", "third_0"], "b": ["second_0", "fourth_0"]})
    assert names == ("a", "b") and sides == ((0, 2), (1, 3))
    with pytest.raises(SideError, match="without a side"):
        map_sides(agents, {"a": ["first_0", "third_0"], "b": ["second_0"]})
    with pytest.raises(SideError, match="more than one side"):
        map_sides(agents, {"a": ["first_0", "third_0"], "b": ["third_0", "second_0", "fourth_0"]})
    with pytest.raises(SideError, match="names"):
        map_sides(agents, {"a": ["nobody"], "b": list(agents)})
    with pytest.raises(SideError, match="two or more"):
        map_sides(agents, {"all": list(agents)})


def test_a_game_is_loaded_with_its_sides():
    _, spec = load_game(RELAY)
    assert spec.agents == ("red_0", "blue_0", "red_1", "blue_1") and spec.sides == ((0, 2), (1, 3))
    _, spec = load_game("texas_holdem_no_limit_v6", {"num_players": 4})
    assert spec.num_sides == 4 and spec.obs_shape == (54,)
    with pytest.raises(GameError, match="without a side"):
        load_game(RELAY, sides={"red": ["red_0", "red_1"]})


# --- team rewards: golden values -----------------------------------------------------------


def test_team_spirit_blends_own_and_team_mean_reward():
    side_of = np.array([0, 1, 0, 1])
    r = np.array([2.0, 0.0, 0.0, 1.0])  # red_0 earned 2, blue_1 earned 1
    assert team_rewards(r, side_of, 2, 0.0, False).tolist() == [2.0, 0.0, 0.0, 1.0]  # selfish
    assert team_rewards(r, side_of, 2, 1.0, False).tolist() == [1.0, 0.5, 1.0, 0.5]  # fully shared
    # tau = 0.3: red_0 0.7*2 + 0.3*1 = 1.7, blue_0 0 + 0.3*0.5 = 0.15, red_1 0.3, blue_1 0.7 + 0.15
    assert team_rewards(r, side_of, 2, 0.3, False) == pytest.approx([1.7, 0.15, 0.3, 0.85])


def test_zero_sum_subtracts_the_enemy_teams_mean():
    side_of = np.array([0, 1, 0, 1])
    r = np.array([2.0, 0.0, 0.0, 1.0])
    # team means: red 1, blue 0.5; tau = 0.3 then minus the enemy's mean
    shaped = team_rewards(r, side_of, 2, 0.3, True)
    assert shaped == pytest.approx([0.7 * 2 + 0.3 - 0.5, 0.15 - 1.0, 0.3 - 0.5, 0.85 - 1.0])
    # with tau = 1 the teams' rewards sum to zero
    shaped = team_rewards(r, side_of, 2, 1.0, True)
    assert shaped.sum() == pytest.approx(0.0) and shaped.tolist() == [0.5, -0.5, 0.5, -0.5]
    # three sides of one: each minus the mean of the other two
    assert team_rewards(np.array([3.0, 0.0, 1.0]), np.arange(3), 3, 1.0, True) == pytest.approx([2.5, -2.0, -0.5])


def test_two_player_games_are_not_shaped():
    assert shaper_for(((0,), (1,)), 1.0, False) is None
    assert shaper_for(((0,), (1,)), 1.0, False, 0.01)([100.0, -100.0]) == pytest.approx([1.0, -1.0])
    assert shaper_for(((0, 2), (1, 3)), 1.0, False) is not None


def test_placements_rank_sides_by_return():
    assert placement_scores([1.0, -1.0]) == (1.0, 0.0)
    assert placement_scores([0.0, 0.0]) == (0.5, 0.5)
    assert placement_scores([5.0, -2.0, 1.0, 1.0]) == (1.0, 0.0, 0.5, 0.5)


# --- the rollout loop on a team game -------------------------------------------------------


def _worker(game, kwargs=None, league_state=None, envs=4, segment_length=3, tau=1.0, zero_sum=False):
    make_slot, spec = load_game(game, kwargs)
    cfg = (
        Config()
        .replace("game", team_spirit=tau, zero_sum=zero_sum)
        .replace("rollout", envs_per_actor=envs, segment_length=segment_length, weight_poll_s=0.0)
        .replace("model", hidden_sizes=HIDDEN)
        .replace("league", sampler="uniform")
    )
    params = FakeParams(spec.obs_dim, spec.num_actions)
    params.publish(0, seed=100)
    sink, results = ListSink(), ListResults()
    worker = RolloutWorker(0, cfg, make_slot, spec, params, FakeLeague(league_state, "uniform"), sink, results, {RANDOM_ID: random_legal})
    return worker, sink, results


@pytest.mark.parametrize("tau,zero_sum", [(1.0, False), (0.3, True), (0.0, True)])
def test_each_agent_of_a_team_learns_from_its_shaped_reward(tau, zero_sum):
    """Self-play, one game of 3 rounds: each agent's lane is one segment of 3 decisions, cut at the
    game's end, holding the shaped rewards of every step from its first decision on (what arrives
    before an agent first moves belongs to no decision of its own, as in two-player games)."""
    worker, sink, results = _worker(RELAY, envs=1, segment_length=3, tau=tau, zero_sum=zero_sum)
    worker.start()
    while not results.games:
        worker.tick()
    segs = sink.segments[:4]  # one per seat, in seat order (cut at the game's end)
    assert len(segs) == 4 and all(len(s) == 3 and s.dones[-1] for s in segs)
    side_of = np.array([0, 1, 0, 1])
    expected = np.zeros((4, 3))  # per seat, per decision
    for t in range(12):  # seats move in seat order: step t is seat t % 4's decision t // 4
        mover, k = t % 4, t // 4
        raw = np.zeros(4)
        raw[mover] = segs[mover].actions[k]  # the mover alone is paid its action
        shaped = team_rewards(raw, side_of, 2, tau, zero_sum)
        for seat in range(4):
            if t >= seat:  # the seat's latest decision by step t collects the step's reward
                expected[seat, (t - seat) // 4] += shaped[seat]
    np.testing.assert_allclose(np.stack([s.rewards for s in segs]), expected, atol=1e-5)
    raw = np.array([float(s.actions.sum()) for s in segs])
    g = results.games[0]
    assert g.players == (LEARNER_ID, LEARNER_ID)  # two sides, not four seats
    red, blue = raw[[0, 2]].mean(), raw[[1, 3]].mean()
    assert g.scores == ((1.0, 0.0) if red > blue else (0.0, 1.0) if blue > red else (0.5, 0.5))


def test_a_side_plays_all_its_agents_with_one_forward_pass_per_tick():
    state = LeagueState.new((RANDOM_ID,))
    worker, sink, results = _worker(RELAY, league_state=state, envs=6)
    calls = []
    act = worker.latest.act
    worker.latest.act = lambda obs, masks, rng: (calls.append(len(obs)), act(obs, masks, rng))[1]
    worker.start()
    for _ in range(40):
        before = len(calls)
        worker.tick()
        assert len(calls) - before <= 1  # the latest policy: one batched call whatever its seats
    assert sum(calls) > len(calls)  # and those calls did batch several games
    assert results.games and all(len(g.players) == 2 and LEARNER_ID in g.players for g in results.games)
    assert {p for g in results.games for p in g.players} <= {LEARNER_ID, RANDOM_ID}


def test_four_player_holdem_seats_the_learner_once_and_draws_every_other_seat():
    state = LeagueState.new((RANDOM_ID,))
    worker, sink, results = _worker("texas_holdem_no_limit_v6", {"num_players": 4}, league_state=state, envs=8)
    worker.start()
    for _ in range(300):
        worker.tick()
    assert len(results.games) >= 10 and sink.segments
    for g in results.games:
        assert len(g.players) == 4 and g.players.count(LEARNER_ID) >= 1
        assert sum(g.scores) == pytest.approx(2.0)
    # with latest_prob < 1 the other seats hold random in some games and the learner in others
    assert any(g.players.count(RANDOM_ID) >= 2 for g in results.games)


# --- a missing family package names its extra ------------------------------------------------


def test_a_missing_family_package_names_the_extra_to_install(monkeypatch):
    from actors.games import resolve_game

    import sys

    class NoMpe2:
        """As if mpe2 were not installed: the import system finds no such top-level package."""

        def find_spec(self, name, path=None, target=None):
            if name == "mpe2":
                raise ModuleNotFoundError("No module named 'mpe2'", name="mpe2")
            return None

    for name in [m for m in list(sys.modules) if m == "mpe2" or m.startswith("mpe2.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [NoMpe2(), *sys.meta_path])
    with pytest.raises(GameError, match=r"simple_tag_v3.*'mpe2'.*pip install 'selfplay\[mpe\]'"):
        resolve_game("simple_tag_v3")
    with pytest.raises(GameError, match="unknown game"):
        resolve_game("no_such_game_v0")


def test_an_evaluator_rates_every_seat_of_a_four_player_game_and_keeps_no_replays():
    """Replays are a two-player format; an evaluator of hold'em for four used to die on seats 2 and 3."""
    from actors.evaluator import Evaluator

    kwargs = {"num_players": 4}
    make_slot, spec = load_game("texas_holdem_no_limit_v6", kwargs)
    cfg = (
        Config()
        .replace("game", name="texas_holdem_no_limit_v6", kwargs=kwargs)
        .replace("model", hidden_sizes=HIDDEN)
        .replace("eval", games_per_pair=8, replays_per_pair=5)
    )
    params = FakeParams(spec.obs_dim, spec.num_actions)
    params.publish(0, seed=3)

    class Kept:
        replays: list = []

        def keep(self, replays, per_pair):
            self.replays += replays

    kept, results = Kept(), ListResults()
    evaluator = Evaluator(0, cfg, make_slot, spec, params, FakeLeague(None, "uniform"), results, {RANDOM_ID: random_legal}, replays=kept)
    report = evaluator.round()
    assert report.games == 8 and len(results.games) == 8
    assert {g.players.index(LEARNER_ID) for g in results.games} == {0, 1, 2, 3}
    assert kept.replays == []
