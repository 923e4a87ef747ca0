"""THE Redis key layout of a run: every key, its type, who writes it and who reads it.

Every key starts with `redis.key_prefix` (default "selfplay"), so one Redis can hold several runs;
`{p}` below is that prefix and `{run}` the run id. Values are msgpack payloads (learner/wire.py,
cluster/stores/payloads.py), never pickle. RunKeys builds every key; the two Lua scripts, which
take keys as arguments, are here too, so that this file is the whole layout.

| key                           | type       | value                                   | writer                                   | readers                                            |
|-------------------------------|------------|-----------------------------------------|------------------------------------------|----------------------------------------------------|
| {p}:runs                      | sorted set | run ids, score = start time             | driver (LeagueStore.set_meta, once)      | `selfplay league` / `dashboard` (list_runs)        |
| {p}:{run}:meta                | string     | run_meta doc (game, config, running...) | driver (set_meta)                        | CLI, dashboard, `--resume`                         |
| {p}:{run}:lease               | string     | run_lease doc (token, host, pid), PX ttl | driver (RunLease: SET NX; renew, release by Lua) | a second driver (refused), cluster/stores/lease.py |
| {p}:{run}:params:version      | string     | newest published version (integer)      | learner (PUBLISH_WEIGHTS)                | rollout actors, evaluators (poll), league manager  |
| {p}:{run}:params:versions     | sorted set | published versions, score = version     | learner (PUBLISH_WEIGHTS, trims)         | PUBLISH_WEIGHTS only                               |
| {p}:{run}:params:w:{version}  | string     | weights payload; newest keep_versions   | learner (PUBLISH_WEIGHTS, deletes old)   | actors, evaluators, league manager, driver, CLI, play page |
| {p}:{run}:snap:{player_id}    | string     | weights payload, written once (SET NX)  | league manager (snapshot_from_published) | actors (past opponents), evaluators, CLI, play page (lists them: SCAN snap:*) |
| {p}:{run}:league:meta         | string     | league_meta doc (revision, versions...) | league manager (LeagueStore.save)        | actors, evaluators (LeagueReader), CLI, dashboard  |
| {p}:{run}:league:players      | hash       | player id -> league_player doc          | league manager (save: changed ones only) | LeagueReader (changed ones), CLI, dashboard        |
| {p}:{run}:league:changes      | sorted set | player id, score = revision it changed  | league manager (save)                    | LeagueReader (ZRANGEBYSCORE since its revision)    |
| {p}:{run}:league:results      | hash       | "a\tb" -> [score of a, games] (ratings) | league manager (save: changed pairs)     | league manager on resume, CLI                      |
| {p}:{run}:league:payoff       | hash       | "a\tb" -> a's decayed [W, D, L, games]  | league manager (save: changed pairs)     | league manager on resume, dashboard                |
| {p}:{run}:league:elo:{player} | list       | [t, version, Elo, stderr], thinned      | league manager (record_ratings)          | dashboard                                          |
| {p}:{run}:league:strength:{ref} | list     | [t, env steps, version, W, D, L], thinned | league manager (record_strength)       | dashboard (latest's score against ref over time)   |
| {p}:{run}:league:exploitability | list     | [t, version, latest, mixture, snapshots], thinned | first evaluator (record_exploitability; leduc_holdem_v4) | dashboard |
| {p}:{run}:games               | list       | game payloads, a queue                  | actors, evaluators, driver (push_games)  | league manager (CLAIM_GAMES)                       |
| {p}:{run}:games:claimed       | list       | games claimed, not yet acknowledged     | league manager (CLAIM_GAMES; save empties it) | league manager                                |
| {p}:{run}:games:bad           | list       | refused game results, newest first, trimmed to 1000 | league manager (LeagueStore.set_aside_raw) | a person (docs/faults.md)               |
| {p}:{run}:health              | string     | health doc (rates, lag, actor stats)    | driver (set_health)                      | dashboard, benchmarks                              |
| {p}:{run}:replays             | set        | "player\treference" pairs with replays   | evaluators (ReplayStore.keep)            | `selfplay replay`, dashboard replay page           |
| {p}:{run}:replays:{a}:{ref}   | list       | replay payloads, oldest first, trimmed to eval.replays_per_pair | evaluators (ReplayStore.keep: RPUSH, LTRIM) | `selfplay replay`, dashboard replay page |

`{a}` in replays:{a}:{ref} is the rated player's id (`latest` or a snapshot id) and `{ref}` the reference's.

A game with roles (actors/roles.py) gives each role its own parameters, league and game queue: the
params:*, league:* and games* keys above live under {p}:{run}:role:{role}: instead of {p}:{run}:
(RunKeys.for_role), so each role's versions count on their own and each role's league manager
claims its own copy of every game (actors report a game to every role's queue). Snapshots, health,
meta and replays stay the run's: a role's player ids are namespaced already (`adversary/v000010`).

"Driver" is the process running `selfplay train` (cluster/run/trainer.py, or cluster/run/inline.py
in-process); the league manager runs in it. "Learner" is the learner's Ray actor
(cluster/remote/learner_service.py), or the in-process runner.
"""

from __future__ import annotations

from dataclasses import dataclass


def runs_index(prefix: str) -> str:
    """The sorted set of run ids by start time, shared by all runs under this prefix."""
    return f"{prefix}:runs"


@dataclass(frozen=True)
class RunKeys:
    """Every Redis key of one run (the table above). One place, so nobody builds keys by hand."""

    prefix: str
    run_id: str
    role: str = ""
    """A role's keys (actors/roles.py): its own parameters and league under {run}:role:{role}:.
    Empty for a game without roles, whose keys are exactly the table's."""

    @property
    def base(self) -> str:
        return f"{self.prefix}:{self.run_id}"

    @property
    def own(self) -> str:
        """Where this role's parameters and league live: the run's base for a game without roles."""
        return f"{self.base}:role:{self.role}" if self.role else self.base

    def for_role(self, role: str) -> "RunKeys":
        """The keys of one role's policy, league and game queue; snapshots, health and meta stay the
        run's (snapshot ids are namespaced by role already)."""
        return RunKeys(self.prefix, self.run_id, role)

    @property
    def runs(self) -> str:
        return runs_index(self.prefix)

    meta = property(lambda s: f"{s.base}:meta")
    param_version = property(lambda s: f"{s.own}:params:version")
    param_versions = property(lambda s: f"{s.own}:params:versions")
    league_meta = property(lambda s: f"{s.own}:league:meta")
    league_players = property(lambda s: f"{s.own}:league:players")
    league_changes = property(lambda s: f"{s.own}:league:changes")
    league_results = property(lambda s: f"{s.own}:league:results")
    league_payoff = property(lambda s: f"{s.own}:league:payoff")
    games = property(lambda s: f"{s.own}:games")
    games_claimed = property(lambda s: f"{s.own}:games:claimed")
    games_bad = property(lambda s: f"{s.own}:games:bad")
    health = property(lambda s: f"{s.base}:health")

    weights_prefix = property(lambda s: f"{s.own}:params:w:")

    def weights(self, version: int) -> str:
        return f"{self.weights_prefix}{version}"

    def elo_history(self, player_id: str) -> str:
        return f"{self.own}:league:elo:{player_id}"

    def strength(self, reference_id: str) -> str:
        return f"{self.own}:league:strength:{reference_id}"

    exploitability = property(lambda s: f"{s.own}:league:exploitability")

    def snapshot(self, player_id: str) -> str:
        return f"{self.base}:snap:{player_id}"

    replay_pairs = property(lambda s: f"{s.base}:replays")

    def replays(self, player_id: str, reference: str) -> str:
        return f"{self.base}:replays:{player_id}:{reference}"


# Publish weights (KEYS: params:version, params:w: prefix, params:versions; ARGV: version, blob,
# keep): refuse a version that is not newer, write the blob, bump the version, drop all but the
# newest `keep` blobs. Atomic, so a reader never sees a version whose blob is missing.
PUBLISH_WEIGHTS = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
local new = tonumber(ARGV[1])
-- The published version again is allowed only when its weights are gone (evicted, lost): a republish.
if new < cur or (new == cur and redis.call('EXISTS', KEYS[2] .. new) == 1) then
  return redis.error_reply('STALE version ' .. new .. ' is not newer than published ' .. cur)
end
redis.call('SET', KEYS[2] .. new, ARGV[2])
redis.call('ZADD', KEYS[3], new, new)
redis.call('SET', KEYS[1], new)
local keep = tonumber(ARGV[3])
local n = redis.call('ZCARD', KEYS[3])
if n > keep then
  local old = redis.call('ZRANGE', KEYS[3], 0, n - keep - 1)
  for _, v in ipairs(old) do redis.call('DEL', KEYS[2] .. v) end
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, n - keep - 1)
end
return cur
"""

# Claim games (KEYS: games, games:claimed; ARGV: max): move up to ARGV[1] results from the game
# queue to the claimed list, unless an earlier claim is still unacknowledged; return the claimed
# list. Re-running it (a retry after a lost reply) returns the same claim.
CLAIM_GAMES = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  for i = 1, tonumber(ARGV[1]) do
    local item = redis.call('LPOP', KEYS[1])
    if not item then break end
    redis.call('RPUSH', KEYS[2], item)
  end
end
return redis.call('LRANGE', KEYS[2], 0, -1)
"""

# Append a point to a bounded history (KEYS: the list; ARGV: point, max length). Past the max, keep
# the first point and every other one counting back from the newest: the history still spans the
# whole run, older stretches at coarser resolution, and appends stay amortised O(1). Rewritten in chunks (Lua's unpack has a limit).
PUSH_THINNED = """
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
if n > tonumber(ARGV[2]) then
  local all = redis.call('LRANGE', KEYS[1], 0, -1)
  local keep = {}
  for i = n, 2, -2 do keep[#keep + 1] = all[i] end
  keep[#keep + 1] = all[1]
  redis.call('DEL', KEYS[1])
  for i = #keep, 1, -500 do
    local chunk = {}
    for j = i, math.max(1, i - 499), -1 do chunk[#chunk + 1] = keep[j] end
    redis.call('RPUSH', KEYS[1], unpack(chunk))
  end
end
return n
"""
