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

Exploiters (AlphaStar's league roles, games without roles only: league.main_exploiters,
league.league_exploiters): further learners of the same spec playing every side, named
`main_exploiter`, `main_exploiter2`, `league_exploiter`, ... (ids `main_exploiter/latest`, keys under
the name's namespace like a role's). They own no league: the main learner's league holds their
latest and their snapshots (actors/seating.py seats them; cluster/run/leagues.py snapshots and
resets them).

Plain data: the run's assembly (cluster/run/assembly.py), rollout workers and evaluators read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.games import GameSpec
from league.config import LeagueConfig
from actors.roles import role_player
from league.league import Roster
from league.records import LEARNER_ID, RANDOM_ID


MAIN, MAIN_EXPLOITER, LEAGUE_EXPLOITER = "main", "main_exploiter", "league_exploiter"


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
    kind: str = MAIN
    """MAIN (the one learner, or a role's), MAIN_EXPLOITER or LEAGUE_EXPLOITER."""

    @property
    def exploiter(self) -> bool:
        return self.kind != MAIN

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


def learner_set(spec: GameSpec, league: LeagueConfig | None = None) -> tuple[LearnerDef, ...]:
    """The learners a game trains: one per role, or the one learner of a game without roles and,
    given `league`, its exploiters (ValueError for exploiters in a game with roles)."""
    main_n, league_n = (league.main_exploiters, league.league_exploiters) if league is not None else (0, 0)
    if not spec.roles:
        sides = tuple(range(spec.num_sides))
        out = [LearnerDef("", 0, spec, sides)]
        for kind, n in ((MAIN_EXPLOITER, main_n), (LEAGUE_EXPLOITER, league_n)):
            for k in range(n):
                out.append(LearnerDef(kind + (str(k + 1) if k else ""), len(out), spec, sides, kind))
        return tuple(out)
    if main_n or league_n:
        raise ValueError(
            f"game {spec.name!r} has roles {[r.name for r in spec.roles]}: exploiters (league.main_exploiters, "
            "league.league_exploiters) are for games whose sides are alike; set them to 0"
        )
    return tuple(LearnerDef(r.name, k, spec.role(r.name), r.sides) for k, r in enumerate(spec.roles))


def league_owners(learners: tuple[LearnerDef, ...]) -> tuple[LearnerDef, ...]:
    """The learners that own a league: all but the exploiters (whose players live in the main one)."""
    return tuple(d for d in learners if not d.exploiter)


def exploiters(learners: tuple[LearnerDef, ...]) -> tuple[LearnerDef, ...]:
    return tuple(d for d in learners if d.exploiter)


def league_roster(learners: tuple[LearnerDef, ...], name: str) -> Roster:
    """Whose league learner `name`'s league is. One learner: the default Roster (the run's league
    as it always was); with exploiters, that league also holds their latest (Roster.exploiter_ids).
    Several roles: `name`'s players as every other learner meets them."""
    if len(league_owners(learners)) == 1:
        return Roster(exploiter_ids=tuple(d.latest_id for d in exploiters(learners)))
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
