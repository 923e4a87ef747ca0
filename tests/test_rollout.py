"""The rollout loop (actors/rollout.py) on real tic-tac-toe, with in-memory fakes for its four collaborators."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from actors.games import load_game
from actors.lanes import Lane, rows_to_segment
from actors.rollout import RolloutWorker
from actors.scripted import random_legal
from cluster.config import Config
from league.league import LeagueState, snapshot_id
from league.pool import LeagueView
from league.records import LEARNER_ID, RANDOM_ID, GameResult
from learner.model import InferencePolicy, PolicyNet, state_dict_numpy
from learner.segment import Segment

HIDDEN = (16,)


# --- fakes (pure in-process stand-ins for Redis and the learner) ---------------------------


class FakeParams:
    """Serves whatever version was last 'published'; remembers every version's weights."""

    def __init__(self, obs_dim: int, num_actions: int) -> None:
        self.obs_dim, self.num_actions = obs_dim, num_actions
        self.version = -1
        self.served: dict[int, dict[str, np.ndarray]] = {}
        self.snapshots: dict[str, tuple[int, dict[str, np.ndarray]]] = {}

    def make_weights(self, seed: int) -> dict[str, np.ndarray]:
        torch.manual_seed(seed)
        net = PolicyNet(self.obs_dim, self.num_actions, HIDDEN)
        with torch.no_grad():
            net.pi[-1].weight.mul_(200.0)  # far from uniform, so a wrong weights/version pairing shows in logp
        return state_dict_numpy(net)

    def publish(self, version: int, seed: int) -> None:
        self.served[version] = self.make_weights(seed)
        self.version = version

    def poll(self, known_version: int):
        if self.version <= known_version:
            return None
        return self.version, self.served[self.version]

    def fetch_snapshot(self, player_id: str):
        return self.snapshots[player_id]  # KeyError when missing, like the real store


class FakeLeague:
    """The league as an actor's reader would see it, read once from a LeagueState."""

    def __init__(self, state: LeagueState | None, sampler: str) -> None:
        self._view = None
        if state is not None:
            self._view = LeagueView(sampler)
            self._view.apply(state.players.values(), revision=1, learner_version=state.learner_version)

    def state(self) -> LeagueView | None:
        return self._view


class ListSink:
    def __init__(self) -> None:
        self.batches: list[list[Segment]] = []

    def send(self, segments: list[Segment]) -> None:
        self.batches.append(list(segments))

    @property
    def segments(self) -> list[Segment]:
        return [s for b in self.batches for s in b]


class ListResults:
    def __init__(self) -> None:
        self.games: list[GameResult] = []

    def report(self, results: list[GameResult]) -> None:
        self.games.extend(results)


@pytest.fixture(scope="module")
def tictactoe():
    return load_game("tictactoe_v3")


def _worker(tictactoe, league_state=None, sampler="uniform", envs=4, segment_length=5, seed=0, restart_salt=None, opening=0, kind="train",
            opponent_cache=8, tremble=0.0):
    make_slot, spec = tictactoe
    cfg = (
        Config()
        .replace("rollout", envs_per_actor=envs, segment_length=segment_length, weight_poll_s=0.0, opening_random_moves=opening,
                 opponent_cache=opponent_cache, random_move_prob=tremble)
        .replace("model", hidden_sizes=HIDDEN)
        .replace("league", sampler=sampler)
        .replace("run", seed=seed)
    )
    params = FakeParams(spec.obs_dim, spec.num_actions)
    params.publish(0, seed=100)
    sink, results = ListSink(), ListResults()
    worker = RolloutWorker(
        0, cfg, make_slot, spec, params, FakeLeague(league_state, sampler), sink, results, {RANDOM_ID: random_legal},
        game_kind=kind, restart_salt=restart_salt,
    )
    return worker, params, sink, results


def _lane_rows_held(worker: RolloutWorker) -> int:
    return sum(len(l.rows) + (l.pending is not None) for s in worker.seatings for l in s.lanes)


# --- Lane ----------------------------------------------------------------------------------


def _decide(lane: Lane, i: int, value: float, version: int):
    return lane.decide(np.full(2, i, np.float32), np.array([True, True, i % 2 == 0]), i % 2, -0.1 * i, value, version)


def test_lane_cuts_fixed_length_segments_across_a_game_end():
    lane = Lane(3)
    lane.reward(5.0)  # before any decision of this seat: belongs to nobody
    assert _decide(lane, 0, value=0.5, version=1) is None
    assert _decide(lane, 1, value=0.6, version=1) is None
    lane.reward(1.0)  # rewards arriving between this seat's decisions (the opponent's moves) add up
    lane.reward(0.5)
    assert lane.end_game() is None  # 2 finished decisions < 3
    assert _decide(lane, 2, value=0.7, version=2) is None  # new game; decision 2 is pending
    lane.reward(-0.25)
    rows, bootstrap, state = _decide(lane, 3, value=0.8, version=2)
    assert state is None  # a feed-forward policy's segments carry no recurrent state
    assert bootstrap == 0.8  # V(next decision) = the value of the decision that completed the segment
    seg = rows_to_segment(rows, bootstrap, actor_id=4, segment_id=9)
    assert (seg.actor_id, seg.segment_id, len(seg)) == (4, 9, 3)
    np.testing.assert_array_equal(seg.rewards, [0.0, 1.5, -0.25])
    np.testing.assert_array_equal(seg.dones, [False, True, False])
    np.testing.assert_array_equal(seg.versions, [1, 1, 2])
    np.testing.assert_array_equal(seg.obs[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(seg.actions, [0, 1, 0])
    np.testing.assert_allclose(seg.logp, [0.0, -0.1, -0.2], atol=1e-7)
    np.testing.assert_allclose(seg.values, [0.5, 0.6, 0.7], atol=1e-7)
    np.testing.assert_array_equal(seg.masks[:, 2], [True, False, True])
    # Decision 3 is still waiting for its reward; it cannot be flushed mid-game.
    assert lane.flush() is None
    lane.reward(1.0)
    assert lane.end_game() is None
    rows, bootstrap, _ = lane.flush()
    assert bootstrap == 0.0 and [r[6] for r in rows] == [1.0] and [r[7] for r in rows] == [True]
    assert lane.flush() is None and lane.rows == []


def test_lane_segment_ending_on_a_game_end_has_zero_bootstrap():
    lane = Lane(2)
    _decide(lane, 0, value=0.3, version=0)
    _decide(lane, 1, value=0.9, version=0)
    lane.reward(-1.0)
    rows, bootstrap, _ = lane.end_game()
    assert bootstrap == 0.0
    assert [r[6] for r in rows] == [0.0, -1.0] and [r[7] for r in rows] == [False, True]
    assert lane.end_game() is None  # nothing pending: a second end is a no-op


# --- RolloutWorker -------------------------------------------------------------------------


def test_start_refuses_to_run_without_published_weights(tictactoe):
    worker, params, _, _ = _worker(tictactoe)
    params.version = -1
    with pytest.raises(RuntimeError, match="no weights published"):
        worker.start()


def _check_samples_against_weights(segments: list[Segment], params: FakeParams, spec) -> Counter:
    nets = {}
    for v, tensors in params.served.items():
        pol = InferencePolicy(spec.obs_dim, spec.num_actions, HIDDEN)
        pol.load(tensors, v)
        nets[v] = pol.net
    seen = Counter()
    for seg in segments:
        legal = seg.obs.reshape(len(seg), 9, 2).sum(-1) == 0
        np.testing.assert_array_equal(seg.masks, legal)  # recorded mask = the board's empty cells
        assert seg.masks[np.arange(len(seg)), seg.actions].all()  # every action legal under its mask
        assert np.all(np.diff(seg.versions) >= 0)  # a lane's decisions are chronological
        for v in np.unique(seg.versions):
            rows = seg.versions == v
            with torch.no_grad():
                logits, values = nets[int(v)](torch.from_numpy(seg.obs[rows]), torch.from_numpy(seg.masks[rows]))
            logp_all = torch.log_softmax(logits, -1).numpy()
            np.testing.assert_allclose(seg.logp[rows], logp_all[np.arange(rows.sum()), seg.actions[rows]], atol=1e-5)
            np.testing.assert_allclose(seg.values[rows], values.numpy(), atol=1e-5)
            seen[int(v)] += int(rows.sum())
    return seen


def test_samples_are_legal_and_carry_the_version_of_the_weights_that_chose_them(tictactoe):
    worker, params, sink, _ = _worker(tictactoe, envs=4, segment_length=5)
    worker.run(lambda: False, max_ticks=40)
    phase1 = list(sink.segments)
    assert phase1 and all(set(s.versions.tolist()) == {0} for s in phase1)
    params.publish(7, seed=200)  # the learner moves on mid-game
    worker.run(lambda: False, max_ticks=40)
    seen = _check_samples_against_weights(sink.segments, params, tictactoe[1])
    assert set(seen) == {0, 7} and seen[7] >= 20
    assert worker.stats.weight_updates == 2
    # Nothing is lost or duplicated: every decision (self-play: all are the learner's) is either
    # in a sent segment or still held by a lane.
    assert sum(len(s) for s in sink.segments) + _lane_rows_held(worker) == worker.stats.env_steps == 80 * 4
    assert worker.stats.samples == sum(len(s) for s in sink.segments)
    assert all(len(s) == 5 for s in sink.segments)  # self-play never flushes short segments
    assert len({s.segment_id for s in sink.segments}) == len(sink.segments)


def test_finished_games_are_reported_exactly_once(tictactoe):
    worker, _, _, results = _worker(tictactoe, envs=3)
    worker.run(lambda: False, max_ticks=120)
    games = results.games
    assert len(games) == worker.stats.games >= 30
    assert len({g.game_id for g in games}) == len(games)
    per_slot: dict[str, list[int]] = {}
    for g in games:
        assert g.players == (LEARNER_ID, LEARNER_ID) and g.versions == (0, 0) and g.kind == "train"
        assert sum(g.scores) == 1.0 and set(g.scores) <= {0.0, 0.5, 1.0}
        assert 5 <= g.length <= 9
        slot, episode = g.game_id.rsplit("-e", 1)[1].split("-g")
        per_slot.setdefault(slot, []).append(int(episode))
    assert sorted(per_slot) == ["0", "1", "2"]
    for episodes in per_slot.values():
        assert episodes == list(range(len(episodes)))  # every game of a slot, in order, once
    # Each game's moves are counted once in env_steps: finished games plus the games in progress.
    in_progress = sum(s.length for s in worker.slots)
    assert sum(g.length for g in games) + in_progress == worker.stats.env_steps


def test_learner_vs_random_final_reward_matches_the_reported_score(tictactoe):
    worker, _, sink, results = _worker(tictactoe, LeagueState.new(), sampler="uniform", envs=1, segment_length=4)
    worker.start()
    for _ in range(2000):  # bounded wait on a condition, not a sleep
        if len(results.games) >= 40:
            break
        worker.tick()
    games = results.games
    assert len(games) >= 40
    rows = []
    for seg in sorted(sink.segments, key=lambda s: s.segment_id):
        rows += list(zip(seg.rewards.tolist(), seg.dones.tolist()))
    per_game, current = [], []
    for reward, done in rows:
        current.append(reward)
        if done:
            per_game.append(current)
            current = []
    assert len(per_game) >= 30
    seats_seen, outcomes = set(), set()
    for g, learner_rewards in zip(games, per_game):
        assert set(g.players) == {LEARNER_ID, RANDOM_ID}
        seat = g.players.index(LEARNER_ID)
        seats_seen.add(seat)
        assert g.versions[1 - seat] == -1 and g.versions[seat] == 0
        score = g.scores[seat]
        outcomes.add(score)
        expected_final = {1.0: 1.0, 0.0: -1.0, 0.5: 0.0}[score]
        assert learner_rewards[-1] == expected_final, (g, learner_rewards)
        assert all(r == 0.0 for r in learner_rewards[:-1])
        # The learner made exactly its own moves of this game: seat 0 moves first.
        assert len(learner_rewards) == (math.ceil(g.length / 2) if seat == 0 else g.length // 2)
    assert seats_seen == {0, 1}
    assert {0.0, 1.0} <= outcomes  # losses (the -1 on the opponent's move) and wins both checked
    # Segments that end when the learner changes seat are cut short, not left to go stale.
    assert any(len(s) < 4 for s in sink.segments)
    assert all(s.dones[-1] for s in sink.segments if len(s) < 4)


def test_one_batched_forward_pass_per_policy_per_tick(tictactoe, monkeypatch):
    state = LeagueState.new()
    state.add_snapshot(0)
    worker, params, _, _ = _worker(tictactoe, state, sampler="openai_five", envs=12)
    params.snapshots["v000000"] = (0, params.make_weights(seed=300))
    calls: list[int] = []
    real_act = InferencePolicy.act

    def counting_act(self, obs, mask, rng, greedy=False):
        calls.append(len(obs))
        return real_act(self, obs, mask, rng, greedy)

    monkeypatch.setattr(InferencePolicy, "act", counting_act)
    worker.start()
    movers_seen = Counter()
    for _ in range(30):
        movers = Counter(worker.seatings[i].players[slot.seat] for i, slot in enumerate(worker.slots))
        movers_seen.update(movers.keys())
        calls.clear()
        worker.tick()
        expected = sorted(n for pid, n in movers.items() if pid != RANDOM_ID)
        assert sorted(calls) == expected  # one call per network policy, batching all its slots
    assert movers_seen[LEARNER_ID] and movers_seen["v000000"] and movers_seen[RANDOM_ID]


def test_missing_snapshot_falls_back_to_self_play_and_is_counted(tictactoe):
    state = LeagueState.new(reference_ids=())
    state.add_snapshot(3)  # in the league, but its weights are not in the store
    worker, _, _, results = _worker(tictactoe, state, sampler="uniform", envs=2)
    worker.run(lambda: False, max_ticks=30)
    assert worker.stats.opponent_fallbacks >= 2
    assert results.games and all(g.players == (LEARNER_ID, LEARNER_ID) for g in results.games)


def test_past_opponents_in_play_are_held_for_their_whole_game_and_fetched_once(tictactoe):
    """More distinct snapshots in play than rollout.opponent_cache: none is evicted mid-game (an LRU
    of that size refetched them every tick), and each game start costs at most one fetch."""
    state = LeagueState.new(reference_ids=())
    for v in range(40):
        state.add_snapshot(v)
    worker, params, sink, results = _worker(tictactoe, state, sampler="uniform", envs=12, opponent_cache=2)
    for v in range(40):
        params.snapshots[snapshot_id(v)] = (v, params.make_weights(seed=1000 + v))
    fetched: list[str] = []

    class CountingStore(dict):
        def __getitem__(self, pid):
            fetched.append(pid)
            return super().__getitem__(pid)

    params.snapshots = CountingStore(params.snapshots)
    worker.start()
    most_in_play = 0
    for _ in range(150):
        in_play = {p for s in worker.seatings for p in s.players if p != LEARNER_ID}
        most_in_play = max(most_in_play, len(in_play))
        assert all(pid in worker._opponents for pid in in_play)
        assert worker._opponents.networks <= len(in_play) + 2
        worker.tick()
    s = worker.stats
    starts = len(results.games) + len(worker.seatings)  # every game played against a snapshot here
    assert most_in_play > 2 + 1 and len(results.games) >= 100
    assert s.opponent_cache_hits + s.opponent_cache_misses == starts
    assert len(fetched) == s.opponent_cache_misses and s.opponent_cache_hits > 0
    # The samples are the learner's own: opponents' decisions never enter its segments.
    assert all(set(seg.versions.tolist()) == {0} for seg in sink.segments)


def test_rollouts_are_reproducible_from_the_seed(tictactoe):
    def actions(seed):
        worker, _, sink, results = _worker(tictactoe, LeagueState.new(), sampler="openai_five", seed=seed)
        worker.run(lambda: False, max_ticks=40)
        return [s.actions.tolist() for s in sink.segments], [(g.players, g.scores, g.length) for g in results.games]

    assert actions(1) == actions(1)
    assert actions(1) != actions(2)


def test_a_restarted_actor_does_not_replay_its_first_incarnations_games(tictactoe):
    def actions(salt):
        worker, _, sink, results = _worker(tictactoe, LeagueState.new(), sampler="openai_five", seed=1, restart_salt=salt)
        worker.run(lambda: False, max_ticks=40)
        return [s.actions.tolist() for s in sink.segments], [(g.players, g.scores, g.length) for g in results.games]

    first = actions(None)
    assert actions(12345) != first
    assert actions(12345) == actions(12345)  # the salt, not something else, is what changed them


def test_random_openings_vary_the_start_and_are_not_learned_from(tictactoe):
    """rollout.opening_random_moves: training games begin after 0..N random moves that no player
    made; the learner's samples are only its own decisions after them; every move is an env step."""
    worker, _, sink, results = _worker(tictactoe, envs=6, segment_length=3, opening=8, seed=3)
    worker.run(lambda: False, max_ticks=300)
    games = results.games
    assert len(games) >= 100
    # Self-play: every decision after the opening is the learner's. A game of length L whose opening
    # had k moves gave L - k samples, so sent + held samples < the moves of finished and live games.
    # env_steps counts every move made, also those of openings that ended the game and were replayed.
    moves = sum(g.length for g in games) + sum(s.length for s in worker.slots)
    assert moves < worker.stats.env_steps
    samples = sum(len(s) for s in sink.segments) + _lane_rows_held(worker)
    assert samples < moves - 100  # hundreds of opening moves were played and not learned from
    # Openings of 8 random tic-tac-toe moves often end the game: those are replayed, never reported
    # as games nobody played, and never start a lane with a finished board.
    assert all(g.length >= 5 for g in games)
    # The learner's first decision of a game (the row after a game's last one) sees boards of
    # every opening length, the empty one included.
    pieces_at_start = Counter()
    for seg in sink.segments:
        for t in np.flatnonzero(seg.dones[:-1]):
            pieces_at_start[int(seg.obs[t + 1].sum())] += 1
    assert 0 in pieces_at_start and len(pieces_at_start) >= 5 and max(pieces_at_start) >= 6, pieces_at_start


def test_a_trembling_hand_makes_random_moves_mid_game_that_nobody_learns_from(tictactoe):
    """rollout.random_move_prob: any move of a training game may be a random one, made for the
    player to move and recorded in no lane; it is an env step, and games still end and report."""
    worker, _, sink, results = _worker(tictactoe, envs=6, segment_length=3, tremble=0.5, seed=3)
    worker.run(lambda: False, max_ticks=300)
    moves = sum(g.length for g in results.games) + sum(s.length for s in worker.slots)
    assert len(results.games) >= 40
    assert moves == worker.stats.env_steps  # no replayed openings: every move made is in a game
    samples = sum(len(s) for s in sink.segments) + _lane_rows_held(worker)
    assert samples < 0.7 * moves  # about half the moves trembled, and were not learned from
    assert samples > 0.3 * moves
    # Without it, self-play learns from every move.
    worker, _, sink, results = _worker(tictactoe, envs=6, segment_length=3, seed=3)
    worker.run(lambda: False, max_ticks=300)
    moves = sum(g.length for g in results.games) + sum(s.length for s in worker.slots)
    assert sum(len(s) for s in sink.segments) + _lane_rows_held(worker) == moves


def test_rating_games_never_tremble(tictactoe):
    def played(tremble: float):
        worker, _, _, results = _worker(tictactoe, envs=4, segment_length=3, kind="eval", tremble=tremble)
        worker.run(lambda: False, max_ticks=100)
        return [(g.players, g.scores, g.length) for g in results.games]

    assert played(0.9) == played(0.0)


def test_rating_games_never_get_random_openings(tictactoe):
    worker, _, sink, _ = _worker(tictactoe, envs=4, segment_length=3, opening=8, kind="eval")
    worker.start()
    assert all(slot.length == 0 for slot in worker.slots)
