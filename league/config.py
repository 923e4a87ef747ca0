"""The league's config section (`league:` in YAML): opponent sampling, snapshots, ratings, payoff.

cluster/config.py composes it into the run's Config and loads it strictly from YAML.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LeagueConfig:
    sampler: str = "openai_five"
    """Opponent sampler: openai_five, alphastar, pfsp_hard, pfsp_var, uniform, self_play."""
    latest_prob: float = 0.8
    """openai_five: probability of playing the latest policy (OpenAI Five: 0.8), per game. A game
    against the latest trains both seats, one against a past player only the learner's, so past
    players give (1 - p) / (1 + p) of the learner's samples: 11% at 0.8; 2/3 gives 20%."""
    quality_eta: float = 0.01
    """openai_five: quality-score step size eta (OpenAI Five: 0.01)."""
    snapshot_every: int = 10
    """A snapshot of the learner joins the pool every this many versions."""
    max_history: int = 500
    """Elo-history points kept in Redis per player; past it a history is thinned to every other
    point, so it spans the whole run in bounded memory."""
    rating_every_s: float = 2.0
    """Seconds between rating fits (sparse, warm-started: ~10 ms at 300 snapshots, ~0.3 s at 10,000).
    Games are applied on every league step; only the Elo fit waits for this."""
    rate_training_games: bool = False
    """Also fit ratings from training games. Off: ratings rest on rating games only (evaluators'
    and the end-of-run match), whose opponents are fixed references rather than whoever the
    opponent sampler picked. Turn on when eval.num_evaluators is 0, or ratings barely move."""
    payoff_decay: float = 0.99
    """AlphaStar payoff table: each game of a pair first multiplies that pair's counts by this (1 = no decay)."""
    pfsp_prior_games: float = 4.0
    """PFSP (alphastar, pfsp_*) weighs the learner's payoff win rate against a past player shrunk
    towards 0.5 by this many pseudo-games, half won: (W + D/2 + k/2) / (G + k). With the raw rate
    (0) one win against a new snapshot reads as x = 1, weight (1 - x)^2 = 0: it is never drawn
    again and its rate never moves. 4: one win gives x = 0.6 (weight 0.16, an unknown's 0.25),
    three wins leave verification's x < 0.7; the payoff heat map still shows the raw rate."""
    train_references: tuple[str, ...] = ()
    """Scripted reference players (names from actors/scripted.py for the game) that join the past
    pool as training opponents, sampled like snapshots; random always does. Empty: the others only
    play rating games, so every score against them is measured on an opponent never trained against."""

    main_exploiters: int = 0
    """AlphaStar main exploiters: extra learners (`main_exploiter`, `main_exploiter2`, ...) with the
    main agent's network and sides that train only against the main agent's current latest, which
    learns from those games too. Their snapshots join the league's pool. Games without roles only."""
    league_exploiters: int = 0
    """AlphaStar league exploiters (`league_exploiter`, ...): train against the league's whole past
    pool, drawn by PFSP-hard on their own win rates. Their snapshots join the pool. No roles."""
    exploiter_share: float = 0.25
    """With exploiters: the fraction of training game slots whose learner is an exploiter, split
    evenly among them; assigned by slot index (so a run repeats seed for seed). In (0, 1)."""
    exploiter_reset_win_rate: float = 0.7
    """An exploiter whose decayed payoff win rate against the main agent's latest exceeds this
    (after exploiter_reset_min_games games) is snapshotted and reset to the main agent's weights."""
    exploiter_reset_min_games: float = 20.0
    """Games (decayed payoff count) an exploiter plays against the main latest before its win rate can reset it."""
    exploiter_reset_versions: int = 200
    """An exploiter that trained this many versions since its last reset is snapshotted and reset."""

    def __post_init__(self) -> None:
        if not self.pfsp_prior_games >= 0.0:
            raise ValueError(f"league.pfsp_prior_games must be >= 0 (0: the raw win rate); got {self.pfsp_prior_games!r}")
