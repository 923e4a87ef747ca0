"""Redis adapter for the league: state document, game-result queue, Elo history, run health.

Single writer (the league manager in the driver) for state and history; many writers (actors,
evaluators) for the game queue; any number of readers (actors, `selfplay league`, the dashboard).
"""

from __future__ import annotations

import time

import redis

from cluster.stores.connection import connect
from cluster.stores.keys import CLAIM_GAMES, RunKeys, runs_index
from cluster.stores.param_store import ParamStore
from cluster.stores.payloads import decode_doc, decode_game, encode_doc, encode_game
from league.league import LeagueState
from league.records import GameResult
from learner.wire import PayloadError

STATE_SCHEMA, STATE_V = "league_state", 1
POINT_SCHEMA, POINT_V = "elo_point", 1
HEALTH_SCHEMA, HEALTH_V = "health", 1
META_SCHEMA, META_V = "run_meta", 1

class LeagueStore:
    def __init__(self, client: redis.Redis, keys: RunKeys, max_history: int = 2000) -> None:
        self.r = client
        self.keys = keys
        self.max_history = max_history
        self.corrupt_games = 0
        self._claim = client.register_script(CLAIM_GAMES)

    # --- league state ----------------------------------------------------------------------
    def load(self) -> LeagueState | None:
        raw = self.r.get(self.keys.league_state)
        if raw is None:
            return None
        try:
            return LeagueState.from_dict(decode_doc(raw, STATE_SCHEMA, STATE_V))
        except PayloadError as exc:
            raise PayloadError(f"league state in Redis ({self.keys.league_state}) cannot be read: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"league state in Redis ({self.keys.league_state}) is malformed: {exc}") from exc

    def save(self, state: LeagueState) -> None:
        """Write the state and, in the same transaction, acknowledge the games claimed by pop_games()."""
        state.revision += 1
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self.keys.league_state, encode_doc(STATE_SCHEMA, STATE_V, state.to_dict()))
        pipe.delete(self.keys.games_claimed)
        pipe.execute()

    # --- game results ----------------------------------------------------------------------
    def push_games(self, results: list[GameResult]) -> None:
        if results:
            self.r.rpush(self.keys.games, *(encode_game(g) for g in results))

    def pop_games(self, max_n: int = 10_000) -> list[GameResult]:
        """Take up to max_n results off the queue. They stay claimed in Redis until the next save()
        acknowledges them with the state they went into, so a crash or a Redis restart in between
        loses none: the same claim is returned again (the manager counts each game id once).
        Corrupt entries are counted and dropped, not fatal."""
        raw = self._claim(keys=[self.keys.games, self.keys.games_claimed], args=[max_n])
        out = []
        for item in raw:
            try:
                out.append(decode_game(item))
            except PayloadError:
                self.corrupt_games += 1
        return out

    # --- history ---------------------------------------------------------------------------
    def append_history(self, state: LeagueState) -> None:
        point = {
            "t": time.time(),
            "learner_version": state.learner_version,
            "ratings": {p.id: [p.elo, p.elo_stderr] for p in state.players.values()},
        }
        pipe = self.r.pipeline(transaction=False)
        pipe.rpush(self.keys.league_history, encode_doc(POINT_SCHEMA, POINT_V, point))
        pipe.ltrim(self.keys.league_history, -self.max_history, -1)
        pipe.execute()

    def history(self) -> list[dict]:
        return [decode_doc(x, POINT_SCHEMA, POINT_V) for x in self.r.lrange(self.keys.league_history, 0, -1)]

    # --- run health and metadata ------------------------------------------------------------
    def set_health(self, health: dict) -> None:
        self.r.set(self.keys.health, encode_doc(HEALTH_SCHEMA, HEALTH_V, health))

    def health(self) -> dict | None:
        raw = self.r.get(self.keys.health)
        return None if raw is None else decode_doc(raw, HEALTH_SCHEMA, HEALTH_V)

    def set_meta(self, meta: dict) -> None:
        self.r.set(self.keys.meta, encode_doc(META_SCHEMA, META_V, meta))
        self.r.zadd(self.keys.runs, {self.keys.run_id: meta.get("started_at", time.time())}, nx=True)

    def meta(self) -> dict | None:
        raw = self.r.get(self.keys.meta)
        return None if raw is None else decode_doc(raw, META_SCHEMA, META_V)


def list_runs(client: redis.Redis, prefix: str) -> list[str]:
    """Run ids in this Redis, oldest first."""
    return [x.decode() for x in client.zrange(runs_index(prefix), 0, -1)]


class LeagueReader:
    """Actor-side cached view of the league for opponent sampling; reloads at most every refresh_s."""

    def __init__(self, store: LeagueStore, refresh_s: float = 1.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._state: LeagueState | None = None
        self._loaded_at = -1e9
        self._stale = True

    def invalidate(self) -> None:
        """Reload on the next call (used by the in-process runner right after a league step)."""
        self._stale = True

    def state(self) -> LeagueState | None:
        now = time.monotonic()
        if self._stale or now - self._loaded_at >= self.refresh_s:
            self._loaded_at, self._stale = now, False
            try:
                fresh = self.store.load()
            except (redis.ConnectionError, redis.TimeoutError):
                fresh = None  # keep sampling from the last view while Redis is away
            if fresh is not None:
                self._state = fresh
        return self._state


class RedisResultSink:
    """Where rollout workers and evaluators report finished games: the run's game queue."""

    def __init__(self, store: LeagueStore) -> None:
        self.store = store

    def report(self, results: list[GameResult]) -> None:
        self.store.push_games(results)


def run_stores(cfg, redis_url: str, run_id: str) -> tuple[ParamStore, LeagueStore]:
    """The run's parameter store and league store on one connection, sized from the config
    (redis.key_prefix, redis.keep_versions, league.max_history): what every process of a run opens."""
    client = connect(redis_url)
    keys = RunKeys(cfg.redis.key_prefix, run_id)
    return ParamStore(client, keys, cfg.redis.keep_versions), LeagueStore(client, keys, cfg.league.max_history)
