"""Which players a view of a league of thousands shows: the few a person can read, chosen the same way
by `selfplay league` and the dashboard.

By default: the learner `latest`, the references, the top-K by Elo and the newest snapshots. A filter
(a case-insensitive part of the id) narrows every one of those to the players it matches; `all` shows
every matching player instead. Selecting is O(N log K) over the N players, never a sort of them all.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from league.league import LEARNER, REFERENCE, SNAPSHOT, Player


@dataclass(frozen=True)
class Selection:
    top: int = 10
    """The best this many players by Elo."""
    newest: int = 5
    """The newest this many snapshots (highest version), however they rate."""
    filter: str = ""
    """Only players whose id contains this (case-insensitive); empty: everyone."""
    all: bool = False
    """Every matching player, not only latest, the references, the top and the newest."""

    def __post_init__(self) -> None:
        if self.top < 0 or self.newest < 0:
            raise ValueError(f"top and newest must be 0 or more; got top={self.top}, newest={self.newest}")

    def describe(self) -> str:
        """What the selection shows, in words (for the CLI's header)."""
        what = "every player" if self.all else f"latest, the references, the top {self.top} by Elo and the newest {self.newest} snapshots"
        return what + (f" matching {self.filter!r}" if self.filter else "")


@dataclass(frozen=True)
class Shown:
    players: list[Player]  # ordered by Elo, best first
    matched: int  # players the filter matches
    total: int  # players in the league


def by_elo(p: Player) -> tuple[float, str]:
    return (-p.elo, p.id)


def select_players(players: Iterable[Player], sel: Selection) -> Shown:
    """The players `sel` shows, best Elo first (ties by id, so the order is stable)."""
    needle = sel.filter.lower()
    total, matching = 0, []
    for p in players:
        total += 1
        if needle in p.id.lower():
            matching.append(p)
    if sel.all:
        chosen = matching
    else:
        keep = {p.id: p for p in matching if p.kind in (LEARNER, REFERENCE)}
        for p in heapq.nsmallest(sel.top, matching, key=by_elo):
            keep[p.id] = p
        snaps = (p for p in matching if p.kind == SNAPSHOT)
        for p in heapq.nlargest(sel.newest, snaps, key=lambda p: (p.version, p.id)):
            keep[p.id] = p
        chosen = list(keep.values())
    return Shown(sorted(chosen, key=by_elo), len(matching), total)


def default_curves(shown: list[Player], everyone: Iterable[Player], top: int = 3) -> list[str]:
    """The Elo curves a view draws unless told otherwise: latest and the references (whatever the
    filter: they are what the others are read against) and the best `top` others shown (`shown`
    best first)."""
    fixed = sorted((p for p in everyone if p.kind in (LEARNER, REFERENCE)), key=lambda p: (p.kind != LEARNER, p.id))
    best = [p.id for p in shown if p.kind not in (LEARNER, REFERENCE)][:top]
    return [p.id for p in fixed] + best


def run_learners(roles: Iterable[str] | None) -> list[str]:
    """The learners of a run whose metadata lists `roles` (its `roles` entry, in order): one league
    per role, or the one learner "" (the run's own keys) of a game without roles."""
    return list(roles or ()) or [""]


class UnknownLearner(LookupError):
    """A learner the run does not have; the message names the ones it has."""


def pick_learner(name: str, learners: list[str], run_id: str) -> str:
    """The learner `name` names ("" or None: the first), or UnknownLearner saying which exist."""
    if not name:
        return learners[0]
    if name in learners:
        return name
    if learners == [""]:
        raise UnknownLearner(f"run {run_id!r} has no learner {name!r}: its game has no roles, so it has one league; "
                             "leave the learner out")
    raise UnknownLearner(f"run {run_id!r} has no learner {name!r}; its learners are {', '.join(learners)}")
