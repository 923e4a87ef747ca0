"""The league manager: the single writer that turns reported games into ratings and snapshots."""

from __future__ import annotations

from typing import Protocol

from league.config import LeagueConfig
from league.league import LeagueState, snapshot_id
from league.records import LEARNER_ID, GameResult


class GameSource(Protocol):
    def pop_games(self, max_n: int = ...) -> list[GameResult]: ...
    def load(self) -> LeagueState | None: ...
    def save(self, state: LeagueState) -> None: ...
    def append_history(self, state: LeagueState) -> None: ...


class SnapshotWriter(Protocol):
    def latest_version(self) -> int: ...
    def snapshot_from_published(self, player_id: str, version: int) -> None: ...


class LeagueManager:
    def __init__(self, store: GameSource, params: SnapshotWriter, cfg: LeagueConfig, state: LeagueState) -> None:
        self.store = store
        self.params = params
        self.cfg = cfg
        self.state = state
        self.seen_game_ids: set[str] = set()
        self.duplicate_games = 0  # reported more than once and counted once

    def step(self, learner_version: int) -> list[str]:
        """Apply queued games, add a snapshot if one is due, save. Returns new snapshot ids."""
        for g in self.store.pop_games():
            if g.game_id in self.seen_game_ids:
                self.duplicate_games += 1
                continue  # reported twice (e.g. an actor retried a push): count once
            self.seen_game_ids.add(g.game_id)
            self.state.record(g, self.cfg)
        st = self.state
        st.refit()
        st.learner_version = learner_version
        st.players[LEARNER_ID].version = learner_version
        added = []
        published = self.params.latest_version()
        if published >= 0 and st.due_snapshot(published, self.cfg.snapshot_every):
            # Copy the bytes of that published version first (the snapshot never aliases live
            # weights), then list the player: the league never names a snapshot without weights.
            pid = snapshot_id(published)
            self.params.snapshot_from_published(pid, published)
            st.add_snapshot(published)
            added.append(pid)
        self.store.save(st)
        self.store.append_history(st)
        return added
