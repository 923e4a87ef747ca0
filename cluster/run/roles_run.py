"""A training run of a game with roles (actors/roles.py; docs/architecture.md, "Asymmetric roles").

The same parts as trainer.py's run, role by role:

    LearnerService (one Ray actor)  one Learner, queue and parameter store (role keys) per role
    RolloutService x N              a RoleIO per role: its weights, its league reader, its stream
    LeagueManager per role          claims its own game queue, rates, snapshots its role's versions
    driver loop (driver.py)         unchanged, handed RoleManagers in place of one manager

What a game with roles does not do yet, and says so: resume and checkpoints (one learner state per
role), evaluators (rating rounds; the final matches rate instead), recurrent policies, more than two
roles. At the end each role's latest (greedy) and its first snapshot play the other role's random
player: the run's printed "early vs late" figure.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import yaml

from actors.evaluate import Agent
from actors.games import GameSpec
from actors.role_match import RoleMatchResult, Seat, role_match
from actors.roles import role_player, role_roster
from actors.scripted import references_for
from cluster.config import Config
from cluster.events import LearnerStarted, Observer, Observers, RunMeta, RunStarted
from cluster.remote.fleet import RolloutFleet
from cluster.remote.learner_handle import RayLearner
from cluster.run.console import ConsoleLog
from cluster.run.driver import DRIVER_TICK_S, DriverParts, drive
from cluster.run.resume import RunError, StartPoint
from cluster.stores.league_store import LeagueStore, run_stores
from cluster.stores.param_store import ParamStore
from league.league import LeagueState, Player
from league.manager import LeagueManager
from league.records import LEARNER_ID, RANDOM_ID
from learner.model import InferencePolicy


class RoleManagers:
    """One LeagueManager per role behind the one-manager surface the driver loop uses.

    Role B's league holds B's players as the other role's learner meets them (league.league.Roster),
    so its manager is stepped with the OTHER role's version, and takes snapshots of B's own
    published versions (its ParamStore is B's)."""

    def __init__(self, managers: dict[str, LeagueManager], params: dict[str, ParamStore]) -> None:
        self.managers, self.params_of = managers, params
        first = next(iter(managers.values()))
        self.state, self.params = first.state, first.params  # what the console and metrics chart

    def step(self, learner_version: int, refit: bool = False, env_steps: int = -1) -> list[str]:
        roles = list(self.managers)
        added = []
        for k, role in enumerate(roles):
            other = roles[1 - k]
            added += self.managers[role].step(max(self.params_of[other].latest_version(), 0), refit, env_steps)
        return added

    @property
    def duplicate_games(self) -> int:
        return sum(m.duplicate_games for m in self.managers.values())

    @property
    def bad_games(self) -> int:
        return sum(m.bad_games for m in self.managers.values())

    def tables(self) -> dict[str, list[Player]]:
        return {role: m.state.table() for role, m in self.managers.items()}


class _NoEvaluators:
    """The evaluators' handle when none run (roles: the final matches rate the players instead)."""

    def check(self) -> None: ...
    def games(self) -> int:
        return 0
    def league_changed(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class RolesOutcome:
    version: int
    env_steps: int
    games: int
    tables: dict[str, list[Player]]
    summary: dict
    finals: dict[str, dict[str, RoleMatchResult]]
    """Per role: its "first" snapshot's and its "final" latest's match against the other role's random player."""


def check_roles_run(cfg: Config, spec: GameSpec, resume) -> None:
    """Refuse, before anything starts, what a run with roles does not support yet."""
    names = [r.name for r in spec.roles]
    if len(names) != 2:
        raise RunError(f"game {spec.name!r} has roles {names}: training supports exactly two roles for now")
    if resume:
        raise RunError(f"game {spec.name!r} has roles: --resume is not supported for roles yet (no per-role checkpoints)")
    if cfg.model.kind == "lstm":
        raise RunError(f"game {spec.name!r} has roles: recurrent policies (model.kind lstm) are not supported with roles yet")


def train_roles(
    cfg: Config, spec: GameSpec, make_slot: Callable, run_dir: Path, run_id: str, url: str, log: Callable[[str], None],
    observers: Sequence[Observer] = (),
) -> RolesOutcome:
    """Train every role (Ray is up, Redis at `url`); run_training calls it for a game with roles."""
    roles = [r.name for r in spec.roles]
    stores = {role: run_stores(cfg, url, run_id, role) for role in roles}
    if any(store.load() is not None for _, store in stores.values()):
        raise RunError(f"run {run_id!r} already exists in this Redis; choose another --run-dir or run.run_id")
    managers = {}
    for role in roles:
        params, store = stores[role]
        state = LeagueState.new((role_player(role, RANDOM_ID),), payoff_decay=cfg.league.payoff_decay, roster=role_roster(spec.roles, role))
        store.save(state)
        managers[role] = LeagueManager(store, params, cfg.league, state)
    first_store = stores[roles[0]][1]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    meta = RunMeta(run_id, spec.name, time.time(), config=cfg.to_dict(), extra={"roles": roles})
    first_store.set_meta(dataclasses.replace(meta, running=True).to_doc())
    if cfg.eval.num_evaluators:
        log("evaluators do not rate games with roles yet: the final matches against the random players rate them")
    events = Observers([ConsoleLog(log, cfg.run.log_every_s), *observers])
    try:
        events.run_started(RunStarted(run_id, run_dir, url, None, 0, ()))
        learner = RayLearner.start(cfg, url, run_id, 0, None)
        events.learner_started(LearnerStarted(learner.device(), learner.pid(), 0, learner.name))
        role_managers = RoleManagers(managers, {role: stores[role][0] for role in roles})
        finals: dict[str, dict[str, RoleMatchResult]] = {}

        def wrap_up() -> None:
            finals.update(_final_matches(cfg, spec, make_slot, {role: stores[role] for role in roles}))

        parts = DriverParts(
            cfg, learner, RolloutFleet(cfg, url, run_id, learner.name, events), _NoEvaluators(), role_managers, first_store,
            events, log, ckpts=None, run_dir=run_dir, start=StartPoint(), tick_s=DRIVER_TICK_S, wrap_up=wrap_up,
        )
        outcome = drive(parts)
    finally:
        events.close()
        first_store.set_meta(dataclasses.replace(meta, running=False, finished_at=time.time()).to_doc())
    versions = {role: stores[role][0].latest_version() for role in roles}
    log(f"learner versions per role: {versions}")
    _log_finals(spec, finals, log)
    return RolesOutcome(versions[roles[0]], outcome.env_steps, outcome.games, role_managers.tables(), outcome.summary, finals)


def _policy(cfg: Config, spec: GameSpec, role: str, version: int, tensors) -> InferencePolicy:
    rspec = spec.role(role)
    policy = InferencePolicy(rspec.obs_shape, rspec.num_actions, cfg.model, version, head=rspec.head)
    policy.load(tensors, version)
    return policy


def _final_matches(cfg: Config, spec: GameSpec, make_slot, stores: dict[str, tuple[ParamStore, LeagueStore]]) -> dict:
    """Each role's first snapshot and final latest (greedy) against the other role's random player,
    run.eval_games each on the same seeds; reported as rating games to both roles' leagues."""
    roles = list(stores)
    out: dict[str, dict[str, RoleMatchResult]] = {}
    for k, role in enumerate(roles):
        other = roles[1 - k]
        params = stores[role][0]
        random_other = references_for(cfg.game.name, spec.role(other))[RANDOM_ID]
        first_id = role_player(role, "v000000")
        contenders = {"final": (role_player(role, LEARNER_ID), *params.fetch())}
        try:
            contenders = {"first": (first_id, *params.fetch_snapshot(first_id)), **contenders}
        except KeyError:
            pass  # no snapshot of version 0 (the league never stepped): only the final is played
        out[role] = {}
        for label, (pid, version, tensors) in contenders.items():
            seats = {
                role: Seat(pid, version, Agent(policy=_policy(cfg, spec, role, version, tensors), greedy=True)),
                other: Seat(role_player(other, RANDOM_ID), -1, Agent(scripted=random_other)),
            }
            result = role_match(make_slot, spec, seats, cfg.run.eval_games, seed=cfg.run.seed + 7, game_id=f"final-{role}-{label}-{version}")
            for _, store in stores.values():
                store.push_games(list(result.results))
            out[role][label] = result
    return out


def _log_finals(spec: GameSpec, finals: dict, log: Callable[[str], None]) -> None:
    roles = [r.name for r in spec.roles]
    for k, role in enumerate(roles):
        other = roles[1 - k]
        for label, r in finals.get(role, {}).items():
            log(f"final: {role} {label} (greedy) vs random {other} over {r.games} games: mean return per game "
                f"{role} {r.mean_return[role]:.2f}, {other} {r.mean_return[other]:.2f}")
    if spec.name.startswith("simple_tag") and "adversary" in finals:
        # simple_tag pays every predator +10 for each predator-prey collision on a step.
        got = {label: r.mean_return["adversary"] / 10.0 for label, r in finals["adversary"].items()}
        log("predators' catches per episode against a random prey: "
            + ", ".join(f"{label} {v:.2f}" for label, v in got.items()))
