"""Who plays whom in each game slot of a rollout worker (actors/rollout.py RolloutWorker._seat_players):
the one learner of a game without roles (`seat_main`), a game with roles (`seat_roles`), and a game
without roles whose run trains exploiters (actors/learners.py; `seat_with_exploiters`), below.

The main learner ("") and its exploiters play every side with one spec. Each training game slot has
one learning player, fixed by the slot's index across the whole fleet (actor_id * envs_per_actor +
slot), so a run repeats seed for seed: league.exploiter_share of the slots go to exploiters, spread
evenly over the slot indices and dealt to the exploiters in turn (`exploiter_of_slot`).

- A main slot seats exactly as a run without exploiters does (the same draws from the same rng):
  the main latest on a random side, every other side drawn from the league, whose pool now also
  holds the exploiters' snapshots (their weights are fetched from the exploiter's own store:
  `owner_of`).
- A main exploiter's slot: the exploiter on a random side, the main latest on every other side.
  Both learn, each seat's segments to the stream of the learner whose latest sits there.
- A league exploiter's slot: the exploiter on a random side, every other side drawn from the
  league's past pool by PFSP-hard on the exploiter's own win rates (Player.exploiter_win_rates).
  The table is built once per league revision the actor reads (O(pool) then); a draw is a binary
  search over it.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from actors.learners import LEAGUE_EXPLOITER
from league.pool import LeagueView
from league.sampling import pfsp_probs


def seat_main(worker, role) -> tuple[list[str], float]:
    """The learner of a game without roles on a random side, the others drawn from its league (the
    first opponent's draw first, then the side: the order runs have always drawn in)."""
    state = role.io.league.state()
    opponent, prob = worker._draw(role, state)
    n = worker.num_sides
    learner_side = int(worker.rng.integers(n))
    players = [role.latest_id] * n
    others = [side for side in range(n) if side != learner_side]
    players[others[0]] = opponent
    for side in others[1:]:
        players[side] = worker._draw(role, state)[0]
    return players, prob


def seat_roles(worker, i: int, episode: int) -> tuple[list[str], float]:
    """A game with roles: one role learns, by turns of slot and episode; every side of the other
    roles is drawn from that role's own league."""
    learning = (i + episode) % len(worker.roles)
    players: list[str] = [""] * worker.num_sides
    probs = []
    for r, role in enumerate(worker.roles):
        state = None if r == learning else role.io.league.state()
        for side in role.sides:
            if r == learning:
                players[side] = role.latest_id
            else:
                players[side], p = worker._draw(role, state)
                probs.append(p)
    return players, probs[0] if probs else 1.0


def exploiter_of_slot(slot: int, share: float, exploiters: int) -> int | None:
    """Which exploiter (0 .. exploiters - 1) learns in fleet-wide game slot `slot`; None: the main
    learner. Of any run of consecutive slots, floor(share * slots) (+-1) go to exploiters."""
    if exploiters <= 0:
        return None
    below, upto = math.floor(slot * share), math.floor((slot + 1) * share)
    return None if upto == below else below % exploiters


def owner_of(view: LeagueView | None, player_id: str) -> str:
    """The learner whose store holds `player_id`'s weights: an exploiter's name for its snapshots,
    "" (the main learner's) otherwise."""
    if view is None:
        return ""
    p = view.players.get(player_id)
    return p.owner if p is not None else ""


_TABLES: "weakref.WeakKeyDictionary[LeagueView, dict]" = weakref.WeakKeyDictionary()
"""Per league view, per league exploiter: its PFSP-hard table as of the view's (epoch, revision)."""


def _pfsp_table(view: LeagueView, exploiter_id: str) -> tuple[list[str], np.ndarray, dict[str, float]] | None:
    """(ids, cumulative weights, probabilities) of the past pool for `exploiter_id`, built once per
    league revision the view reads (O(pool) then), not once per draw: a draw is a binary search."""
    tables = _TABLES.setdefault(view, {})
    key = (view.epoch, view.revision)
    held = tables.get(exploiter_id)
    if held is not None and held[0] == key:
        return held[1]
    rates = {p.id: float(p.exploiter_win_rates.get(exploiter_id, 0.5)) for p in view.players.values() if p.in_pool}
    table = None
    if rates:
        probs = pfsp_probs(rates, "hard")
        ids = sorted(probs)
        table = (ids, np.cumsum([probs[pid] for pid in ids]), probs)
    tables[exploiter_id] = (key, table)
    return table


def pfsp_hard_draw(view: LeagueView | None, exploiter_id: str, rng: np.random.Generator) -> tuple[str, float] | None:
    """A past player for league exploiter `exploiter_id`, weighted (1 - x)^2 by its win rate x
    against each (0.5 before any game; uniform when it beats them all), with its probability;
    None when the pool is empty."""
    if view is None:
        return None
    table = _pfsp_table(view, exploiter_id)
    if table is None:
        return None
    ids, cum, probs = table
    k = min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), len(ids) - 1)
    return ids[k], probs[ids[k]]


def seat_with_exploiters(worker, i: int) -> tuple[list[str], float]:
    """Who plays each side of slot i's next game, in a game without roles (RolloutWorker._seat_players)."""
    main = worker.roles[0]
    exploiters = worker.roles[1:]
    k = None
    if worker.game_kind == "train":
        k = exploiter_of_slot(worker.actor_id * worker.cfg.rollout.envs_per_actor + i, worker.cfg.league.exploiter_share, len(exploiters))
    if k is None:
        return seat_main(worker, main)
    ex = exploiters[k]
    n = worker.num_sides
    learner_side = int(worker.rng.integers(n))
    players = [main.latest_id] * n
    players[learner_side] = ex.latest_id
    probs = []
    if ex.kind == LEAGUE_EXPLOITER:
        state = main.io.league.state()
        for side in range(n):
            got = pfsp_hard_draw(state, ex.latest_id, worker.rng) if side != learner_side else None
            if got is not None:  # None: its own side, or no pool yet (the main latest plays, and learns too)
                players[side], p = worker._hold(*got, state, main)
                probs.append(p)
    return players, probs[0] if probs else 1.0
