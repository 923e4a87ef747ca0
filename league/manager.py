"""The league manager: the single writer that turns reported games into ratings and snapshots.

Every step costs per game reported and per player changed, never per player in the league: games
update their players in O(1), the store writes only what changed, and the rating fit (sparse and
warm-started, league/ratings.py) runs on its own cadence (league.rating_every_s) rather than on
every step. Duplicate reports are caught within a window of recent game ids, so memory stays
bounded over a run of days.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Mapping, Protocol

from league.config import LeagueConfig
from league.league import LeagueState, Player
from league.records import GameResult
from league.strength import StrengthPoint, StrengthTracker

DEDUPE_WINDOW = 200_000
"""Game ids remembered to count a game reported twice once. A duplicate comes from a push retried
after a lost reply or a claim re-read after a crash, seconds apart, never hours."""


class GameSource(Protocol):
    bad_games: int  # game results refused: failed the store's checks, or set aside by the manager

    def set_aside(self, game: GameResult, reason: str) -> None: ...
    def pop_games(self, max_n: int = ...) -> list[GameResult]: ...
    def save(self, state: LeagueState) -> None: ...
    def record_ratings(self, players: list[Player], learner_version: int) -> None: ...
    def record_strength(self, points: dict[str, StrengthPoint], env_steps: int) -> None: ...


class SnapshotWriter(Protocol):
    def latest_version(self) -> int: ...
    def snapshot_from_published(self, player_id: str, version: int) -> None: ...


class RecentIds:
    """A set of the last `capacity` ids added (oldest forgotten first)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, game_id: str) -> bool:
        """Remember game_id; False if it was already remembered."""
        if game_id in self._ids:
            return False
        self._ids[game_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


class LeagueManager:
    def __init__(
        self,
        store: GameSource,
        params: SnapshotWriter,
        cfg: LeagueConfig,
        state: LeagueState,
        clock: Callable[[], float] = time.monotonic,
        dedupe_window: int = DEDUPE_WINDOW,
    ) -> None:
        self.store = store
        self.params = params
        self.cfg = cfg
        self.state = state
        self.clock = clock
        self.seen_game_ids = RecentIds(dedupe_window)
        self.duplicate_games = 0  # reported more than once and counted once
        self._fitted_at = -float("inf")
        self._history_started = False
        self._new_evidence = True
        self.fit_seconds = 0.0  # time spent in rating fits so far
        self.strength = StrengthTracker()

    @property
    def bad_games(self) -> int:
        """Game results refused (malformed or out of range) and set aside, never applied."""
        return self.store.bad_games

    def step(self, learner_version: int, refit: bool = False, env_steps: int = -1, versions: Mapping[str, int] | None = None) -> list[str]:
        """Apply queued games, append the latest's score against each reference it played
        (league/strength.py; stamped with `env_steps`, -1 when unknown), refit the ratings if due
        (or `refit`), add a snapshot if one is due, save. Returns new snapshot ids.
        `versions`: the versions of this league's other learner players (a role's league holds
        the latest of every role: cluster/run/leagues.py), by player id."""
        st = self.state
        for g in self.store.pop_games():
            if not self.seen_game_ids.add(g.game_id):
                self.duplicate_games += 1
                continue  # reported twice (e.g. an actor retried a push): count once
            try:
                st.record(g, self.cfg)
            except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
                # One bad game must not stop the league (nor every --resume that reclaims it):
                # set it aside, counted in bad_games, and go on with the rest.
                self.store.set_aside(g, f"the league could not apply it: {type(exc).__name__}: {exc}")
                continue
            self.strength.add(g, st)
            self._new_evidence = True
        points = self.strength.take()
        if points:
            self.store.record_strength(points, env_steps)
        now = self.clock()
        if refit or (self._new_evidence and now - self._fitted_at >= self.cfg.rating_every_s):
            self._fitted_at, self._new_evidence = now, False
            moved = st.refit()
            self.fit_seconds += self.clock() - now
            if not self._history_started:  # every player's first point, anchors included (once per start)
                moved, self._history_started = list(st.players), True
            self.store.record_ratings([st.players[pid] for pid in moved], learner_version)
        if st.learner_version != learner_version:
            st.learner_version = learner_version
            st.players[st.learner_id].version = learner_version
            st.changed.add(st.learner_id)
        for pid, version in (versions or {}).items():
            player = st.players.get(pid)
            if player is not None and player.version != version:
                player.version = version
                st.changed.add(pid)
        added = []
        published = self.params.latest_version()
        if published >= 0 and st.due_snapshot(published, self.cfg.snapshot_every):
            # Copy the bytes of that published version first (the snapshot never aliases live
            # weights), then list the player: the league never names a snapshot without weights.
            pid = st.snapshot_id(published)
            self.params.snapshot_from_published(pid, published)
            self.store.record_ratings([st.add_snapshot(published)], learner_version)  # its first point
            added.append(pid)
        self.store.save(st)
        return added
