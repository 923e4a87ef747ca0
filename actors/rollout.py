"""The rollout loop: many game copies stepped together, one batched forward pass per policy per tick.

Plain Python. Its four collaborators are small protocols so the loop runs in-process in tests and
inside a Ray actor in production (cluster/remote/rollout_service.py):

    params  -> latest/snapshot weights (Redis parameter store)
    league  -> the opponent pool to sample from (Redis league state)
    sink    -> where trajectory segments go (the learner; may block = backpressure)
    results -> where finished games go (the league's game queue)

A game with roles (actors/roles.py) has a params, league and sink per role (RoleIO): one policy per
role, opponents for a role's sides drawn from that role's league, segments to that role's stream.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Callable

import numpy as np

from actors.config import RolloutSettings
from actors.games import GameSlot, GameSpec
from actors.lanes import Lane, rows_to_segment  # noqa: F401 - rows_to_segment is imported from here too
from actors.memory import SeatMemory
from actors.opponents import OpponentCache
from actors.learners import MAIN, learner_set
from actors.roles import role_of_sides, role_player
from actors.rollout_parts import (  # noqa: F401 - the protocols and RoleIO are imported from here too
    LeagueSource,
    ParamSource,
    ResultSink,
    RoleIO,
    RolloutStats,
    Seating,
    SegmentSink,
    _Role,
)
from actors.seating import owner_of, seat_main, seat_roles, seat_with_exploiters
from actors.teams import shaper_for
from league.pool import LeagueView
from league.records import LEARNER_ID, GameResult
from learner.model import InferencePolicy
from learner.segment import Segment

from actors.scripted import ScriptedFn

_log = logging.getLogger(__name__)


class RolloutWorker:
    def __init__(
        self,
        actor_id: int,
        cfg: RolloutSettings,
        make_slot: Callable[[], GameSlot],
        spec: GameSpec,
        params: ParamSource | None,
        league: LeagueSource | None,
        sink: SegmentSink | None,
        results: ResultSink,
        references: dict[str, ScriptedFn],
        game_kind: str = "train",
        restart_salt: int | None = None,
        roles: dict[str, RoleIO] | None = None,
    ) -> None:
        """`restart_salt`: None for an actor's first incarnation (seeds follow from run.seed, so a run
        can be repeated); a fresh random number for a restarted one, whose games would otherwise
        replay the seeds and opponent draws the dead incarnation already played.
        `roles`: for a game with roles (spec.roles), each role's RoleIO, and params/league/sink None;
        `references` then holds every role's references under role-namespaced ids."""
        self.actor_id = actor_id
        self.cfg = cfg
        self.spec = spec
        self.results = results
        self.references = references
        self.game_kind = game_kind
        self._seed_key = [cfg.run.seed, actor_id] + ([] if restart_salt is None else [restart_salt])
        self.rng = np.random.default_rng(self._seed_key)
        self.roles = self._make_roles(spec, RoleIO(params, league, sink) if roles is None else roles, roles is not None)
        self._latest = {r.latest_id: r.latest for r in self.roles}  # who learns: every role's (every learner's) latest
        self._index = {r.latest_id: k for k, r in enumerate(self.roles)}  # a latest -> its learner's stream
        self._by_name = {r.name: r for r in self.roles}
        self._cache_of: dict[str, OpponentCache] = {}  # seated past opponent -> its role's cache
        self._memory = SeatMemory()  # recurrent policies' states, per (slot, seat)
        self.stats = RolloutStats()
        self._missing: dict[str, int] = {}  # snapshot id -> times it was drawn but missing from the store
        self._last_poll = -1e9
        self._segment_counter = 0
        self.slots = [make_slot() for _ in range(cfg.rollout.envs_per_actor)]
        slot0 = self.slots[0]
        self.num_sides, self.side_of = slot0.num_sides, slot0.side_of
        self.role_of_side = role_of_sides(spec.roles, self.num_sides)
        self._role_of_seat = tuple(self.role_of_side[k] for k in self.side_of)
        # None for two-player games (one agent per side, no zero-sum): their rewards pass untouched.
        self._shape = shaper_for(slot0.sides, cfg.game.team_spirit, cfg.game.zero_sum, cfg.game.reward_scale)
        # A fresh id per incarnation: a restarted actor re-counts episodes from 0, and its games
        # must not be mistaken for duplicates of the dead incarnation's.
        self.incarnation = secrets.token_hex(4)
        self._outboxes: list[list[Segment]] = [[] for _ in self.roles]  # per role: its learner's stream
        self.seatings: list[Seating] = []
        self._lane_owner: list[list[int | None]] = []  # per slot, per seat: whose stream the lane's rows go to

    def _make_roles(self, spec: GameSpec, io: RoleIO | dict[str, RoleIO], with_roles: bool) -> list[_Role]:
        cfg = self.cfg
        if spec.roles and not with_roles:
            raise ValueError(f"game {spec.name!r} has {len(spec.roles)} roles: pass roles={{role: RoleIO}} (and params, league, sink None)")
        if not spec.roles:
            if not with_roles:
                io = {"": io}
            # The one learner of a game without roles, named "", and any of its exploiters (actors/learners.py).
            defs = {d.name: d for d in learner_set(spec, cfg.league)}
            if "" not in io or any(name not in defs for name in io):
                raise ValueError(f"game {spec.name!r} has no roles: pass roles={{'': RoleIO}} (and its exploiters' {sorted(defs)}) or params, league and sink; got {sorted(io)}")
            entries = [(name, defs[name].latest_id, spec, io[name], defs[name].sides, defs[name].kind) for name in defs if name in io]
        else:
            names = [r.name for r in spec.roles]
            if sorted(io) != sorted(names):
                raise ValueError(f"game {spec.name!r} has roles {names}; RoleIO given for {sorted(io)}")
            entries = [(r.name, role_player(r.name, LEARNER_ID), spec.role(r.name), io[r.name], r.sides, MAIN) for r in spec.roles]
        out = []
        for name, latest_id, rspec, rio, sides, kind in entries:
            def build(rspec: GameSpec = rspec) -> InferencePolicy:
                return InferencePolicy(rspec.obs_shape, rspec.num_actions, cfg.model, head=rspec.head)

            cache = OpponentCache(rio.params.fetch_snapshot, build, cfg.rollout.opponent_cache)
            out.append(_Role(name, latest_id, rio, build(), cache, sides, rspec.continuous, kind))
        return out

    @property
    def latest(self) -> InferencePolicy:
        """The first role's latest policy: THE latest policy of a game without roles."""
        return self.roles[0].latest

    @latest.setter
    def latest(self, policy: InferencePolicy) -> None:
        role = self.roles[0]
        role.latest = self._latest[role.latest_id] = policy

    @property
    def _opponents(self) -> OpponentCache:
        """The first role's past opponents (all of them in a game without roles)."""
        return self.roles[0].opponents

    # --- weights ---------------------------------------------------------------------------
    def sync_weights(self, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self._last_poll < self.cfg.rollout.weight_poll_s:
            return False
        self._last_poll = now
        changed = False
        for role in self.roles:
            got = role.io.params.poll(role.latest.version)
            if got is None:
                continue
            version, tensors = got
            role.latest.load(tensors, version)
            self.stats.weight_updates += 1
            changed = True
        return changed

    def _policy(self, player_id: str) -> InferencePolicy:
        """A latest policy, or a past opponent seated in some game slot (always held)."""
        policy = self._latest.get(player_id)
        return policy if policy is not None else self._cache_of[player_id][player_id]

    def _seat_opponent(self, role: _Role, player_id: str) -> None:
        """Hold `player_id`'s policy for as long as a game slot seats it (KeyError: not in the store)."""
        role.opponents.seat(player_id)
        self._cache_of[player_id] = role.opponents
        self.stats.opponent_cache_hits = sum(r.opponents.hits for r in self.roles)
        self.stats.opponent_cache_misses = sum(r.opponents.misses for r in self.roles)

    def _release_opponents(self, seating: Seating) -> None:
        # One release per side seated: each side's opponent was drawn (and seated) on its own.
        for player_id in seating.players:
            if player_id not in self._latest and player_id not in self.references:
                self._cache_of[player_id].release(player_id)

    # --- games -----------------------------------------------------------------------------
    def _seed(self, env_idx: int, episode: int) -> int:
        return int(np.random.SeedSequence([*self._seed_key, env_idx, episode]).generate_state(1)[0])

    def _draw(self, role: _Role, state: LeagueView | None) -> tuple[str, float]:
        """One of `role`'s players from its league (its latest before a league exists), seated in memory."""
        if state is None:
            opponent, prob = role.latest_id, 1.0
        else:
            choice = state.choose(role.latest_id, self.rng, self.cfg.league.latest_prob)
            opponent, prob = choice.player_id, choice.prob
        return self._hold(opponent, prob, state, role)

    def _hold(self, opponent: str, prob: float, state: LeagueView | None, role: _Role) -> tuple[str, float]:
        """Seat a drawn player in memory, its weights from the store of the learner that made it
        (an exploiter's snapshot: the exploiter's; actors/seating.py); `role`'s latest if lost."""
        if opponent not in self._latest and opponent not in self.references:
            maker = role if self.spec.roles else self._by_name.get(owner_of(state, opponent), role)
            try:
                self._seat_opponent(maker, opponent)
            except KeyError:
                opponent, prob = self._missing_snapshot(role, opponent)
        return opponent, prob

    def _missing_snapshot(self, role: _Role, player_id: str) -> tuple[str, float]:
        """A snapshot the league names but the store lost (its key evicted or deleted): play self
        instead, count it, and say so (first time per snapshot, then every 100th) so it is not silent."""
        self.stats.opponent_fallbacks += 1
        missing = self._missing.setdefault(player_id, 0) + 1
        self._missing[player_id] = missing
        if missing == 1 or missing % 100 == 0:
            _log.warning("rollout actor %s: snapshot %s is missing from Redis (lost or evicted); playing the latest instead "
                         "(%d times for it, %d in all)", self.actor_id, player_id, missing, self.stats.opponent_fallbacks)
        return role.latest_id, 1.0

    def _seat_players(self, i: int, episode: int) -> tuple[list[str], float]:
        """Who plays each side of slot i's next game, and the first opponent's draw probability.

        Without roles: the learner on a random side, every other side drawn from the league on its
        own (N-player games meet a mix of past selves), in the same order of draws as always, so
        two-player runs repeat seed for seed. With roles: one role learns in this game, taking
        turns by slot and episode so every role learns as often; every side of the other roles is
        drawn from that role's own league (its latest, which then learns too, or a past self).
        With exploiters: actors/seating.py."""
        if len(self.roles) == 1:
            return seat_main(self, self.roles[0])
        if not self.spec.roles:
            return seat_with_exploiters(self, i)
        return seat_roles(self, i, episode)

    def _new_game(self, i: int, episode: int) -> None:
        """Seat slot i's next game (_seat_players) and flush the lanes of seats that stop learning."""
        players, prob = self._seat_players(i, episode)
        owners = [self._index.get(players[side]) for side in self.side_of]  # whose latest learns in each seat
        if i < len(self.seatings):
            lanes = self.seatings[i].lanes  # lanes persist across games: segments span game ends
            for s, lane in enumerate(lanes):
                # A seat that stops learning, or whose learner changes (exploiters), cuts what it holds
                # and sends it to the learner whose rows they are.
                cut = lane.flush() if owners[s] != self._lane_owner[i][s] else None
                if cut:
                    self._emit(i, s, cut)
            self._lane_owner[i] = owners
        else:
            lanes = [Lane(self.cfg.rollout.segment_length) for _ in self.side_of]
            self._lane_owner.append(owners)
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
        for role in self.roles:
            if role.latest.version < 0:
                whose = f" for role {role.name!r}" if role.name else ""
                raise RuntimeError(f"no weights published yet{whose}; the learner publishes version 0 before actors start")
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
        finished: list[GameResult] = []
        if self.cfg.rollout.random_move_prob > 0 and self.game_kind == "train":
            self._tremble(finished)
        groups = self._decisions()
        for player_id, moves in groups.items():
            role = self.roles[self._role_of_seat[moves[0][1]]]  # a player plays sides of one role only
            continuous, learning = role.continuous, player_id in self._latest
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
                if learning:
                    state = None if states is None else states[j]
                    cut = seating.lanes[seat].decide(obs_j.copy(), mask_j.copy(), action, logps[j], values[j], version, state)
                    if cut:
                        self._emit(i, seat, cut)
                self.stats.env_steps += 1
                gone = slot.left  # seats whose agents left the game before this step
                if slot.simultaneous:
                    rewards = slot.decide(seat, action)
                    if rewards is None:
                        continue  # the step waits for the other live agents' actions
                else:
                    rewards = slot.step(action)
                self._stepped(i, rewards, gone, finished)
        self.stats.ticks += 1
        for r, out_segments in enumerate(self._outboxes):
            if out_segments:
                self._outboxes[r] = []
                self.stats.segments += len(out_segments)
                self.stats.samples += sum(len(s) for s in out_segments)
                self.roles[r].io.sink.send(out_segments)
        if finished:
            self.results.report(finished)

    def _stepped(self, i: int, rewards, gone: frozenset[int], finished: list[GameResult]) -> None:
        """After slot i stepped: its learning seats' rewards, departed agents, a finished game."""
        slot, seating = self.slots[i], self.seatings[i]
        if self._shape is not None:
            rewards = self._shape(rewards, [s not in gone for s in range(len(rewards))] if gone else None)
        for s, side in enumerate(self.side_of):
            if seating.players[side] in self._latest:
                seating.lanes[s].reward(rewards[s])
        if slot.left != gone and not slot.over:
            self._end_departed(i, seating, slot.left - gone)
        if slot.over:
            finished.append(self._finish_game(i))

    def _tremble(self, finished: list[GameResult]) -> None:
        """rollout.random_move_prob: each turn-based slot's next move is, with that probability, a
        uniformly random legal move for the player to move, recorded in no lane (not learned from):
        its rewards still reach the learning seats, as any move's do."""
        p = self.cfg.rollout.random_move_prob
        for i, slot in enumerate(self.slots):
            if slot.simultaneous or self.rng.random() >= p:
                continue
            gone = slot.left
            rewards = slot.step(int(self.rng.choice(np.flatnonzero(slot.mask))))
            self.stats.env_steps += 1
            self._stepped(i, rewards, gone, finished)

    def _end_departed(self, i: int, seating: Seating, seats: frozenset[int]) -> None:
        """A learning agent that left the game (died) has made its last decision: it ends there
        (done, nothing to bootstrap) and collects nothing of what its team earns afterwards."""
        for s in seats:
            if seating.players[self.side_of[s]] in self._latest:
                cut = seating.lanes[s].end_game()
                if cut:
                    self._emit(i, s, cut)

    def _emit(self, i: int, seat: int, cut: list) -> None:
        """A cut segment of slot i's `seat`, to the stream of the learner whose rows its lane holds
        (the seat's role; with exploiters, whichever learner's latest sat there: actors/seating.py)."""
        self._outboxes[self._lane_owner[i][seat]].append(self._segment(*cut))

    def _segment(self, rows: list[tuple], bootstrap: float, initial_state=None) -> Segment:
        self._segment_counter += 1
        return rows_to_segment(rows, bootstrap, self.actor_id, self._segment_counter, initial_state)

    def _finish_game(self, i: int) -> GameResult:
        slot, seating = self.slots[i], self.seatings[i]
        self._bootstrap_truncated(i, slot, seating)
        for s, side in enumerate(self.side_of):
            if seating.players[side] in self._latest:
                cut = seating.lanes[s].end_game()
                if cut:
                    self._emit(i, s, cut)
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
        by_player: dict[str, list[int]] = {}
        for s in slot.truncated:
            pid = seating.players[self.side_of[s]]
            if pid in self._latest:
                by_player.setdefault(pid, []).append(s)
        for pid, seats in by_player.items():  # one batch per learning policy (one without roles)
            policy = self._latest[pid]
            obs = np.stack([slot.truncated[s] for s in seats])
            states = None
            if policy.recurrent:  # V(final observation) given all the seat remembers of this game
                states = policy.initial_state(len(seats))
                for j, s in enumerate(seats):
                    held = self._memory.state(i, s)
                    if held is not None:
                        states[j] = held
            values = policy.value(obs, states)
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
