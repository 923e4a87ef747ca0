"""The built-in references' own strength, so that a score against one means something.

Hold'em (actors/poker_refs.py): the hand-strength bot against random players, seats alternating
(in four-player no-limit the bot takes one seat and random players the other three), as a score
(win 1 / draw 0.5 / loss 0; with four players a placement, 1 first to 0 last) with its 95% Wilson
interval, and its mean reward per hand in the game's units (PettingZoo's: chips in no-limit, big
blinds in limit and Leduc), which counts a fold as the small loss it is where a score counts a loss. MPE (actors/mpe_refs.py): each role's heuristic against the other roles' random players
and against their heuristics, as the mean return per episode of every role (simple_tag pays a
predator 10 per catch, so the predators' return / 10 is catches per episode), with a 95% interval
from the per-episode spread.

    python benchmarks/references.py                  # every game, default games
    python benchmarks/references.py --games 200 --only holdem
    python benchmarks/references.py --train configs/holdem.yaml --minutes 5 --games 400
        # trains in one process for 5 minutes, then scores the latest policy against every
        # reference of the game (sampling its moves, as in rating games), with 95% intervals
    python benchmarks/references.py --train configs/simple_tag_smoke.yaml --minutes 15 --games 400
        # a game with roles: each trained role against the other roles' heuristics, beside that
        # role's own heuristic in its place (the baseline), mean return per episode
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.evaluate import Agent, play_match  # noqa: E402
from actors.games import load_game  # noqa: E402
from actors.role_match import Seat, role_match  # noqa: E402
from actors.scripted import random_legal, references_for  # noqa: E402

HOLDEM = (
    ("leduc_holdem_v4", {}),
    ("texas_holdem_v4", {}),
    ("texas_holdem_no_limit_v6", {}),
    ("texas_holdem_no_limit_v6", {"num_players": 4}),
)
MPE = (("simple_tag_v3", {"max_cycles": 50}), ("simple_world_comm_v3", {"max_cycles": 50}))


def mean_return(make_slot, agent_a: Agent, agent_b: Agent, games: int, seed: int) -> tuple[float, float]:
    """A's mean return per game in the game's own units (chips in no-limit hold'em) and the
    half-width of its 95% interval; A plays each side in turn, B every other side."""
    slot = make_slot()
    rng = np.random.default_rng(seed)
    out = []
    for g in range(games):
        side_a = g % slot.num_sides
        slot.reset(seed=seed * 100_003 + g)
        agent_a.new_game(0)
        agent_b.new_game(0)
        while not slot.over:
            agent = agent_a if slot.side == side_a else agent_b
            slot.step(agent.act([slot], rng, keys=[0])[0])
        out.append(sum(slot.returns[i] for i in slot.sides[side_a]))
    return float(np.mean(out)), 1.96 * float(np.std(out, ddof=1)) / math.sqrt(len(out))


def holdem(games: int, seed: int) -> None:
    for name, kwargs in HOLDEM:
        make_slot, spec = load_game(name, kwargs)
        bot = references_for(name, spec)["hand_strength"]
        t0 = time.monotonic()
        r = play_match(make_slot, Agent(scripted=bot), Agent(scripted=random_legal), games, seed=seed)
        lo, hi = r.confidence_interval()
        won, half = mean_return(make_slot, Agent(scripted=bot), Agent(scripted=random_legal), games, seed)
        label = f"{name}{' ' + str(kwargs) if kwargs else ''}"
        print(f"{label:<50} hand_strength vs random: score {r.score:.3f} [{lo:.3f}, {hi:.3f}], "
              f"reward per hand {won:+.2f} ± {half:.2f}, over {r.games} games ({time.monotonic() - t0:.0f} s)")


def _returns(make_slot, spec, seats: dict, games: int, seed: int) -> dict[str, tuple[float, float]]:
    """Per role: (mean return per episode, half-width of its 95% interval), one game at a time,
    each role's sides played by seats[role] (a Seat: role_match starts its agent afresh every game)."""
    per_game = {r: [] for r in seats}
    for g in range(games):
        result = role_match(make_slot, spec, seats, 1, seed=seed + g)
        for role in seats:
            per_game[role].append(result.mean_return[role])
    return {r: (float(np.mean(v)), 1.96 * float(np.std(v, ddof=1)) / math.sqrt(len(v))) for r, v in per_game.items()}


def _reference_seat(spec, role: str, ref: str) -> Seat:
    return Seat(f"{role}/{ref}", -1, Agent(scripted=references_for(spec.name, spec.role(role))[ref]))


def mpe(games: int, seed: int) -> None:
    for name, kwargs in MPE:
        make_slot, spec = load_game(name, kwargs)
        roles = [r.name for r in spec.roles]
        options = [[k for k in references_for(name, spec.role(r))] for r in roles]
        for combo in itertools.product(*options):
            t0 = time.monotonic()
            got = _returns(make_slot, spec, {r: _reference_seat(spec, r, k) for r, k in zip(roles, combo)}, games, seed)
            who = ", ".join(f"{r} {k}" for r, k in zip(roles, combo))
            rets = ", ".join(f"{r} {m:.2f} ± {h:.2f}" for r, (m, h) in got.items())
            extra = f"; predators' catches/episode {got['adversary'][0] / 10:.2f}" if name == "simple_tag_v3" else ""
            print(f"{name} ({who}): mean return per episode {rets}{extra} over {games} episodes ({time.monotonic() - t0:.0f} s)")


def _heuristic(spec, role: str) -> tuple[str, object]:
    """A role's heuristic reference (its one built-in player besides random)."""
    refs = {k: fn for k, fn in references_for(spec.name, spec.role(role)).items() if k != "random"}
    if not refs:
        raise SystemExit(f"{spec.name}: role {role!r} has no heuristic reference to compare with")
    return next(iter(refs.items()))


def score_roles(make_slot, spec, policies: dict, games: int, seed: int) -> None:
    """Each trained role against the other roles' heuristics, beside that role's own heuristic in
    its place (the baseline it must beat): mean return per episode of the role, 95% intervals.
    Trained policies sample their moves, as in rating games."""
    roles = [r.name for r in spec.roles]
    heuristic = {r: _heuristic(spec, r) for r in roles}

    def returns(trained: str | None) -> dict[str, tuple[float, float]]:
        seats = {r: _reference_seat(spec, r, heuristic[r][0]) for r in roles}
        if trained is not None:
            seats[trained] = Seat(f"{trained}/latest", policies[trained].version, Agent(policy=policies[trained]))
        return _returns(make_slot, spec, seats, games, seed)

    base = returns(None)
    print(f"  every role heuristic ({', '.join(f'{r} {heuristic[r][0]}' for r in roles)}): "
          + ", ".join(f"{r} {m:.2f} ± {h:.2f}" for r, (m, h) in base.items()) + f" over {games} episodes")
    for r in roles:
        got = returns(r)
        (m, h), (bm, bh) = got[r], base[r]
        verdict = "beats" if m - h > bm + bh else "below" if m + h < bm - bh else "level with"
        print(f"  {r}: trained (sampling) {m:.2f} ± {h:.2f} vs the others' heuristics; its heuristic {heuristic[r][0]} "
              f"{bm:.2f} ± {bh:.2f} in its place: {verdict} the heuristic (mean return per episode)")


def train_and_score(config: str, minutes: float, games: int, overrides: list[str]) -> None:
    import tempfile

    import torch

    torch.set_num_threads(1)
    from cluster.config import load_config
    from cluster.run.inline import run_inline
    from cluster.stores.embedded_redis import EmbeddedRedis
    from cluster.stores.league_store import run_stores
    from learner.model import InferencePolicy

    cfg = load_config(config, [f"run.max_seconds={minutes * 60}", *overrides])
    make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs)
    t0 = time.monotonic()
    published = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        learner, _, steps = run_inline(cfg, server.url, "references", log=lambda s: None)
        for role in spec.roles:  # every role's latest published weights (run_inline returns the first learner)
            published[role.name] = run_stores(cfg, server.url, "references", role.name)[0].fetch()
    if spec.roles:
        versions = {r: v for r, (v, _) in published.items()}
        print(f"{cfg.game.name} {cfg.game.kwargs or ''}: trained {time.monotonic() - t0:.0f} s, versions {versions}, {steps:,} env steps")
        policies = {}
        for role, (version, weights) in published.items():
            rspec = spec.role(role)
            policies[role] = InferencePolicy(rspec.obs_shape, rspec.num_actions, cfg.model, version)
            policies[role].load(weights, version)
        score_roles(make_slot, spec, policies, max(8, games // 4), cfg.run.seed + 7)
        return
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, learner.version)
    policy.load(learner.weights(), learner.version)
    print(f"{cfg.game.name} {cfg.game.kwargs or ''}: trained {time.monotonic() - t0:.0f} s, v{learner.version}, {steps:,} env steps")
    for name, fn in references_for(cfg.game.name, spec).items():
        r = play_match(make_slot, Agent(policy=policy), Agent(scripted=fn), games, seed=cfg.run.seed + 7)
        lo, hi = r.confidence_interval()
        won, half = mean_return(make_slot, Agent(policy=policy), Agent(scripted=fn), games, cfg.run.seed + 7)
        print(f"  latest (sampling) vs {name}: score {r.score:.3f} [{lo:.3f}, {hi:.3f}], reward per game {won:+.3f} ± {half:.3f}, over {r.games} games")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", type=int, default=400, help="games per hold'em pairing (MPE: episodes, a quarter of this)")
    ap.add_argument("--only", choices=("holdem", "mpe"), default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", default="", metavar="CONFIG", help="train this config in one process, then score it against the references")
    ap.add_argument("--minutes", type=float, default=5.0, help="with --train: training time")
    ap.add_argument("--set", action="append", default=[], help="with --train: section.key=value override (repeatable)")
    args = ap.parse_args()
    if args.train:
        train_and_score(args.train, args.minutes, args.games, args.set)
        return
    if args.only in (None, "holdem"):
        holdem(args.games, args.seed)
    if args.only in (None, "mpe"):
        mpe(max(8, args.games // 4), args.seed)


if __name__ == "__main__":
    main()
