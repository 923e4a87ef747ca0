"""The past pool as an index: the samplers of sampling.py in O(log N) per draw and per update.

sampling.choose_opponent builds a probability table over the whole pool for every game: fine for a
few dozen snapshots, linear in the league for thousands, and a rollout actor starts a game every few
milliseconds. PoolIndex keeps each sampler's unnormalised weights in a sum tree (one leaf per
player), so a draw walks one root-to-leaf path and a changed player updates one path. The tables it
draws from are exactly sampling.py's (tests compare them): softmax of quality scores (OpenAI Five),
PFSP weightings of the learner's win rates (AlphaStar), uniform.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from league.sampling import FORGOTTEN_BELOW, PFSP_WEIGHTINGS, SAMPLERS, OpponentChoice, PoolEntry, alphastar_branch


class SumTree:
    """Non-negative weights by slot; prefix-sum search. Plain lists: faster than numpy for scalars."""

    def __init__(self, capacity: int = 16) -> None:
        self.cap = 1 << max(4, (capacity - 1).bit_length())
        self.t = [0.0] * (2 * self.cap)

    def set(self, slot: int, weight: float) -> None:
        if slot >= self.cap:
            self._grow(slot + 1)
        j = slot + self.cap
        self.t[j] = weight
        j //= 2
        while j:  # recompute (never add deltas): no drift however many updates
            self.t[j] = self.t[2 * j] + self.t[2 * j + 1]
            j //= 2

    def get(self, slot: int) -> float:
        return self.t[slot + self.cap] if slot < self.cap else 0.0

    @property
    def total(self) -> float:
        return self.t[1]

    def find(self, u: float) -> int:
        """The slot whose cumulative range holds u (0 <= u < total); never a zero-weight slot."""
        j = 1
        while j < self.cap:
            left, right = self.t[2 * j], self.t[2 * j + 1]
            if u < left or right <= 0.0:
                j = 2 * j
            else:
                u -= left
                j = 2 * j + 1
        return j - self.cap

    def _grow(self, needed: int) -> None:
        leaves = self.t[self.cap :]
        self.__init__(max(needed, 2 * self.cap))
        for slot, w in enumerate(leaves):
            if w:
                self.set(slot, w)


def _hard(x: float) -> float:
    return PFSP_WEIGHTINGS["hard"](x)


class PoolIndex:
    """The past pool of one sampler; `upsert` a player whenever its quality or win rate changes."""

    def __init__(self, sampler: str) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {list(SAMPLERS)}")
        self.sampler = sampler
        self._slot: dict[str, int] = {}
        self._ids: list[str] = []
        self._entries: list[PoolEntry] = []
        self._trees: dict[str, tuple[SumTree, Callable[[PoolEntry], float]]] = {}
        self._q_ref = 0.0  # softmax weights are exp(q - q_ref): shifts cancel in the normalisation
        if sampler == "openai_five":
            self._add_tree("quality", lambda e: math.exp(e.quality - self._q_ref))
        elif sampler == "alphastar":
            self._add_tree("pfsp", lambda e: _hard(e.win_rate))
            self._add_tree("verification", lambda e: _hard(e.win_rate) if e.win_rate < FORGOTTEN_BELOW else 0.0)
        elif sampler.startswith("pfsp_"):
            f = PFSP_WEIGHTINGS[sampler.removeprefix("pfsp_")]
            self._add_tree("pfsp", lambda e: f(e.win_rate))
        self._add_tree("uniform", lambda e: 1.0)  # also PFSP's fallback when every weight is 0

    def _add_tree(self, name: str, weight: Callable[[PoolEntry], float]) -> None:
        self._trees[name] = (SumTree(), weight)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, pid: str) -> bool:
        return pid in self._slot

    def upsert(self, pid: str, entry: PoolEntry) -> None:
        if not math.isfinite(entry.quality):
            raise ValueError(f"quality of {pid!r} must be finite; got {entry.quality!r}")
        slot = self._slot.get(pid)
        if slot is None:
            slot = self._slot[pid] = len(self._ids)
            self._ids.append(pid)
            self._entries.append(entry)
        self._entries[slot] = entry
        if "quality" in self._trees and entry.quality - self._q_ref > 30.0:
            self._rebase(entry.quality)
        for tree, weight in self._trees.values():
            tree.set(slot, weight(entry))
        if "quality" in self._trees and self._trees["quality"][0].total < 1e-250:
            self._rebase(max(e.quality for e in self._entries))  # every weight underflowed: shift up

    def _rebase(self, q_ref: float) -> None:
        """Re-centre the softmax weights (O(N), only when qualities drift by hundreds)."""
        self._q_ref = q_ref
        tree, weight = self._trees["quality"]
        for slot, e in enumerate(self._entries):
            tree.set(slot, weight(e))

    def prob(self, table: str, pid: str) -> float:
        """Probability of `pid` in one of this sampler's tables (quality, pfsp, verification, uniform)."""
        tree = self._trees[table][0]
        slot = self._slot.get(pid)
        return 0.0 if slot is None or tree.total <= 0.0 else tree.get(slot) / tree.total

    def _draw(self, table: str, rng: np.random.Generator, latest_id: str) -> OpponentChoice:
        tree = self._trees[table][0]
        if tree.total <= 0.0:
            if table == "pfsp":  # sampling.pfsp_probs: all-zero weights fall back to uniform
                return self._draw("uniform", rng, latest_id)
            return OpponentChoice(latest_id, 1.0, True)
        slot = tree.find(rng.random() * tree.total)
        return OpponentChoice(self._ids[slot], tree.get(slot) / tree.total, False)

    def choose(self, latest_id: str, rng: np.random.Generator, latest_prob: float = 0.8) -> OpponentChoice:
        """sampling.choose_opponent over this pool, with the same branches and fallbacks."""
        latest = OpponentChoice(latest_id, 1.0, True)
        if self.sampler == "self_play" or not self._ids:
            return latest
        if self.sampler == "openai_five":
            if rng.random() < latest_prob:
                return latest
            return self._draw("quality", rng, latest_id)
        if self.sampler == "alphastar":
            branch = alphastar_branch(rng)
            if branch == "self_play":
                return latest
            return self._draw("pfsp" if branch == "pfsp" else "verification", rng, latest_id)
        return self._draw("uniform" if self.sampler == "uniform" else "pfsp", rng, latest_id)


class LeagueView:
    """What a reader (rollout actor, evaluator) knows of the league: every player's record as of
    `revision`, and the past pool indexed for one sampler. A store feeds it the players that changed
    since its revision (cluster/stores/league_store.py), so keeping it current costs per change,
    not per player."""

    def __init__(self, sampler: str | None = None) -> None:
        self.epoch = ""  # which league (LeagueState.epoch) the records come from
        self.revision = -1  # -1: nothing read yet
        self.learner_version = 0
        self.players: dict = {}  # id -> league.league.Player
        self.pool = PoolIndex(sampler) if sampler else None

    def apply(self, players, revision: int, learner_version: int) -> None:
        for p in players:
            self.players[p.id] = p
            if self.pool is not None and p.in_pool:
                self.pool.upsert(p.id, p.pool_entry())
        self.revision, self.learner_version = revision, learner_version

    def choose(self, latest_id: str, rng: np.random.Generator, latest_prob: float = 0.8) -> OpponentChoice:
        if self.pool is None:
            raise ValueError("this league view was built without a sampler; pass sampler= to draw opponents")
        return self.pool.choose(latest_id, rng, latest_prob)
