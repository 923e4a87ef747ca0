"""Whose league a LeagueState is (league/league.py): its learner(s), its snapshots' prefix, its anchor.

Plain data, stored beside the league's scalars (LeagueState.meta) so a reader knows the league it reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from league.records import LEARNER_ID, RANDOM_ID


@dataclass(frozen=True)
class Roster:
    """Whose league this is: the default is the one-role league (learner `latest`, snapshots
    `v000010`, anchored at `random`), and every field keeps its meaning there.

    A game with roles (actors/roles.py) has one league per role B: B's players as the other role's
    learner meets them. Its learner is the other role's latest (`learner_id`, whose win rates PFSP
    weighs and whose wins lower quality scores), its pool B's references and snapshots
    (`snapshot_prefix` `B/`), anchored at B's random player; B's own latest (`pool_latest_id`) is
    a player drawn by latest_prob, never from the pool, and the snapshots are B's, not the
    learner's (`own_snapshots` False: the learner's games stay its own)."""

    learner_id: str = LEARNER_ID
    snapshot_prefix: str = ""
    random_id: str = RANDOM_ID
    pool_latest_id: str = ""
    own_snapshots: bool = True
    more_learner_ids: tuple[str, ...] = ()
    """Further learners this league serves: in a game of three or more roles, B's players meet the
    latest of every other role. Each is a player of kind learner; PFSP weighs their mean win rate."""
    exploiter_ids: tuple[str, ...] = ()
    """The latest of the exploiters whose snapshots join this league (the main learner's league of a
    game without roles; actors/learners.py): players of kind learner, never drawn from the pool,
    whose games move neither the main learner's PFSP win rates nor quality scores."""
    partial_games: bool = False
    """Record the head-to-head pairs of a game whose players this league knows, skipping the rest:
    a role's league holds only some of a game's players (the other roles' snapshots live in their
    own leagues). False: a game with an unknown player counts nothing (a retired player)."""

    @property
    def anchors(self) -> dict[str, float]:
        return {self.random_id: 0.0}

    @property
    def learner_ids(self) -> tuple[str, ...]:
        return (self.learner_id, *self.more_learner_ids)

    def to_dict(self) -> dict:
        d = {**asdict(self), "more_learner_ids": list(self.more_learner_ids), "exploiter_ids": list(self.exploiter_ids)}
        if not self.exploiter_ids:
            del d["exploiter_ids"]  # as rosters were written before exploiters
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Roster":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"league roster has unknown fields {unknown}")
        return cls(**{**d, "more_learner_ids": tuple(d.get("more_learner_ids", ())), "exploiter_ids": tuple(d.get("exploiter_ids", ()))})
