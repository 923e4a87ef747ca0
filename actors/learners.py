"""The learners of a run: who trains, on which sides, with which network, under which player ids.

A run trains a set of learners (N >= 1). Each has its own policy, PPO state, parameter keys, league
of snapshots and opponent sampler, and plays its own sides of the game:

- A game whose sides all observe and act alike has ONE learner, named "": it plays every side, its
  player ids are `latest`, `random`, `v000010` and its keys are the run's own, exactly as runs have
  always had them, so old runs and checkpoints resume unchanged.
- A game with roles (actors/roles.py: sides that observe or act differently) has one learner per
  role, named after the role: it plays that role's sides, its ids are `adversary/latest`, ... and
  its keys live under the role's namespace (cluster/stores/keys.py RunKeys.for_role).

Role B's league holds B's players as the other learners meet them (league/league.py Roster): B's
snapshots, B's random player (its Elo anchor) and B's latest, which opponents of B's sides are drawn
from, and the latest of every other learner, whose games against B's players rate them.

Plain data: the run's assembly (cluster/run/assembly.py), rollout workers and evaluators read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.games import GameSpec
from actors.roles import role_player
from league.league import Roster
from league.records import LEARNER_ID, RANDOM_ID


@dataclass(frozen=True)
class LearnerDef:
    """One learner of a run."""

    name: str
    """"" for the one learner of a game without roles; the role's name otherwise."""
    index: int
    """Its place in the set: its learner is seeded run.seed + index."""
    spec: GameSpec
    """What its policy sees and how it acts (a role's spec has no roles of its own)."""
    sides: tuple[int, ...]
    """The sides it plays (indices into the game's sides)."""

    def player(self, name: str) -> str:
        """The id of this learner's player `name` (`latest`, `random`, `v000010`)."""
        return role_player(self.name, name) if self.name else name

    @property
    def latest_id(self) -> str:
        return self.player(LEARNER_ID)

    @property
    def random_id(self) -> str:
        return self.player(RANDOM_ID)

    @property
    def label(self) -> str:
        """How logs name it: the role, or "latest" for the one learner of a game without roles."""
        return self.name or LEARNER_ID


def learner_set(spec: GameSpec) -> tuple[LearnerDef, ...]:
    """The learners a game trains: one per role, or the one learner of a game without roles."""
    if not spec.roles:
        return (LearnerDef("", 0, spec, tuple(range(spec.num_sides))),)
    return tuple(LearnerDef(r.name, k, spec.role(r.name), r.sides) for k, r in enumerate(spec.roles))


def league_roster(learners: tuple[LearnerDef, ...], name: str) -> Roster:
    """Whose league learner `name`'s league is. One learner: the default Roster (the run's league
    as it always was). Several: `name`'s players as every other learner meets them."""
    if len(learners) == 1:
        return Roster()
    own = next(d for d in learners if d.name == name)
    others = [d.latest_id for d in learners if d.name != name]
    return Roster(
        learner_id=others[0],
        snapshot_prefix=own.player(""),
        random_id=own.random_id,
        pool_latest_id=own.latest_id,
        own_snapshots=False,
        more_learner_ids=tuple(others[1:]),
        partial_games=True,
    )
