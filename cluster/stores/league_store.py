"""Redis adapter for the league: state document, game-result queue, Elo history, run health.

Single writer (the league manager in the driver) for state and history; many writers (actors,
evaluators) for the game queue; any number of readers (actors, `selfplay league`, the dashboard).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict

import redis

from cluster.stores.connection import connect
import msgpack

from cluster.stores.keys import CLAIM_GAMES, PUSH_THINNED, RunKeys, runs_index
from cluster.stores.param_store import ParamStore
from cluster.stores.payloads import decode_doc, decode_game, encode_bad_game, encode_doc, encode_game, player_from_body
from league.league import LEARNER, REFERENCE, SNAPSHOT, LeagueState, Player, Roster
from league.payoff import Payoff
from league.pool import LeagueView
from league.records import GameResult
from learner.wire import PayloadError

LEAGUE_SCHEMA, LEAGUE_V = "league_meta", 1
PLAYER_SCHEMA, PLAYER_V = "league_player", 1
HEALTH_SCHEMA, HEALTH_V = "health", 1
META_SCHEMA, META_V = "run_meta", 1
BAD_GAMES_KEPT = 1000
"""Refused game results kept aside in {p}:{run}:games:bad (newest first) for a person to inspect."""

log = logging.getLogger("selfplay.league")


def _encode_player(p: Player) -> bytes:
    return encode_doc(PLAYER_SCHEMA, PLAYER_V, asdict(p))


def _floats(raw: bytes, n: int, key: bytes) -> list[float]:
    v = msgpack.unpackb(raw)
    if not isinstance(v, list) or len(v) != n or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v):
        raise PayloadError(f"league record {key!r}: expected {n} numbers, got {v!r}")
    return [float(x) for x in v]


class RunFormatError(PayloadError):
    """The run in Redis was written in a layout this version does not read."""


class LeagueStore:
    def __init__(self, client: redis.Redis, keys: RunKeys, max_history: int = 500) -> None:
        self.r = client
        self.keys = keys
        self.max_history = max_history
        self.bad_games = 0  # game results refused (malformed, out of range) and set aside
        self.bad_players = 0  # player records a reader skipped (changes_since, players)
        self._claim = client.register_script(CLAIM_GAMES)
        self._push_point = client.register_script(PUSH_THINNED)

    # --- league state ----------------------------------------------------------------------
    def load(self) -> LeagueState | None:
        """The whole league (O(players + pairs)): for the manager at start-up and for views."""
        k = self.keys
        try:
            meta = self._meta()
            if meta is None:
                if self.r.exists(f"{k.base}:league:state"):
                    raise RunFormatError(
                        f"run {k.run_id!r} keeps its league in one document ({k.base}:league:state), as versions before "
                        "the per-player league did: finish that run with the version that started it, or start a new run"
                    )
                return None
            rank = {LEARNER: 0, REFERENCE: 1, SNAPSHOT: 2}  # the order a league adds them in
            found = sorted(self._decode_players(self.r.hvals(k.league_players), strict=True), key=lambda p: (rank.get(p.kind, 3), p.version, p.id))
            players = {p.id: p for p in found}
            results = {key.decode(): _floats(v, 2, key) for key, v in self.r.hgetall(k.league_results).items()}
            payoff = Payoff(decay=float(meta["payoff_decay"]), min_games=float(meta["payoff_min_games"]))
            for key, v in self.r.hgetall(k.league_payoff).items():
                a, b = key.decode().split("\t")
                payoff.set_pair(a, b, _floats(v, 4, key))
            return LeagueState(
                players=players,
                learner_version=int(meta["learner_version"]),
                last_snapshot_version=int(meta["last_snapshot_version"]),
                games_total=int(meta["games_total"]),
                revision=int(meta["revision"]),
                epoch=str(meta.get("epoch", "")),
                payoff=payoff,
                results=results,
                roster=Roster.from_dict(meta["roster"]) if "roster" in meta else None,  # a role's league
            )
        except PayloadError as exc:
            raise PayloadError(f"league in Redis ({k.league_meta} and its hashes) cannot be read: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"league in Redis ({k.league_meta} and its hashes) is malformed: {exc}") from exc

    def save(self, state: LeagueState) -> None:
        """Write what changed since the last save (players, rating pairs, payoff pairs) and the
        scalars, and acknowledge the games claimed by pop_games(), in one transaction. Readers
        find the changed players through the revision log (changes_since)."""
        # MULTI without WATCH: safe because one driver writes a run's league, which the run's lease
        # guarantees (cluster/stores/lease.py: a second driver is refused, one that lost it stops).
        k, revision = self.keys, state.revision + 1
        changed = sorted(state.changed)
        results, payoff = state.elo.take_touched(), state.payoff.take_touched()
        pipe = self.r.pipeline(transaction=True)
        if changed:
            pipe.hset(k.league_players, mapping={pid: _encode_player(state.players[pid]) for pid in changed})
            pipe.zadd(k.league_changes, {pid: revision for pid in changed})
        if results:
            pipe.hset(k.league_results, mapping={f"{a}\t{b}": msgpack.packb(list(v)) for (a, b), v in results.items()})
        if payoff:
            pipe.hset(k.league_payoff, mapping={f"{a}\t{b}": msgpack.packb(v) for (a, b), v in payoff.items()})
        meta = {**state.meta(), "revision": revision}
        pipe.set(k.league_meta, encode_doc(LEAGUE_SCHEMA, LEAGUE_V, meta))
        pipe.delete(k.games_claimed)
        try:
            pipe.execute()
        except BaseException:
            state.elo.touch(results)  # nothing was written: the next save writes it all again
            state.payoff.touch(payoff)
            raise
        state.revision = revision
        state.changed.clear()

    def changes_since(self, epoch: str, revision: int) -> tuple[str, int, int, list[Player], bool] | None:
        """(epoch, revision now, learner version, players changed since `revision`, whether that is
        every player) or None before the league exists. A reader behind by a few saves gets the few
        players those saves changed; a reader with no revision, or one of another league (another
        epoch: a new run under the same id) or of a league restored to an older revision, gets everyone."""
        meta = self._meta()
        if meta is None:
            return None
        now, version, current = int(meta["revision"]), int(meta["learner_version"]), str(meta.get("epoch", ""))
        if current != epoch or revision < 0 or now < revision:
            return current, now, version, self._decode_players(self.r.hvals(self.keys.league_players)), True
        if now == revision:
            return current, now, version, [], False
        ids = self.r.zrangebyscore(self.keys.league_changes, f"({revision}", now)
        raw = self.r.hmget(self.keys.league_players, ids) if ids else []
        return current, now, version, self._decode_players([x for x in raw if x is not None]), False

    def revision(self) -> int:
        meta = self._meta()
        return -1 if meta is None else int(meta["revision"])

    def players(self) -> list[Player]:
        """Every player's record (O(players)), without the rating evidence load() also reads."""
        return self._decode_players(self.r.hvals(self.keys.league_players))

    def payoff_matrix(self, ids: list[str], min_games: float) -> tuple[list[list[float | None]], list[list[float]]]:
        """Payoff.matrix over `ids` read straight from Redis: O(len(ids)^2) pairs, whatever the
        league's size. Win rate of the row player, None on the diagonal and under min_games."""
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:] if a != b]
        ordered = [(a, b) if a < b else (b, a) for a, b in pairs]
        raw = self.r.hmget(self.keys.league_payoff, [f"{a}\t{b}" for a, b in ordered]) if pairs else []
        record: dict[tuple[str, str], list[float]] = {}
        for (a, b), value in zip(ordered, raw):
            if value is not None:
                w, d, l, g = _floats(value, 4, f"{a}\t{b}".encode())
                record[(a, b)], record[(b, a)] = [w, d, l, g], [l, d, w, g]
        rates = [[None] * len(ids) for _ in ids]
        games = [[0.0] * len(ids) for _ in ids]
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                w, d, _, g = record.get((a, b), (0.0, 0.0, 0.0, 0.0))
                games[i][j] = g
                if a != b and g >= min_games and g > 0:
                    rates[i][j] = (w + 0.5 * d) / g
        return rates, games

    def league_meta(self) -> dict | None:
        """The league's scalars (learner_version, games_total, revision, payoff settings...)."""
        return self._meta()

    def _meta(self) -> dict | None:
        raw = self.r.get(self.keys.league_meta)
        return None if raw is None else decode_doc(raw, LEAGUE_SCHEMA, LEAGUE_V)

    def _decode_players(self, raw: list[bytes], strict: bool = False) -> list[Player]:
        """Player records, each checked (payloads.player_from_body). `strict` (the manager loading
        its league): a bad record is an error naming it; otherwise (readers: actors, the dashboard)
        it is skipped, counted in bad_players and logged, so one bad record stops no reader."""
        out = []
        for item in raw:
            try:
                out.append(player_from_body(decode_doc(item, PLAYER_SCHEMA, PLAYER_V)))
            except PayloadError as exc:
                if strict:
                    raise PayloadError(f"{self.keys.league_players}: {exc}") from exc
                self.bad_players += 1
                log.warning("skipped a league player record in %s: %s", self.keys.league_players, exc)
        return out

    # --- game results ----------------------------------------------------------------------
    def push_games(self, results: list[GameResult]) -> None:
        if results:
            self.r.rpush(self.keys.games, *(encode_game(g) for g in results))

    def pop_games(self, max_n: int = 10_000) -> list[GameResult]:
        """Take up to max_n results off the queue. They stay claimed in Redis until the next save()
        acknowledges them with the state they went into, so a crash or a Redis restart in between
        loses none: the same claim is returned again (the manager counts each game id once).
        A result that fails any check (payloads.decode_game) is counted in bad_games, logged and
        set aside (set_aside_raw), never fatal: save() acknowledges it with the rest."""
        raw = self._claim(keys=[self.keys.games, self.keys.games_claimed], args=[max_n])
        out = []
        for item in raw:
            try:
                out.append(decode_game(item))
            except PayloadError as exc:
                self.set_aside_raw(item, str(exc))
        return out

    def set_aside(self, game: GameResult, reason: str) -> None:
        """A decoded result the league could not apply (the manager's isolation of one bad game)."""
        self.set_aside_raw(encode_game(game), reason)

    def set_aside_raw(self, raw: bytes, reason: str) -> None:
        """Count, log and keep a refused game result in {p}:{run}:games:bad (the newest
        BAD_GAMES_KEPT), so a bad record stops nothing and can still be looked at."""
        self.bad_games += 1
        if self.bad_games <= 10 or self.bad_games % 1000 == 0:  # a flood of them does not flood the log
            log.warning("refused game result #%d from %s (kept in %s): %s", self.bad_games, self.keys.games, self.keys.games_bad, reason)
        pipe = self.r.pipeline(transaction=False)
        pipe.lpush(self.keys.games_bad, encode_bad_game(raw, reason, time.time()))
        pipe.ltrim(self.keys.games_bad, 0, BAD_GAMES_KEPT - 1)
        pipe.execute()

    # --- Elo history ---------------------------------------------------------------------
    def record_ratings(self, players: list[Player], learner_version: int, t: float | None = None) -> None:
        """Append a point (t, learner version, Elo, stderr) to each player's own history. A history
        at max_history points is thinned to every other point (the newest kept), so it covers the
        whole run at a resolution that halves as the run doubles, in bounded memory."""
        if not players:
            return
        t = time.time() if t is None else t
        pipe = self.r.pipeline(transaction=False)
        for p in players:
            point = msgpack.packb([t, learner_version, p.elo, p.elo_stderr])
            self._push_point(keys=[self.keys.elo_history(p.id)], args=[point, self.max_history], client=pipe)
        pipe.execute()

    def elo_history(self, player_ids: list[str]) -> dict[str, list[list]]:
        """Each player's points [t, learner version, Elo, stderr or None], oldest first."""
        pipe = self.r.pipeline(transaction=False)
        for pid in player_ids:
            pipe.lrange(self.keys.elo_history(pid), 0, -1)
        out = {}
        for pid, raw in zip(player_ids, pipe.execute()):
            out[pid] = [list(msgpack.unpackb(x)) for x in raw]
        return out

    # --- strength over time ----------------------------------------------------------------
    def record_strength(self, points: dict, env_steps: int, t: float | None = None) -> None:
        """Append [t, env steps, learner version, wins, draws, losses] to each reference's history
        of the latest policy's score against it (league/strength.py StrengthPoint by reference id),
        thinned like the Elo histories."""
        if not points:
            return
        t = time.time() if t is None else t
        pipe = self.r.pipeline(transaction=False)
        for ref, p in points.items():
            point = msgpack.packb([t, int(env_steps), p.version, p.wins, p.draws, p.losses])
            self._push_point(keys=[self.keys.strength(ref)], args=[point, self.max_history], client=pipe)
        pipe.execute()

    def strength_history(self, reference_ids: list[str]) -> dict[str, list[list]]:
        """Each reference's points [t, env steps, version, wins, draws, losses], oldest first
        (references the latest has not played yet are left out)."""
        pipe = self.r.pipeline(transaction=False)
        for ref in reference_ids:
            pipe.lrange(self.keys.strength(ref), 0, -1)
        return {ref: [list(msgpack.unpackb(x)) for x in raw] for ref, raw in zip(reference_ids, pipe.execute()) if raw}

    # --- exploitability over time (leduc_holdem_v4) -----------------------------------------
    def record_exploitability(self, t: float, version: int, latest: float, mixture: float, snapshots: int) -> None:
        """Append [t, latest version, latest's and the league mixture's exploitability (chips per
        hand), snapshots in the mixture] (actors/exploitability.py), thinned like the Elo histories."""
        point = msgpack.packb([float(t), int(version), float(latest), float(mixture), int(snapshots)])
        self._push_point(keys=[self.keys.exploitability], args=[point, self.max_history])

    def exploitability_history(self) -> list[list[float]]:
        """The points [t, version, latest, mixture, snapshots], oldest first; empty for other games."""
        key = self.keys.exploitability
        return [_floats(raw, 5, key.encode()) for raw in self.r.lrange(key, 0, -1)]

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
    """Actor-side view of the league (league/pool.py LeagueView): at most every refresh_s it asks
    the store for the players changed since its revision, so a refresh costs per change, not per
    player. `sampler`: the opponent sampler the view indexes the pool for (None: no drawing)."""

    def __init__(self, store: LeagueStore, refresh_s: float = 1.0, sampler: str | None = None) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.sampler = sampler
        self._view = LeagueView(sampler)
        self._loaded_at = -1e9
        self._stale = True
        self.players_read = 0  # player records fetched so far: what refreshes cost

    def invalidate(self) -> None:
        """Reload on the next call (used by the in-process runner right after a league step)."""
        self._stale = True

    def state(self) -> LeagueView | None:
        now = time.monotonic()
        if self._stale or now - self._loaded_at >= self.refresh_s:
            self._loaded_at, self._stale = now, False
            try:
                got = self.store.changes_since(self._view.epoch, self._view.revision)
            except (redis.ConnectionError, redis.TimeoutError):
                got = None  # keep sampling from the last view while Redis is away
            if got is not None:
                epoch, revision, learner_version, players, everyone = got
                if everyone:
                    self._view = LeagueView(self.sampler)
                    self._view.epoch = epoch
                self._view.apply(players, revision, learner_version)
                self.players_read += len(players)
        return self._view if self._view.revision >= 0 else None


class RedisResultSink:
    """Where rollout workers and evaluators report finished games: the run's game queue, or, in a
    game with roles, every role's (each role's league manager claims its own copy)."""

    def __init__(self, store: LeagueStore, *more: LeagueStore) -> None:
        self.store = store
        self.more = more

    def report(self, results: list[GameResult]) -> None:
        self.store.push_games(results)
        for store in self.more:
            store.push_games(results)


def run_stores(cfg, redis_url: str, run_id: str, role: str = "") -> tuple[ParamStore, LeagueStore]:
    """The run's parameter store and league store on one connection, sized from the config
    (redis.key_prefix, redis.keep_versions, league.max_history): what every process of a run opens.
    `role`: one role's stores, in a game with roles (RunKeys.for_role)."""
    client = connect(redis_url)
    keys = RunKeys(cfg.redis.key_prefix, run_id).for_role(role)
    return ParamStore(client, keys, cfg.redis.keep_versions), LeagueStore(client, keys, cfg.league.max_history)
