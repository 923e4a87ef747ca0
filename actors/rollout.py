"""The rollout loop: many game copies stepped together, one batched forward pass per policy per tick.

Plain Python. Its four collaborators are small protocols so the loop runs in-process in tests and
inside a Ray actor in production (cluster/remote/rollout_service.py):

    params  -> latest/snapshot weights (Redis parameter store)
    league  -> the opponent pool to sample from (Redis league state)
    sink    -> where trajectory segments go (the learner; may block = backpressure)
    results -> where finished games go (the league's game queue)
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from actors.config import RolloutSettings
from actors.games import GameSlot, GameSpec
from actors.lanes import Lane, rows_to_segment
from actors.memory import SeatMemory
from actors.opponents import OpponentCache
from actors.teams import shaper_for
from league.pool import LeagueView
from league.records import LEARNER_ID, GameResult
from learner.model import InferencePolicy
from learner.segment import Segment

from actors.scripted import ScriptedFn


class ParamSource(Protocol):
    def poll(self, known_version: int) -> tuple[int, dict[str, np.ndarray]] | None: ...
    def fetch_snapshot(self, player_id: str) -> tuple[int, dict[str, np.ndarray]]: ...


class LeagueSource(Protocol):
    def state(self) -> LeagueView | None:
        """The league as last read (league/pool.py), or None before it exists."""


class SegmentSink(Protocol):
    def send(self, segments: list[Segment]) -> None: ...


class ResultSink(Protocol):
    def report(self, results: list[GameResult]) -> None: ...


@dataclass
class Seating:
    """Who plays each side of one game slot, and the bookkeeping of the current game.

    `players` is per side (a side plays all its seats with one policy, actors/teams.py); `lanes`
    per seat, since every agent of a learning side has its own stream of decisions."""

    players: list[str]
    opponent_prob: float
    episode: int = 0
    lanes: list[Lane] = field(default_factory=list)


@dataclass
class RolloutStats:
    env_steps: int = 0
    games: int = 0
    segments: int = 0
    samples: int = 0
    weight_updates: int = 0
    opponent_fallbacks: int = 0
    opponent_cache_hits: int = 0
    """Games against a past opponent whose policy the actor already held."""
    opponent_cache_misses: int = 0
    """Games against a past opponent whose weights had to be fetched from the store."""
    ticks: int = 0


class RolloutWorker:
    def __init__(
        self,
        actor_id: int,
        cfg: RolloutSettings,
        make_slot: Callable[[], GameSlot],
        spec: GameSpec,
        params: ParamSource,
        league: LeagueSource,
        sink: SegmentSink,
        results: ResultSink,
        references: dict[str, ScriptedFn],
        game_kind: str = "train",
        restart_salt: int | None = None,
    ) -> None:
        """`restart_salt`: None for an actor's first incarnation (seeds follow from run.seed, so a run
        can be repeated); a fresh random number for a restarted one, whose games would otherwise
        replay the seeds and opponent draws the dead incarnation already played."""
        self.actor_id = actor_id
        self.cfg = cfg
        self.spec = spec
        self.params, self.league, self.sink, self.results = params, league, sink, results
        self.references = references
        self.game_kind = game_kind
        self._seed_key = [cfg.run.seed, actor_id] + ([] if restart_salt is None else [restart_salt])
        self.rng = np.random.default_rng(self._seed_key)
        self.latest = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, head=spec.head)
        self._opponents = OpponentCache(
            params.fetch_snapshot,
            lambda: InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, head=spec.head),
            cfg.rollout.opponent_cache,
        )
        self._memory = SeatMemory()  # recurrent policies' states, per (slot, seat)
        self.stats = RolloutStats()
        self._last_poll = -1e9
        self._segment_counter = 0
        self.slots = [make_slot() for _ in range(cfg.rollout.envs_per_actor)]
        slot0 = self.slots[0]
        self.num_sides, self.side_of = slot0.num_sides, slot0.side_of
        # None for two-player games (one agent per side, no zero-sum): their rewards pass untouched.
        self._shape = shaper_for(slot0.sides, cfg.game.team_spirit, cfg.game.zero_sum, cfg.game.reward_scale)
        # A fresh id per incarnation: a restarted actor re-counts episodes from 0, and its games
        # must not be mistaken for duplicates of the dead incarnation's.
        self.incarnation = secrets.token_hex(4)
        self._outbox: list[Segment] = []
        self.seatings: list[Seating] = []

    # --- weights ---------------------------------------------------------------------------
    def sync_weights(self, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self._last_poll < self.cfg.rollout.weight_poll_s:
            return False
        self._last_poll = now
        got = self.params.poll(self.latest.version)
        if got is None:
            return False
        version, tensors = got
        self.latest.load(tensors, version)
        self.stats.weight_updates += 1
        return True

    def _policy(self, player_id: str) -> InferencePolicy:
        """The latest policy, or a past opponent seated in some game slot (always held)."""
        return self.latest if player_id == LEARNER_ID else self._opponents[player_id]

    def _seat_opponent(self, player_id: str) -> None:
        """Hold `player_id`'s policy for as long as a game slot seats it (KeyError: not in the store)."""
        self._opponents.seat(player_id)
        self.stats.opponent_cache_hits = self._opponents.hits
        self.stats.opponent_cache_misses = self._opponents.misses

    def _release_opponents(self, seating: Seating) -> None:
        # One release per side seated: each side's opponent was drawn (and seated) on its own.
        for player_id in seating.players:
            if player_id != LEARNER_ID and player_id not in self.references:
                self._opponents.release(player_id)

    # --- games -----------------------------------------------------------------------------
    def _seed(self, env_idx: int, episode: int) -> int:
        return int(np.random.SeedSequence([*self._seed_key, env_idx, episode]).generate_state(1)[0])

    def _draw(self, state: LeagueView | None) -> tuple[str, float]:
        """One opponent from the league (the latest policy before a league exists), seated in memory."""
        if state is None:
            opponent, prob = LEARNER_ID, 1.0
        else:
            choice = state.choose(LEARNER_ID, self.rng, self.cfg.league.latest_prob)
            opponent, prob = choice.player_id, choice.prob
        if opponent != LEARNER_ID and opponent not in self.references:
            try:
                self._seat_opponent(opponent)
            except KeyError:
                opponent, prob = LEARNER_ID, 1.0  # snapshot missing from the store: play self, count it
                self.stats.opponent_fallbacks += 1
        return opponent, prob

    def _new_game(self, i: int, episode: int) -> None:
        """Seat slot i's next game: the learner on a random side, every other side drawn from the
        league on its own (N-player games meet a mix of past selves). The draws come in the same
        order as they always did for two sides, so two-player runs repeat seed for seed."""
        state = self.league.state()
        opponent, prob = self._draw(state)
        n = self.num_sides
        learner_side = int(self.rng.integers(n))
        players = [LEARNER_ID] * n
        others = [side for side in range(n) if side != learner_side]
        players[others[0]] = opponent
        for side in others[1:]:
            players[side] = self._draw(state)[0]
        if i < len(self.seatings):
            lanes = self.seatings[i].lanes  # lanes persist across games: segments span game ends
            for s, lane in enumerate(lanes):
                cut = lane.flush() if players[self.side_of[s]] != LEARNER_ID else None
                if cut:
                    self._outbox.append(self._segment(*cut))
        else:
            lanes = [Lane(self.cfg.rollout.segment_length) for _ in self.side_of]
        seating = Seating(players, prob, episode, lanes)
        if i < len(self.seatings):
            self.seatings[i] = seating
        else:
            self.seatings.append(seating)
        self._reset_slot(i, episode)

    def _reset_slot(self, i: int, episode: int) -> None:
        """Start slot i's next game: from the game's start, or with rollout.opening_random_moves
        from a random opening (training games only; rating games always start from the start)."""
        slot, seed = self.slots[i], self._seed(i, episode)
        slot.reset(seed=seed)
        self._memory.new_game(i)
        most = self.cfg.rollout.opening_random_moves
        if most <= 0 or self.game_kind != "train":
            return
        moves = int(self.rng.integers(0, most + 1))
        for _ in range(8):  # an opening that ends the game is replayed; after 8 tries, no opening
            for _ in range(moves):
                slot.step(int(self.rng.choice(np.flatnonzero(slot.mask))))
                self.stats.env_steps += 1
                if slot.over:
                    break
            if not slot.over:
                return
            slot.reset(seed=seed)

    def start(self) -> None:
        self.sync_weights(force=True)
        if self.latest.version < 0:
            raise RuntimeError("no weights published yet; the learner publishes version 0 before actors start")
        for i in range(len(self.slots)):
            self._new_game(i, 0)

    def _version_of(self, player_id: str) -> int:
        if player_id in self.references:
            return -1
        return self._policy(player_id).version

    def _decisions(self) -> dict[str, list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]]:
        """The decisions of this tick, grouped by the player making them: (slot, seat, network input,
        mask, raw observation). One per slot for turn-based games; every live agent's for parallel games."""
        groups: dict[str, list] = {}
        for i, slot in enumerate(self.slots):
            players = self.seatings[i].players
            if slot.simultaneous:
                for seat in slot.decisions:
                    groups.setdefault(players[slot.side_of[seat]], []).append((i, seat, *slot.view(seat)))
            else:
                groups.setdefault(players[slot.side], []).append((i, slot.seat, slot.obs, slot.mask, slot.raw_obs))
        return groups

    def tick(self) -> None:
        """Advance every game slot by one decision (turn-based) or one step (parallel games)."""
        self.sync_weights()
        groups = self._decisions()
        out_segments = self._outbox
        finished: list[GameResult] = []
        continuous = self.spec.continuous
        for player_id, moves in groups.items():
            if player_id in self.references:
                fn = self.references[player_id]
                actions = [fn(raw, mask, self.rng) for _, _, _, mask, raw in moves]
                logps = values = [0.0] * len(moves)
                version, states = -1, None
            else:
                policy = self._policy(player_id)
                obs = np.stack([m[2] for m in moves])
                masks = np.stack([m[3] for m in moves])
                seats = ((m[0], m[1]) for m in moves)  # (slot, seat): read by recurrent policies only
                actions, logps, values, states = self._memory.act(policy, obs, masks, self.rng, seats)
                version = policy.version
            for j, (i, seat, obs_j, mask_j, _) in enumerate(moves):
                slot, seating = self.slots[i], self.seatings[i]
                action = actions[j] if continuous else int(actions[j])
                if player_id == LEARNER_ID:
                    state = None if states is None else states[j]
                    cut = seating.lanes[seat].decide(obs_j.copy(), mask_j.copy(), action, logps[j], values[j], version, state)
                    if cut:
                        out_segments.append(self._segment(*cut))
                self.stats.env_steps += 1
                if slot.simultaneous:
                    rewards = slot.decide(seat, action)
                    if rewards is None:
                        continue  # the step waits for the other live agents' actions
                else:
                    rewards = slot.step(action)
                if self._shape is not None:
                    rewards = self._shape(rewards)
                for s, side in enumerate(self.side_of):
                    if seating.players[side] == LEARNER_ID:
                        seating.lanes[s].reward(rewards[s])
                if slot.over:
                    finished.append(self._finish_game(i))
        self.stats.ticks += 1
        if out_segments:
            self._outbox = []
            self.stats.segments += len(out_segments)
            self.stats.samples += sum(len(s) for s in out_segments)
            self.sink.send(out_segments)
        if finished:
            self.results.report(finished)

    def _segment(self, rows: list[tuple], bootstrap: float, initial_state=None) -> Segment:
        self._segment_counter += 1
        return rows_to_segment(rows, bootstrap, self.actor_id, self._segment_counter, initial_state)

    def _finish_game(self, i: int) -> GameResult:
        slot, seating = self.slots[i], self.seatings[i]
        self._bootstrap_truncated(i, slot, seating)
        for s, side in enumerate(self.side_of):
            if seating.players[side] == LEARNER_ID:
                cut = seating.lanes[s].end_game()
                if cut:
                    self._outbox.append(self._segment(*cut))
        result = GameResult(
            game_id=f"a{self.actor_id}-{self.incarnation}-e{i}-g{seating.episode}",
            players=tuple(seating.players),
            versions=tuple(self._version_of(p) for p in seating.players),
            scores=slot.scores(),
            length=slot.length,
            kind=self.game_kind,
            opponent_prob=seating.opponent_prob,
            finished_at=time.time(),
        )
        self.stats.games += 1
        self._release_opponents(seating)  # before the next draw, so that its network can be reused
        self._new_game(i, seating.episode + 1)
        return result

    def _bootstrap_truncated(self, i: int, slot: GameSlot, seating: Seating) -> None:
        """A learning agent whose game was cut by a time limit did not lose its future: its last
        decision earns gamma * V(final observation) on top of its reward, as if the value after the
        cut had been seen (the time-limit correction of Pardo et al. 2018, as Stable-Baselines3's)."""
        seats = [s for s in slot.truncated if seating.players[self.side_of[s]] == LEARNER_ID]
        if not seats:
            return
        obs = np.stack([slot.truncated[s] for s in seats])
        states = None
        if self.latest.recurrent:  # V(final observation) given all the seat remembers of this game
            states = self.latest.initial_state(len(seats))
            for j, s in enumerate(seats):
                held = self._memory.state(i, s)
                if held is not None:
                    states[j] = held
        values = self.latest.value(obs, states)
        for s, v in zip(seats, values):
            seating.lanes[s].reward(self.cfg.ppo.gamma * float(v))

    def run(self, should_stop: Callable[[], bool], max_ticks: int | None = None) -> RolloutStats:
        if not self.seatings:
            self.start()
        n = 0
        while not should_stop() and (max_ticks is None or n < max_ticks):
            self.tick()
            n += 1
        return self.stats
