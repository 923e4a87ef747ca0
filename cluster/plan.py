"""What a run trains, resolved once from the config: the game's slots and spec, and its learners.

Every process of a run (the driver, the learner service, rollout actors, evaluators) builds its
parts from this one plan (cluster/run/assembly.py in the driver), so the game is resolved, the
learners listed and the network checked the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from actors.games import GameSlot, GameSpec, load_game_config
from actors.learners import LearnerDef, learner_set, league_owners
from actors.scripted import ScriptedFn, references_for
from cluster.config import Config, ConfigError, check_model_fits


@dataclass(frozen=True)
class RunPlan:
    """What a run trains, resolved once from the config."""

    cfg: Config
    make_slot: Callable[[], GameSlot]
    spec: GameSpec
    learners: tuple[LearnerDef, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.learners)

    @property
    def owners(self) -> tuple[LearnerDef, ...]:
        """The learners that own a league (all but the exploiters: actors/learners.py)."""
        return league_owners(self.learners)

    def league_of(self, name: str) -> str:
        """Whose league holds learner `name`'s players: its own, or the main learner's for an exploiter."""
        d = next(d for d in self.learners if d.name == name)
        return self.owners[0].name if d.exploiter else name


def plan_run(cfg: Config) -> RunPlan:
    """Resolve the game (an unknown game fails here, before anything starts) and its learners, and
    check that the config's network fits each of them."""
    make_slot, spec = load_game_config(cfg.game)
    try:
        learners = learner_set(spec, cfg.league)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if len(learners) > 1 and cfg.model.kind == "lstm" and not spec.roles:
        raise ConfigError("exploiters (league.main_exploiters, league.league_exploiters) are not supported with recurrent policies yet; use model.kind mlp or conv")
    if len(learners) > 1 and cfg.model.kind == "lstm":
        raise ConfigError(
            f"game {spec.name!r} has roles {[d.name for d in learners]}: recurrent policies (model.kind lstm) are not "
            "supported with roles yet; use model.kind mlp"
        )
    for d in learners:
        check_model_fits(cfg, d.spec)
    return RunPlan(cfg, make_slot, spec, learners)


def references(plan: RunPlan, d: LearnerDef) -> dict[str, ScriptedFn]:
    """Learner d's reference players, by player id (`random`; a role's `adversary/random`)."""
    return {d.player(name): fn for name, fn in references_for(plan.cfg.game.name, d.spec).items()}


def all_references(plan: RunPlan) -> dict[str, ScriptedFn]:
    """Every learner's references by player id: what rollout workers seat as opponents."""
    return {pid: fn for d in plan.learners for pid, fn in references(plan, d).items()}
