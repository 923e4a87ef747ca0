"""Opponent sampling: which past (or current) player the learner faces next game.

Every sampler is split in two so the maths can be tested without randomness:
a pure function from league state to a probability table, and a draw from that
table with an explicit ``numpy.random.Generator``. Tables map opaque player ids to
probabilities; ids are never parsed.

Sampling draws over ids in sorted order, so the same seed gives the same opponent
however the caller's mapping happens to be ordered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OpponentChoice:
    """The opponent for one game.

    ``prob`` is the probability the chosen past opponent had *within the past pool*
    (not multiplied by the share of past games); the OpenAI Five quality update
    needs exactly that number. It is 1.0 when the latest player was chosen.
    """

    player_id: str
    prob: float
    is_latest: bool


@dataclass(frozen=True)
class PoolEntry:
    """What the samplers need to know about one past player.

    ``win_rate`` is the learner's win rate against this player (0.5 if unknown).
    """

    quality: float
    win_rate: float


# PFSP weightings from AlphaStar, as functions of x = P(learner beats opponent).
# "hard" focuses on opponents we lose to; "var" on opponents near 50%.
PFSP_WEIGHTINGS: dict[str, Callable[[float], float]] = {
    "hard": lambda x: (1.0 - x) ** 2,
    "var": lambda x: x * (1.0 - x),
    "linear": lambda x: 1.0 - x,
}

SAMPLERS = ("openai_five", "alphastar", "pfsp_hard", "pfsp_var", "uniform", "self_play")

# AlphaStar's main agent (Vinyals et al. 2019; DI-engine's MainPlayer): 35% self-play, 50% PFSP
# over every past player, 15% verification against past players it no longer beats reliably.
ALPHASTAR_MIX = (("self_play", 0.35), ("pfsp", 0.50), ("verification", 0.15))
FORGOTTEN_BELOW = 0.7
"""Verification games go to past players the learner beats less often than this (AlphaStar: 0.7)."""


# --- probability tables (pure) -------------------------------------------------


def quality_probs(qualities: Mapping[str, float]) -> dict[str, float]:
    """Softmax of quality scores: p_i proportional to exp(q_i).

    The max is subtracted first so that large |q| (qualities only ever drift
    downwards, and can drift far) neither overflows nor underflows to all-zero.
    """
    if not qualities:
        return {}
    for pid, q in qualities.items():
        if not math.isfinite(q):
            raise ValueError(f"quality of {pid!r} must be finite; got {q!r}")
    top = max(qualities.values())
    weights = {pid: math.exp(q - top) for pid, q in qualities.items()}
    total = sum(weights.values())  # >= 1 because the max term is exp(0)
    return {pid: w / total for pid, w in weights.items()}


def pfsp_weight(win_rate: float, weighting: str) -> float:
    """Unnormalised PFSP weight f(P[learner beats opponent])."""
    if weighting not in PFSP_WEIGHTINGS:
        raise ValueError(f"unknown PFSP weighting {weighting!r}; choose one of {sorted(PFSP_WEIGHTINGS)}")
    if not 0.0 <= win_rate <= 1.0:
        raise ValueError(f"win_rate must be in [0, 1]; got {win_rate!r}")
    return PFSP_WEIGHTINGS[weighting](win_rate)


def pfsp_probs(win_rates: Mapping[str, float], weighting: str = "hard") -> dict[str, float]:
    """PFSP table: p_i = f(win_rate_i) / sum_j f(win_rate_j).

    If every weight is zero (e.g. "hard" when the learner beats everyone) the table
    falls back to uniform, so the learner keeps playing the pool rather than failing.
    """
    if not win_rates:
        return {}
    weights = {pid: pfsp_weight(x, weighting) for pid, x in win_rates.items()}
    total = sum(weights.values())
    if total <= 0.0:
        return uniform_probs(list(win_rates))
    return {pid: w / total for pid, w in weights.items()}


def uniform_probs(ids: Sequence[str]) -> dict[str, float]:
    """Equal probability for every id."""
    if len(set(ids)) != len(ids):
        raise ValueError(f"player ids must be unique; got {list(ids)!r}")
    if not ids:
        return {}
    return {pid: 1.0 / len(ids) for pid in ids}


# --- OpenAI Five quality scores ---------------------------------------------


def update_quality(
    qualities: Mapping[str, float], beaten_id: str, prob: float, eta: float = 0.01
) -> dict[str, float]:
    """Lower the quality of a past opponent the current agent just beat.

    q_i <- q_i - eta / (N * p_i), with N the pool size and p_i the probability i had
    when it was sampled. Dividing by p_i makes the expected update independent of
    how often i is picked. Call this only on a *win* against i: a loss or draw
    changes nothing in OpenAI Five's scheme.
    """
    if beaten_id not in qualities:
        raise ValueError(f"{beaten_id!r} is not in the quality table; add it before updating it")
    if not 0.0 < prob <= 1.0:
        raise ValueError(f"prob must be in (0, 1] (the probability {beaten_id!r} was sampled with); got {prob!r}")
    if eta < 0.0:
        raise ValueError(f"eta must be non-negative; got {eta!r}")
    updated = dict(qualities)
    updated[beaten_id] = quality_after_win(qualities[beaten_id], len(qualities), prob, eta)
    return updated


def quality_after_win(quality: float, pool_size: int, prob: float, eta: float = 0.01) -> float:
    """update_quality for one player, given the pool's size N: q - eta / (N p). O(1)."""
    if not 0.0 < prob <= 1.0:
        raise ValueError(f"prob must be in (0, 1] (the probability the beaten player was sampled with); got {prob!r}")
    if pool_size < 1:
        raise ValueError(f"pool_size must be at least 1; got {pool_size!r}")
    return quality - eta / (pool_size * prob)


def initial_quality(qualities: Mapping[str, float]) -> float:
    """Quality a new snapshot joins with: the max of the pool, so it is sampled
    as often as the strongest past player until results say otherwise."""
    return max(qualities.values()) if qualities else 0.0


# --- drawing ------------------------------------------------------------------


def _draw(table: Mapping[str, float], rng: np.random.Generator) -> tuple[str, float]:
    """Draw one id from a probability table; return (id, its probability)."""
    ids = sorted(table)
    cum = np.cumsum([table[pid] for pid in ids])
    # Scale by the total rather than trusting it to be exactly 1.0.
    idx = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    pid = ids[min(idx, len(ids) - 1)]
    return pid, table[pid]


def _latest(latest_id: str) -> OpponentChoice:
    return OpponentChoice(player_id=latest_id, prob=1.0, is_latest=True)


def _past_only(pool: Mapping[str, object], latest_id: str) -> list[str]:
    # The latest player is never a *past* opponent, even if a caller listed it in
    # the pool; otherwise it would be played more often than the sampler intends.
    return [pid for pid in pool if pid != latest_id]


def _draw_past(table: Mapping[str, float], latest_id: str, rng: np.random.Generator) -> OpponentChoice:
    if not table:
        return _latest(latest_id)
    pid, prob = _draw(table, rng)
    return OpponentChoice(player_id=pid, prob=prob, is_latest=False)


def sample_openai_five(
    latest_id: str,
    qualities: Mapping[str, float],
    rng: np.random.Generator,
    latest_prob: float = 0.8,
) -> OpponentChoice:
    """OpenAI Five: the latest player with ``latest_prob``, else a past player with
    p_i proportional to exp(q_i). The latest is returned when the past pool is empty."""
    if not 0.0 <= latest_prob <= 1.0:
        raise ValueError(f"latest_prob must be in [0, 1]; got {latest_prob!r}")
    past = {pid: qualities[pid] for pid in _past_only(qualities, latest_id)}
    if not past or rng.random() < latest_prob:
        return _latest(latest_id)
    return _draw_past(quality_probs(past), latest_id, rng)


def alphastar_branch(rng: np.random.Generator) -> str:
    """Which part of ALPHASTAR_MIX the next game comes from (one draw of `rng`)."""
    u, edge = rng.random(), 0.0
    for name, share in ALPHASTAR_MIX:
        edge += share
        if u < edge:
            return name
    return ALPHASTAR_MIX[-1][0]


def sample_alphastar(
    latest_id: str,
    win_rates: Mapping[str, float],
    rng: np.random.Generator,
) -> OpponentChoice:
    """AlphaStar's main-agent mix. The branch is drawn first; PFSP (hard) weighs every past player,
    verification only those the learner beats less than FORGOTTEN_BELOW of the time (PFSP among
    them, so the most forgotten come first). A branch with no one to play falls back to self-play."""
    past = {pid: win_rates[pid] for pid in _past_only(win_rates, latest_id)}
    branch = alphastar_branch(rng)
    if branch == "verification":
        past = {pid: x for pid, x in past.items() if x < FORGOTTEN_BELOW}
    if branch == "self_play" or not past:
        return _latest(latest_id)
    return _draw_past(pfsp_probs(past, "hard"), latest_id, rng)


def choose_opponent(
    sampler: str,
    latest_id: str,
    pool: Mapping[str, PoolEntry],
    rng: np.random.Generator,
    latest_prob: float = 0.8,
) -> OpponentChoice:
    """Single entry point for the league: pick the next opponent with ``sampler``.

    "self_play" always plays the latest; "uniform" and "pfsp_*" sample only the past
    pool (the latest if it is empty); "openai_five" and "alphastar" mix both, see
    ``sample_openai_five`` and ``sample_alphastar``. ``latest_prob`` only affects "openai_five".
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {list(SAMPLERS)}")
    if sampler == "self_play":
        return _latest(latest_id)
    past = _past_only(pool, latest_id)
    if sampler == "openai_five":
        return sample_openai_five(latest_id, {pid: pool[pid].quality for pid in past}, rng, latest_prob)
    if sampler == "alphastar":
        return sample_alphastar(latest_id, {pid: pool[pid].win_rate for pid in past}, rng)
    if sampler == "uniform":
        table = uniform_probs(past)
    else:
        table = pfsp_probs({pid: pool[pid].win_rate for pid in past}, sampler.removeprefix("pfsp_"))
    return _draw_past(table, latest_id, rng)
