"""The league as plain data plus pure update rules: players, ratings, quality scores, snapshots.

One writer (the league manager) applies reported games to a LeagueState; actors only read it to
sample opponents. Keeping it plain data (to_dict/from_dict) lets it live in Redis as one msgpack
document and be unit-tested without Redis.

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

from dataclasses import asdict, dataclass, field

from league.config import LeagueConfig
from league.payoff import Payoff
from league.rating_fit import fit_elo
from league.records import LEARNER_ID, RANDOM_ID, GameResult
from league.sampling import PoolEntry, initial_quality, update_quality

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


@dataclass
class LeagueState:
    players: dict[str, Player] = field(default_factory=dict)
    learner_version: int = 0
    last_snapshot_version: int = -1  # -1: none yet; version 0 (the initial policy) is the first
    games_total: int = 0
    results: dict = field(default_factory=dict)  # "a\tb" (a < b) -> [score of a, games]
    revision: int = 0  # bumps on every save so readers can skip unchanged state
    payoff: Payoff = field(default_factory=Payoff)  # AlphaStar: decayed W/D/L per pair of player ids

    @classmethod
    def new(
        cls, reference_ids: tuple[str, ...] = (RANDOM_ID,), eval_references: tuple[str, ...] = (), payoff_decay: float = 0.99
    ) -> "LeagueState":
        """`reference_ids` are training opponents too; `eval_references` only play rating games."""
        state = cls(payoff=Payoff(decay=payoff_decay))
        state.players[LEARNER_ID] = Player(LEARNER_ID, LEARNER, 0)
        for ref in reference_ids:
            state.players[ref] = Player(ref, REFERENCE, -1, elo=ANCHORS.get(ref, 0.0))
        for ref in eval_references:
            if ref not in state.players:
                state.players[ref] = Player(ref, REFERENCE, -1, elo=ANCHORS.get(ref, 0.0), training_opponent=False)
        return state

    # --- reading ---------------------------------------------------------------------------
    def past_pool(self) -> dict[str, PoolEntry]:
        """Opponents other than the latest policy: snapshots and references, as sampler input.

        The win rate PFSP weighs is the learner's against each one from the decayed payoff table,
        as in AlphaStar: it follows the learner's current strength, where lifetime counts would
        remember a pairing long after the learner outgrew it (0.5 before any game)."""
        return {
            p.id: PoolEntry(quality=p.quality, win_rate=self.payoff.win_rate(LEARNER_ID, p.id))
            for p in self.players.values()
            if p.kind != LEARNER and p.training_opponent
        }

    # --- updates ---------------------------------------------------------------------------
    def record(self, g: GameResult, cfg: LeagueConfig) -> None:
        """Apply one finished game: counts, payoff, rating evidence (unless a self-game, or a
        training game while cfg.rate_training_games is off), and the quality update."""
        a, b = g.players
        if a not in self.players or b not in self.players:
            return  # a player retired or unknown to this league: count nothing rather than guess
        self.games_total += 1
        pa, pb = self.players[a], self.players[b]
        for p, s in ((pa, g.scores[0]), (pb, g.scores[1])):
            p.games += 1
            p.wins += s == 1.0
            p.draws += s == 0.5
            p.losses += s == 0.0
        if a == b:
            return  # mirror game: no rating information
        for p, q, s in ((pa, pb, g.scores[0]), (pb, pa, g.scores[1])):
            idx = 0 if s == 1.0 else 1 if s == 0.5 else 2
            if q.id == RANDOM_ID:
                p.vs_random[idx] += 1
            if p.id == LEARNER_ID:
                q.vs_learner[idx] += 1
        self.payoff.update(a, b, g.scores[0])
        ra, rb = self.rating_identity(a, g.versions[0]), self.rating_identity(b, g.versions[1])
        if ra != rb and (g.kind == "eval" or cfg.rate_training_games):
            self._add_result(ra, rb, g.scores[0])
        # OpenAI Five: when the current agent beats past opponent i, q_i -= eta / (N p_i).
        # A loss or draw changes nothing.
        if g.kind == "train" and LEARNER_ID in g.players:
            seat = g.players.index(LEARNER_ID)
            opponent = g.players[1 - seat]
            if g.scores[seat] == 1.0 and opponent != LEARNER_ID:
                qualities = {pid: e.quality for pid, e in self.past_pool().items()}
                new_q = update_quality(qualities, opponent, g.opponent_prob, eta=cfg.quality_eta)
                self.players[opponent].quality = new_q[opponent]

    def rating_identity(self, player_id: str, version: int) -> str:
        """Which rated identity a game played by (player_id, version) counts for."""
        if player_id != LEARNER_ID or version >= self.last_snapshot_version:
            return player_id
        best = None
        for p in self.players.values():
            if p.kind == SNAPSHOT and p.version <= version and (best is None or p.version > best.version):
                best = p
        return best.id if best else player_id

    def _add_result(self, a: str, b: str, score_a: float, games: float = 1.0) -> None:
        if a > b:
            a, b, score_a = b, a, games - score_a
        row = self.results.setdefault(f"{a}\t{b}", [0.0, 0.0])
        row[0] += score_a
        row[1] += games

    def _move_results(self, src: str, dst: str) -> None:
        """Credit every result of `src` to `dst` instead (games between the two are dropped)."""
        for key in [k for k in self.results if src in k.split("\t")]:
            a, b = key.split("\t")
            score_a, games = self.results.pop(key)
            other, score_src = (b, score_a) if a == src else (a, games - score_a)
            if other != dst:
                self._add_result(dst, other, score_src, games)

    def refit(self) -> None:
        """Refit every rating from all head-to-head results (references stay pinned)."""
        rows = [(*k.split("\t"), v[0], v[1]) for k, v in self.results.items() if v[1] > 0]
        if not rows:
            return
        anchors = {p.id: p.elo for p in self.players.values() if p.pinned}
        for pid, est in fit_elo(rows, anchors).items():
            if pid in self.players and not self.players[pid].pinned:
                self.players[pid].elo = est.elo
                self.players[pid].elo_stderr = est.stderr

    def due_snapshot(self, learner_version: int, every: int) -> bool:
        return self.last_snapshot_version < 0 or learner_version >= self.last_snapshot_version + every

    def add_snapshot(self, version: int) -> Player:
        """The current learner joins the pool as a frozen player (OpenAI Five: with q = max q)."""
        pid = snapshot_id(version)
        if pid in self.players:
            raise ValueError(f"snapshot {pid} already in the league")
        # The max over the past pool only: evaluation-only references never play training games,
        # so their score never moves from 0 and would set every newcomer's entry at 0.
        qualities = {pid: e.quality for pid, e in self.past_pool().items()}
        latest = self.players[LEARNER_ID]
        previous = snapshot_id(self.last_snapshot_version)
        # The games "latest" played since the previous snapshot were played at versions that belong
        # to that snapshot; credit them there before "latest" starts afresh.
        if previous in self.players:
            self._move_results(LEARNER_ID, previous)
        player = Player(pid, SNAPSHOT, version, elo=latest.elo, elo_stderr=latest.elo_stderr, quality=initial_quality(qualities))
        self.players[pid] = player
        self.last_snapshot_version = version
        return player

    # --- storage ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "players": [asdict(p) for p in self.players.values()],
            "learner_version": self.learner_version,
            "last_snapshot_version": self.last_snapshot_version,
            "games_total": self.games_total,
            "results": {k: list(v) for k, v in self.results.items()},
            "revision": self.revision,
            "payoff": self.payoff.to_dict(),
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
            results={str(k): [float(v[0]), float(v[1])] for k, v in d.get("results", {}).items()},
            payoff=Payoff.from_dict(d["payoff"]) if "payoff" in d else Payoff(),
        )

    def table(self) -> list[Player]:
        return sorted(self.players.values(), key=lambda p: -p.elo)
