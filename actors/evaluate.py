"""Head-to-head matches between two agents (policies or scripted players), batched across games.

Used for the end-of-run table, `selfplay evaluate`, evaluator actors and the learning tests.
Seats alternate game by game, so both sides play first equally often.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from actors.games import GameSlot
from actors.memory import SeatMemory
from actors.scripted import ScriptedFn
from learner.model import InferencePolicy


class Agent:
    """Either a network (batched) or a scripted function (per game), behind one act().

    A recurrent network remembers each game it plays by the key the caller gives it (`keys`: the
    game slot), from the game's `new_game(key)` on."""

    def __init__(self, policy: InferencePolicy | None = None, scripted: ScriptedFn | None = None, greedy: bool = False) -> None:
        if (policy is None) == (scripted is None):
            raise ValueError("an Agent is either a policy or a scripted function")
        self.policy, self.scripted, self.greedy = policy, scripted, greedy
        self.memory = SeatMemory()

    def act(self, slots: list[GameSlot], rng: np.random.Generator, keys: list | None = None) -> list:
        """One move per slot: an int, or in Box games a float32 vector (greedy: the Gaussian's mean)."""
        if self.scripted is not None:
            moves = [self.scripted(s.raw_obs, s.mask, rng) for s in slots]
            return moves if np.ndim(moves[0]) else [int(a) for a in moves]
        obs = np.stack([s.obs for s in slots])
        masks = np.stack([s.mask for s in slots])
        if self.policy.recurrent and keys is None:
            raise ValueError("a recurrent policy's Agent.act needs keys naming the games it plays")
        seats = ((k, s.seat) for k, s in zip(keys or (), slots))
        actions, _, _, _ = self.memory.act(self.policy, obs, masks, rng, seats, greedy=self.greedy)
        return list(actions) if actions.ndim == 2 else [int(a) for a in actions]

    def new_game(self, key) -> None:
        """The game `key` starts (again): a recurrent policy forgets it."""
        self.memory.new_game(key)


@dataclass(frozen=True)
class PlayedGame:
    """One game's record, for replays: the seed its environment was reset with and every move, in order."""

    seed: int
    moves: tuple[int, ...]


@dataclass(frozen=True)
class MatchResult:
    wins: int
    draws: int
    losses: int
    outcomes: tuple = field(default=(), compare=False, repr=False)
    """Per game, in the order games finished: (A's side, A's score, game length in moves, every
    side's score). In games of more than two sides B plays every side but A's; A's score is then
    its placement (actors/teams.py), counted a win above 0.5 and a loss below."""
    played: tuple[PlayedGame, ...] = field(default=(), compare=False, repr=False)
    """Per game, in the order of `outcomes`: its seed and moves. Only with play_match(record=True)."""

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    @property
    def score(self) -> float:
        """(W + D/2) / N for the first agent."""
        return (self.wins + 0.5 * self.draws) / max(self.games, 1)

    def confidence_interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson score interval of the first agent's score (draws counted as half)."""
        n = self.games
        if n == 0:
            return (0.0, 1.0)
        p = self.score
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        return (max(0.0, centre - half), min(1.0, centre + half))


def play_match(
    make_slot: Callable[[], GameSlot],
    agent_a: Agent,
    agent_b: Agent,
    games: int,
    seed: int = 0,
    parallel: int = 32,
    record: bool = False,
) -> MatchResult:
    """Play `games` games of A against B; A takes side k in game number k modulo the number of
    sides (seat 0 in even-numbered games, seat 1 in odd ones, in a two-player game), B the rest.

    With `record`, the result keeps every game's moves (`played`), for the evaluators' replays; off
    by default, as most matches only want the score."""
    rng = np.random.default_rng(seed)
    w = d = l = 0
    outcomes: list[tuple[int, float, int, tuple]] = []
    played: list[PlayedGame] = []
    started = 0
    slots: list[GameSlot] = []
    a_seat: list[int] = []  # A's side, per slot
    seeds: list[int] = []
    moves: list[list[int]] = []
    for _ in range(min(parallel, games)):
        slot = make_slot()
        seeds.append(seed * 100_003 + started)
        slot.reset(seed=seeds[-1])
        agent_a.new_game(len(slots))
        agent_b.new_game(len(slots))
        slots.append(slot)
        a_seat.append(started % slot.num_sides)
        moves.append([])
        started += 1
    live = list(range(len(slots)))
    while live:
        for agent, is_a in ((agent_a, True), (agent_b, False)):
            idxs = [i for i in live if not slots[i].over and (slots[i].side == a_seat[i]) == is_a]
            if not idxs:
                continue
            for i, action in zip(idxs, agent.act([slots[i] for i in idxs], rng, keys=idxs)):
                slots[i].step(action)
                if record:
                    moves[i].append(action)
        still = []
        for i in live:
            if not slots[i].over:
                still.append(i)
                continue
            scores = slots[i].scores()
            s = scores[a_seat[i]]
            w, d, l = w + (s > 0.5), d + (s == 0.5), l + (s < 0.5)
            outcomes.append((a_seat[i], float(s), int(slots[i].length), tuple(scores)))
            if record:
                played.append(PlayedGame(seeds[i], tuple(moves[i])))
                moves[i] = []
            if started < games:
                seeds[i] = seed * 100_003 + started
                slots[i].reset(seed=seeds[i])
                agent_a.new_game(i)
                agent_b.new_game(i)
                a_seat[i] = started % slots[i].num_sides
                started += 1
                still.append(i)
        live = still
    return MatchResult(w, d, l, tuple(outcomes), tuple(played))


def exact_outcomes(
    make_slot: Callable[[], GameSlot],
    policy: InferencePolicy,
    opponent_moves: Callable[[GameSlot], list[tuple[int, float]]],
    seat: int,
) -> tuple[float, float, float]:
    """Exact (win, draw, loss) probabilities of a greedy policy in `seat` against an opponent given
    as a distribution over moves, by walking the whole game tree: no sampling noise. Only for
    small deterministic games (tic-tac-toe: about a thousand leaves against random play).

    `opponent_moves(slot)` -> [(action, probability), ...] for the position in `slot`. States are
    rebuilt by replaying moves, since PettingZoo environments cannot be copied. A recurrent policy's
    state is carried down each line of play."""
    rng = np.random.default_rng(0)

    def at(history: list[int]) -> GameSlot:
        slot = make_slot()
        slot.reset(seed=0)
        for a in history:
            slot.step(a)
        return slot

    def walk(history: list[int], prob: float, state: np.ndarray | None) -> np.ndarray:
        slot = at(history)
        if slot.over:
            s = slot.scores()[seat]
            return prob * np.array([s == 1.0, s == 0.5, s == 0.0], dtype=float)
        if slot.seat == seat:
            if state is None:
                action, _, _ = policy.act(slot.obs[None], slot.mask[None], rng, greedy=True)
            else:
                action, _, _, state = policy.act_recurrent(slot.obs[None], slot.mask[None], state, rng, greedy=True)
            return walk(history + [int(action[0])], prob, state)
        return sum(walk(history + [a], prob * p, state) for a, p in opponent_moves(slot))

    w, d, l = walk([], 1.0, policy.initial_state(1) if policy.recurrent else None)
    return float(w), float(d), float(l)


def uniform_moves(slot: GameSlot) -> list[tuple[int, float]]:
    """The random player as a move distribution (for exact_outcomes)."""
    legal = np.flatnonzero(slot.mask)
    return [(int(a), 1.0 / len(legal)) for a in legal]


def best_moves(scripted_values: Callable[[np.ndarray, np.ndarray], dict[int, float]]) -> Callable[[GameSlot], list[tuple[int, float]]]:
    """A player that picks uniformly among the moves of highest value (minimax with random tie
    breaks) as a move distribution, from a function (obs, mask) -> {action: value}."""

    def moves(slot: GameSlot) -> list[tuple[int, float]]:
        values = scripted_values(slot.raw_obs, slot.mask)
        top = max(values.values())
        best = [a for a, v in values.items() if v == top]
        return [(a, 1.0 / len(best)) for a in best]

    return moves


def sample_positions(make_slot: Callable[[], GameSlot], count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(obs float32 [count, obs_dim], mask bool [count, A]): the decisions of games played with
    uniformly random legal moves, seeded, every position of a game from its start to its end."""
    rng = np.random.default_rng(seed)
    obs, masks = [], []
    slot = make_slot()
    game = 0
    while len(obs) < count:
        slot.reset(seed=seed * 100_003 + game)
        game += 1
        while not slot.over and len(obs) < count:
            obs.append(slot.obs.copy())
            masks.append(slot.mask.copy())
            slot.step(int(rng.choice(np.flatnonzero(slot.mask))))
    return np.stack(obs).astype(np.float32), np.stack(masks)
