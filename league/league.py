"""The league as plain data plus pure update rules: players, ratings, quality scores, snapshots.

One writer (the league manager) applies reported games to a LeagueState; actors only read it to
sample opponents. It is plain data, unit-tested without Redis; a store keeps it as one record per
player and per pair (cluster/stores/league_store.py) and, since the state remembers what changed,
writes only that: a league of thousands costs per game what a league of ten does.

Ratings are not online Elo updates (whose value depends on the order games arrive in) but a
Bradley-Terry fit in Elo units over all head-to-head results, anchored at the random player = 0,
with a standard error per player. The learner changes while it plays, so each of its games is
credited to the frozen identity it was closest to: the newest snapshot at or below the version that
played it. Only games at versions past the newest snapshot count for "latest" itself; when a new
snapshot is taken they move to the snapshot they belong to. Every snapshot's record is therefore
stationary evidence that never has to be forgotten.

Rating games (kind "eval": evaluators against fixed references) always feed the fit; training games
only when league.rate_training_games is set. Every game between two different players also goes
into the AlphaStar payoff table (decayed, by player id), which tracks current strength rather than
rating identities. Only the random player is an anchor; other scripted references are fixed players
whose Elo is fitted like anyone's, and evaluation-only references are never training opponents.
"""

from __future__ import annotations

import bisect
import secrets
from dataclasses import asdict, dataclass, field

from league.config import LeagueConfig
from league.payoff import Payoff
from league.ratings import EloFit
from league.records import RANDOM_ID, GameResult
from league.roster import Roster  # noqa: F401 - imported from here too
from league.sampling import PoolEntry, initial_quality, quality_after_win

LEARNER, SNAPSHOT, REFERENCE = "learner", "snapshot", "reference"
ANCHORS: dict[str, float] = {RANDOM_ID: 0.0}
"""References whose Elo is fixed (the scale's zero); every other player's Elo is fitted."""


@dataclass
class Player:
    id: str
    kind: str  # learner | snapshot | reference
    version: int  # learner version of its weights; -1 for references
    elo: float = 0.0
    elo_stderr: float | None = None
    quality: float = 0.0  # OpenAI Five quality score (past pool only)
    games: int = 0
    wins: int = 0
    draws: int = 0
    losses: int = 0
    vs_random: list = field(default_factory=lambda: [0, 0, 0])  # W, D, L against the random player
    vs_learner: list = field(default_factory=lambda: [0, 0, 0])  # the learner's W, D, L against this player
    training_opponent: bool = True  # training games may draw it; False for evaluation-only references
    payoff_win_rate: float = 0.5  # the learner's decayed payoff win rate against it, shrunk (league.pfsp_prior_games): what PFSP weighs
    owner: str = ""  # a snapshot's learner: "" this league's own; an exploiter's name (actors/learners.py) for its snapshots
    vs_main: float | None = None  # an exploiter's snapshot: its payoff win rate against the main agent's latest when taken
    exploiter_win_rates: dict = field(default_factory=dict)  # exploiter latest id -> its shrunk payoff win rate against this player (league exploiters' PFSP)
    reset_version: int = 0  # an exploiter's latest: the version it was last reset at (0: never)

    def pool_entry(self) -> PoolEntry:
        return PoolEntry(quality=self.quality, win_rate=self.payoff_win_rate)

    @property
    def in_pool(self) -> bool:
        """A past opponent training games may draw (snapshots, training references)."""
        return self.kind != LEARNER and self.training_opponent

    @property
    def pinned(self) -> bool:
        return self.kind == REFERENCE and self.id in ANCHORS

    def win_rate_vs_random(self) -> float | None:
        w, d, l = self.vs_random
        n = w + d + l
        return None if n == 0 else (w + 0.5 * d) / n

    def learner_win_rate(self) -> float:
        """P(learner beats this player) from their games, 0.5 before any (AlphaStar's prior)."""
        w, d, l = self.vs_learner
        n = w + d + l
        return 0.5 if n == 0 else (w + 0.5 * d) / n


def snapshot_id(version: int) -> str:
    return f"v{version:06d}"


class LeagueState:
    """Players, rating evidence and payoff; every update is O(1) or O(log N) in the league's size
    (snapshot-taking O(N) once per snapshot), and what changed is remembered (`changed`, and the
    rating fit's and the payoff's touched pairs) so that a store writes only that."""

    def __init__(
        self,
        players: dict[str, Player] | None = None,
        learner_version: int = 0,
        last_snapshot_version: int = -1,  # -1: none yet; version 0 (the initial policy) is the first
        games_total: int = 0,
        revision: int = 0,  # bumps on every save so readers fetch only what changed since theirs
        payoff: Payoff | None = None,  # AlphaStar: decayed W/D/L per pair of player ids
        results: dict | None = None,  # "a\tb" (a < b) -> [score of a, games]: the rating evidence
        epoch: str = "",  # names this league: a reader whose epoch differs reads everything again
        roster: "Roster | None" = None,
    ) -> None:
        self.roster = roster or Roster()
        self.learner_id = self.roster.learner_id
        self.epoch = epoch
        self.players: dict[str, Player] = players if players is not None else {}
        self.learner_version = learner_version
        self.last_snapshot_version = last_snapshot_version
        self.games_total = games_total
        self.revision = revision
        self.payoff = payoff if payoff is not None else Payoff()
        self.elo = EloFit(self.roster.anchors)
        for key, (score, games) in (results or {}).items():
            a, b = key.split("\t")
            if games > 0:
                self.elo.add(a, b, float(score), float(games))
        self.elo.take_touched()
        # The league's own learner's snapshots (what rating_identity credits); exploiters' apart.
        self._snapshots = sorted((p.version, p.id) for p in self.players.values() if p.kind == SNAPSHOT and not p.owner)
        self._owned: dict[str, int] = {}  # exploiter name -> the version of its newest snapshot
        for p in self.players.values():
            if p.kind == SNAPSHOT and p.owner:
                self._owned[p.owner] = max(self._owned.get(p.owner, -1), p.version)
        self._pool_size = sum(p.in_pool for p in self.players.values())
        self._references = {pid: p for pid, p in self.players.items() if p.kind == REFERENCE}
        self.changed: set[str] = set()  # players whose record changed since the store last saved

    @classmethod
    def new(
        cls,
        reference_ids: tuple[str, ...] = (RANDOM_ID,),
        eval_references: tuple[str, ...] = (),
        payoff_decay: float = 0.99,
        roster: "Roster | None" = None,
    ) -> "LeagueState":
        """`reference_ids` are training opponents too; `eval_references` only play rating games.
        `roster`: whose league this is (a role's, see Roster); the one-role league by default."""
        roster = roster or Roster()
        state = cls(payoff=Payoff(decay=payoff_decay), epoch=secrets.token_hex(6), roster=roster)
        for learner_id in roster.learner_ids:
            state._join(Player(learner_id, LEARNER, 0))
        if roster.pool_latest_id:
            state._join(Player(roster.pool_latest_id, LEARNER, 0))  # drawn as "latest", never from the pool
        for exploiter_id in roster.exploiter_ids:
            state._join(Player(exploiter_id, LEARNER, 0))
        anchors = roster.anchors
        for ref in reference_ids:
            state._join(Player(ref, REFERENCE, -1, elo=anchors.get(ref, 0.0)))
        for ref in eval_references:
            if ref not in state.players:
                state._join(Player(ref, REFERENCE, -1, elo=anchors.get(ref, 0.0), training_opponent=False))
        return state

    def mark_all_changed(self) -> None:
        """Everything counts as changed (a store that must write the whole state, e.g. a new Redis)."""
        self.changed.update(self.players)
        self.elo.touch_all()
        self.payoff.touch_all()

    def _join(self, player: Player) -> None:
        self.players[player.id] = player
        self._pool_size += player.in_pool
        if player.kind == REFERENCE:
            self._references[player.id] = player
        if player.kind == SNAPSHOT and not player.owner:
            bisect.insort(self._snapshots, (player.version, player.id))
        elif player.kind == SNAPSHOT:
            self._owned[player.owner] = max(self._owned.get(player.owner, -1), player.version)
        self.changed.add(player.id)

    # --- reading ---------------------------------------------------------------------------
    @property
    def results(self) -> dict[str, list[float]]:
        """The rating evidence as "a\tb" (a < b) -> [score of a, games] (a copy; O(pairs))."""
        return {f"{a}\t{b}": [s, n] for a, b, s, n in self.elo.pairs()}

    @property
    def snapshot_count(self) -> int:
        return len(self._snapshots)

    def snapshot_ids(self) -> set[str]:
        """Every snapshot this league holds, the exploiters' included."""
        own = {pid for _, pid in self._snapshots}
        if not self._owned:
            return own
        return own | {p.id for p in self.players.values() if p.kind == SNAPSHOT and p.owner}

    def charted_ids(self) -> list[str]:
        """The learner and the references: the players worth a chart of their own in a league of
        thousands, whose ids do not change as it grows (O(references))."""
        return [*self.roster.learner_ids, *self._references]

    def past_pool(self) -> dict[str, PoolEntry]:
        """Opponents other than the latest policy: snapshots and training references, as sampler
        input (O(N): for tests and views; actors keep a league/pool.py PoolIndex instead).

        The win rate PFSP weighs is the learner's against each one from the decayed payoff table,
        as in AlphaStar: it follows the learner's current strength, where lifetime counts would
        remember a pairing long after the learner outgrew it (0.5 before any game)."""
        return {p.id: p.pool_entry() for p in self.players.values() if p.in_pool}

    # --- updates ---------------------------------------------------------------------------
    def record(self, g: GameResult, cfg: LeagueConfig) -> None:
        """Apply one finished game: counts, payoff, rating evidence (unless a self-game, or a
        training game while cfg.rate_training_games is off), and the quality update.

        A game of N seats (sides) counts as its N(N-1)/2 head-to-head results (GameResult.pairs):
        the pairwise decomposition of the ranking, so ratings and payoff need no other model. A
        player's own counts take one game per seat: a win when it beat more seats than beat it."""
        known = [pid in self.players for pid in g.players]
        if not all(known) and not (self.roster.partial_games and sum(known) >= 2):
            return  # a player retired or unknown to this league: count nothing rather than guess
        self.games_total += 1
        self.changed.update(pid for pid, k in zip(g.players, known) if k)
        for pid, s, k in zip(g.players, g.scores, known):
            if not k:
                continue
            p = self.players[pid]
            p.games += 1
            p.wins += s > 0.5
            p.draws += s == 0.5
            p.losses += s < 0.5
        rated = g.kind == "eval" or cfg.rate_training_games
        learners, random_id = self.roster.learner_ids, self.roster.random_id
        for i, j, s_ij in g.pairs():
            a, b = g.players[i], g.players[j]
            if a == b or not (known[i] and known[j]):
                continue  # mirror pair: no rating information; or a player this league does not hold
            pa, pb = self.players[a], self.players[b]
            for p, q, s in ((pa, pb, s_ij), (pb, pa, 1.0 - s_ij)):
                idx = 0 if s == 1.0 else 1 if s == 0.5 else 2
                if q.id == random_id:
                    p.vs_random[idx] += 1
                if p.id in learners:
                    q.vs_learner[idx] += 1
            self.payoff.update(a, b, s_ij)
            if a in learners or b in learners:
                learner, other = (a, pb) if a in learners else (b, pa)
                other.payoff_win_rate = self.payoff.pfsp_win_rate(learner, other.id, cfg.pfsp_prior_games)
            elif self.roster.exploiter_ids and (a in self.roster.exploiter_ids or b in self.roster.exploiter_ids):
                exploiter, other = (a, pb) if a in self.roster.exploiter_ids else (b, pa)
                other.exploiter_win_rates[exploiter] = self.payoff.pfsp_win_rate(exploiter, other.id, cfg.pfsp_prior_games)
            ra, rb = self.rating_identity(a, g.versions[i]), self.rating_identity(b, g.versions[j])
            if ra != rb and rated:
                self.elo.add(ra, rb, s_ij)
        # OpenAI Five: when the current agent beats past opponent i, q_i -= eta / (N p_i).
        # A loss or draw changes nothing. Only two-seat games carry their opponent's sampling
        # probability (N-seat games draw several opponents), so only they move quality scores.
        learner_id = next((pid for pid in g.players if pid in learners), None)
        if any(pid in self.roster.exploiter_ids for pid in g.players):
            return  # an exploiter's game: its opponent was not drawn by the learner's sampler
        if g.kind == "train" and len(g.players) == 2 and learner_id is not None and all(known):
            seat = g.players.index(learner_id)
            opponent = self.players[g.players[1 - seat]]
            if g.scores[seat] == 1.0 and opponent.id != learner_id and opponent.in_pool:
                opponent.quality = quality_after_win(opponent.quality, self._pool_size, g.opponent_prob, cfg.quality_eta)

    def rating_identity(self, player_id: str, version: int) -> str:
        """Which rated identity a game played by (player_id, version) counts for: the learner's
        games at versions before the newest snapshot count for the newest snapshot at or below."""
        if player_id != self.learner_id or version >= self.last_snapshot_version or not self.roster.own_snapshots:
            return player_id
        i = bisect.bisect_right(self._snapshots, (version, "\uffff"))
        return self._snapshots[i - 1][1] if i else player_id

    SHOWN_RATING_LOOKBACK = 64
    """How many of the newest snapshots shown_rating looks through: its cost stays bounded however
    large the league grows."""

    def shown_rating(self) -> tuple[str, float]:
        """(player id, Elo) the console shows for the learner: `latest`'s own once it has a rating;
        until then the newest rated snapshot of its own. Rating games played at a version before
        the newest snapshot count for that snapshot (rating_identity), so where one rating game
        outlasts the time between snapshots (an Atari game of 1,000 decisions, snapshots every 15 s)
        `latest` never holds a rating of its own while its snapshots are rated, and the console
        would show 0 for a run that learns."""
        latest = self.players[self.learner_id]
        if latest.elo_stderr is None:
            for _, pid in reversed(self._snapshots[-self.SHOWN_RATING_LOOKBACK:]):
                if self.players[pid].elo_stderr is not None:
                    return pid, self.players[pid].elo
        return latest.id, latest.elo

    def refit(self) -> list[str]:
        """Refit the ratings (references stay pinned); return the players whose Elo or its
        standard error moved (a player with no rating games keeps the Elo it joined with)."""
        anchors = self.roster.anchors
        moved = [pid for pid in self.elo.fit() if pid in self.players and not (self.players[pid].kind == REFERENCE and pid in anchors)]
        for pid in moved:
            self.players[pid].elo, self.players[pid].elo_stderr = self.elo.rating(pid)
        self.changed.update(moved)
        return moved

    def snapshot_id(self, version: int) -> str:
        """The id of this league's snapshot of `version` (`v000010`; a role's: `adversary/v000010`)."""
        return self.roster.snapshot_prefix + snapshot_id(version)

    def due_snapshot(self, learner_version: int, every: int) -> bool:
        return self.last_snapshot_version < 0 or learner_version >= self.last_snapshot_version + every

    def add_snapshot(self, version: int) -> Player:
        """The current learner joins the pool as a frozen player (OpenAI Five: with q = max q). In a
        role's league (Roster.own_snapshots False) the snapshot is of the pool's role, not of the
        league's learner: it starts from the pool's latest's rating and takes none of the learner's games."""
        pid = self.snapshot_id(version)
        if pid in self.players:
            raise ValueError(f"snapshot {pid} already in the league")
        # The max over the past pool only (O(N), once per snapshot): evaluation-only references
        # never play training games, so their score never moves from 0 and would set every
        # newcomer's entry at 0.
        quality = initial_quality({p.id: p.quality for p in self.players.values() if p.in_pool})
        roster = self.roster
        latest = self.players[roster.learner_id if roster.own_snapshots else roster.pool_latest_id]
        previous = self.snapshot_id(self.last_snapshot_version)
        # The games "latest" played since the previous snapshot were played at versions that belong
        # to that snapshot; credit them there before "latest" starts afresh.
        if previous in self.players and roster.own_snapshots:
            for other, score, games in self.elo.pop_pairs_of(roster.learner_id):
                if other != previous:
                    self.elo.add(previous, other, score, games)
        player = Player(pid, SNAPSHOT, version, elo=latest.elo, elo_stderr=latest.elo_stderr, quality=quality)
        self._join(player)
        self.last_snapshot_version = version
        return player

    # --- exploiters (actors/learners.py; cluster/run/leagues.py drives these) -------------------
    def exploiter_last_snapshot(self, owner: str) -> int:
        """The version of exploiter `owner`'s newest snapshot in this league (-1: none)."""
        return self._owned.get(owner, -1)

    def exploiter_vs_main(self, exploiter_id: str) -> tuple[float, float]:
        """(exploiter's decayed payoff win rate against the league's learner, decayed games)."""
        return self.payoff.win_rate(exploiter_id, self.learner_id), self.payoff.games(exploiter_id, self.learner_id)

    def add_exploiter_snapshot(self, owner: str, exploiter_id: str, player_id: str, version: int) -> Player:
        """Exploiter `owner`'s published `version` joins the pool as `player_id` (its weights copied
        from the exploiter's parameter store), recording its win rate against the learner now (Player.vs_main)."""
        if player_id in self.players:
            raise ValueError(f"snapshot {player_id} already in the league")
        latest = self.players[exploiter_id]
        quality = initial_quality({p.id: p.quality for p in self.players.values() if p.in_pool})
        rate, games = self.exploiter_vs_main(exploiter_id)
        vs_main = rate if games > 0 else None  # a league exploiter may never have met the main latest
        player = Player(player_id, SNAPSHOT, version, elo=latest.elo, elo_stderr=latest.elo_stderr, quality=quality, owner=owner, vs_main=vs_main)
        self._join(player)
        return player

    def exploiter_reset(self, exploiter_id: str, version: int) -> None:
        """The exploiter restarted from the learner's weights at `version`: its payoff starts afresh."""
        for other in self.payoff.players():
            if other != exploiter_id and self.payoff.games(exploiter_id, other) > 0:
                self.payoff.set_pair(exploiter_id, other, [0.0, 0.0, 0.0, 0.0])
                self.payoff.touch([tuple(sorted((exploiter_id, other)))])
        for p in self.players.values():
            if p.exploiter_win_rates.pop(exploiter_id, None) is not None:
                self.changed.add(p.id)
        latest = self.players[exploiter_id]
        latest.reset_version, latest.version = version, version
        self.changed.add(exploiter_id)

    # --- storage ---------------------------------------------------------------------------
    def meta(self) -> dict:
        """The scalars of the state (what a store keeps beside players, results and payoff)."""
        return {
            "learner_version": self.learner_version,
            "last_snapshot_version": self.last_snapshot_version,
            "games_total": self.games_total,
            "revision": self.revision,
            "epoch": self.epoch,
            "payoff_decay": self.payoff.decay,
            "payoff_min_games": self.payoff.min_games,
            **({"roster": self.roster.to_dict()} if self.roster != Roster() else {}),
        }

    def to_dict(self) -> dict:
        return {
            "players": [asdict(p) for p in self.players.values()],
            "learner_version": self.learner_version,
            "last_snapshot_version": self.last_snapshot_version,
            "games_total": self.games_total,
            "results": self.results,
            "revision": self.revision,
            "epoch": self.epoch,
            "payoff": self.payoff.to_dict(),
            **({"roster": self.roster.to_dict()} if self.roster != Roster() else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "LeagueState":
        players = {}
        for p in d["players"]:
            players[p["id"]] = Player(**p)
        return cls(
            players=players,
            learner_version=int(d["learner_version"]),
            last_snapshot_version=int(d["last_snapshot_version"]),
            games_total=int(d["games_total"]),
            revision=int(d["revision"]),
            epoch=str(d.get("epoch", "")),
            results={str(k): [float(v[0]), float(v[1])] for k, v in d.get("results", {}).items()},
            payoff=Payoff.from_dict(d["payoff"]) if "payoff" in d else Payoff(),
            roster=Roster.from_dict(d["roster"]) if "roster" in d else None,
        )

    def table(self) -> list[Player]:
        return sorted(self.players.values(), key=lambda p: -p.elo)
