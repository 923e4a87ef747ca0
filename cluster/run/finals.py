"""The end of a run, for each learner: its final policy file and its final matches.

A learner of a game without roles plays, greedily, every reference of the game (random first),
run.eval_games each with seats alternating (actors/evaluate.py play_match). A role's learner
cannot take another role's seats, so its first snapshot and its final latest each play the other
roles' random players (actors/role_match.py), on the same seeds: the run's "early vs late" figure.
Every final game is reported to the leagues as a rating game, so the tables are anchored.
"""

from __future__ import annotations

import time
from pathlib import Path

from actors.evaluate import Agent, MatchResult, play_match
from actors.evaluator import match_games
from actors.learners import LearnerDef
from actors.role_match import RoleMatchResult, Seat, role_match
from actors.references import with_imported
from actors.scripted import references_for
from cluster.config import Config
from cluster.run.leagues import LeagueSet
from cluster.stores.league_store import LeagueStore
from league.records import LEARNER_ID, RANDOM_ID
from learner.export import policy_meta, save_policy
from learner.model import InferencePolicy


def final_policy_path(run_dir: Path, d: LearnerDef, several: bool) -> Path:
    """`final_policy.msgpack` for the one learner of a game without roles (its main learner, with
    exploiters: theirs are `final_policy-main_exploiter.msgpack`, ...); one file per role otherwise."""
    return Path(run_dir) / (f"final_policy-{d.name}.msgpack" if several and d.name else "final_policy.msgpack")


def save_final_policy(run_dir: Path, cfg: Config, d: LearnerDef, version: int, weights, several: bool) -> Path:
    spec = d.spec
    path = final_policy_path(run_dir, d, several)
    save_policy(path, weights, version, policy_meta(spec.name, cfg.model, spec.obs_shape, spec.num_actions, spec.head, role="" if d.exploiter else d.name,
                                                      setup=vars(cfg.game)))  # an exploiter plays any side
    return path


def _policy(cfg: Config, d: LearnerDef, version: int, weights) -> InferencePolicy:
    policy = InferencePolicy(d.spec.obs_shape, d.spec.num_actions, cfg.model, version, head=d.spec.head)
    policy.load(weights, version)
    return policy


def final_eval(cfg: Config, plan, d: LearnerDef, version: int, weights, store: LeagueStore) -> dict[str, MatchResult]:
    """Latest, playing its most likely move, against every reference of the game (random first),
    run.eval_games each, seats alternating; reported to the league as rating ('eval') games."""
    policy = _policy(cfg, d, version, weights)
    refs = with_imported(references_for(cfg.game.name, d.spec), cfg.eval.references)  # import-path references too
    out = {}
    for name in sorted(refs, key=lambda r: r != RANDOM_ID):
        result = play_match(plan.make_slot, Agent(policy=policy, greedy=True), Agent(scripted=refs[name]), cfg.run.eval_games, seed=cfg.run.seed + 7)
        store.push_games(match_games(f"final-eval-{name}-{version}", LEARNER_ID, version, name, result, time.time()))
        out[name] = result
    return out


def final_line(name: str, r: MatchResult, version: int) -> str:
    lo, hi = r.confidence_interval()
    return (f"final: latest (v{version}, greedy) vs {name} over {r.games} games: "
            f"W {r.wins} D {r.draws} L {r.losses}, score {r.score:.3f} (95% CI {lo:.3f}-{hi:.3f})")


def role_finals(cfg: Config, plan, d: LearnerDef, leagues: LeagueSet) -> dict[str, RoleMatchResult]:
    """Role d's first snapshot (v0) and final latest (greedy) against every other role's random
    player, run.eval_games each on the same seeds; reported as rating games to every league."""
    params = leagues.leagues[d.name].params
    contenders = {}
    try:
        contenders["first"] = (d.player("v000000"), *params.fetch_snapshot(d.player("v000000")))
    except KeyError:
        pass  # no snapshot of version 0 (the league never stepped): only the final is played
    published = params.fetch()
    if published is not None:
        contenders["final"] = (d.latest_id, *published)
    out = {}
    for label, (pid, version, tensors) in contenders.items():
        seats = {d.name: Seat(pid, version, Agent(policy=_policy(cfg, d, version, tensors), greedy=True))}
        for other in plan.learners:
            if other.name != d.name:
                random_other = references_for(cfg.game.name, other.spec)[RANDOM_ID]
                seats[other.name] = Seat(other.random_id, -1, Agent(scripted=random_other))
        result = role_match(plan.make_slot, plan.spec, seats, cfg.run.eval_games, seed=cfg.run.seed + 7, game_id=f"final-{d.name}-{label}-{version}")
        for lg in leagues:
            lg.store.push_games(list(result.results))
        out[label] = result
    return out


def role_final_lines(plan, d: LearnerDef, results: dict[str, RoleMatchResult]) -> list[str]:
    others = [o.name for o in plan.learners if o.name != d.name]
    lines = []
    for label, r in results.items():
        returns = ", ".join(f"{role} {r.mean_return[role]:.2f}" for role in [d.name, *others])
        lines.append(f"final: {d.name} {label} (greedy) vs random {', '.join(others)} over {r.games} games: mean return per game {returns}")
    return lines
