"""The actors' config sections: the game, the rollout actors, the evaluators (`game:`, `rollout:`, `eval:`).

cluster/config.py composes them into the run's Config and loads them strictly from YAML. The workers
take that composed config; RolloutSettings and EvalSettings name the few sections each one reads,
so this package depends on their shape, not on the package that composes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from league.config import LeagueConfig
from learner.arch import ModelConfig
from learner.config import PPOConfig


@dataclass(frozen=True)
class GameConfig:
    name: str = "tictactoe_v3"
    """PettingZoo game: a built-in name (connect_four_v3, simple_tag_v3...), or a game of your own
    as an import path, 'mygame:env' or 'package.module:factory' (any name with ':'; the factory
    returns an AEC or parallel env), or 'package.module' exposing env() / parallel_env()
    (docs/custom_game.md)."""
    kwargs: dict = field(default_factory=dict)
    """Keyword arguments passed to the game's env() factory. Atari games also take this system's
    frameskip (frames each decision is played for) and agent_indicator (on unless false): actors/atari.py."""
    native: bool = True
    """Step games this project implements itself (actors/native_games.py: connect_four_v3) with that
    implementation, the same game several times faster than PettingZoo's environment; false steps
    PettingZoo's. Ignored for other games and whenever kwargs or sides are given."""
    sides: dict = field(default_factory=dict)
    """Which agents each league player (a side) controls: {side name: [agent, ...]}, every agent in
    exactly one side. Empty: agents grouped by name prefix when that gives two or more groups
    (adversary_* against agent_*: teams), else each agent its own side (free-for-all, two-player
    games included). A side plays all its agents with one policy (actors/teams.py)."""
    roles: dict = field(default_factory=dict)
    """Which sides each role (one policy, learner stream and league) plays: {role: [side, ...]},
    every side in exactly one role, the sides of a role observing and acting alike. Empty: sides
    grouped by what their agents observe and how they act (actors/roles.py); a game whose sides all
    act alike has one role and trains as two-player games always have."""
    team_spirit: float = 1.0
    """OpenAI Five's tau in [0, 1]: each agent learns from (1 - tau) * its own reward + tau * its
    side's mean reward. No effect when every side has one agent."""
    reward_scale: float = 1.0
    """Every reward an agent learns from is multiplied by this (after team spirit and zero-sum):
    games paid in large units (no-limit hold'em's chips) would otherwise give value errors in the
    thousands, whose gradients crowd the policy's out of the shared gradient-norm clip."""
    zero_sum: bool = False
    """Subtract the enemy sides' mean reward from every agent's (OpenAI Five), so that only beating
    the enemy pays. Off by default: two-player board games already are zero-sum, and turning it on
    there would double their rewards."""


@dataclass(frozen=True)
class RolloutConfig:
    num_actors: int = 2
    """Ray rollout actors."""
    envs_per_actor: int = 16
    """Game copies stepped together by one actor (one batched forward pass per policy per tick)."""
    segment_length: int = 32
    """Decisions per trajectory segment sent to the learner (sent mid-game, as in Rapid)."""
    actor_num_cpus: float = 1.0
    """CPUs each rollout actor asks Ray for."""
    weight_poll_s: float = 0.2
    """How often actors poll the cheap version key in the parameter store."""
    max_inflight: int = 4
    """Segment batches an actor may have in flight to the learner before it waits (backpressure)."""
    send_segments: int = 8
    """Segments an actor gathers, over several ticks, before sending them to the learner in one
    call: each call has a fixed cost (about 1 ms on each side, measured by
    benchmarks/hot_paths.py --ray) that a tick's one or two segments would pay alone. Capped at
    half the learner's queue (learner.queue_segments), so a call still fits the queue and
    backpressure acts as before, and at about 90 KiB, past which Ray passes a call through its
    object store at a higher cost. A tick's segments are never split, so a call may hold a tick's
    worth more. 1: send every tick's segments as they are cut."""
    send_max_age_s: float = 0.25
    """A gathered segment is sent after at most this long (checked as new segments arrive, every
    tick in practice), so gathering adds little staleness. Segments gathered and not yet sent when
    an actor crashes are lost with it unannounced, like the decisions its lanes hold."""
    opponent_cache: int = 8
    """Idle past-opponent policies kept in memory per actor, beyond those in play (at least 1). A
    past opponent seated in one of the actor's games is always held (never evicted mid-game, never
    fetched twice while it plays), so the cache grows with the opponents in play. When an
    opponent's last game ends its policy stays idle, and at most this many idle ones are kept,
    least recently played dropped first, for the sampler to draw again. A miss loads the new
    weights into the least recently played idle policy's network rather than building one.
    Memory: the distinct opponents in play (at most envs_per_actor) + this many networks, however
    big the league grows (actors/opponents.py)."""
    league_refresh_s: float = 1.0
    """How often actors reload the league's opponent pool."""
    opening_random_moves: int = 0
    """Training games start after a uniformly random number (0 to this many) of uniformly random
    moves, made by neither player and not learned from, so that self-play keeps meeting new
    positions instead of replaying the few lines its own policy prefers (meant for games whose
    rewards come at the end, like board games). 0: every game starts from the game's start.
    Rating games and final matches always do."""
    random_move_prob: float = 0.0
    """A trembling hand: in training games of turn-based games with Discrete moves, each move is,
    with this probability, a uniformly random legal move made for the player to move and not
    learned from. Self-play then keeps meeting positions one wrong move away from its own lines (a
    reply that only a rare line punishes stays punished) and learns to play on after its own
    slips. Unlike opening_random_moves it acts at every ply, not only at the start. 0: off.
    Rating games and final matches never tremble."""
    max_restarts: int = 5
    """Times Ray restarts each rollout actor after it crashes (killed process, exception in a game,
    its node lost) before the run stops, within restart_window_s: an actor that used them up in less
    than that stops the run; one that took longer is replaced by a fresh actor with a fresh count."""
    restart_window_s: float = 3600.0
    """The window max_restarts counts over, in seconds (default an hour): a run of weeks on
    preemptible nodes keeps its actors; a game that fails every time stops the run."""
    resources: dict = field(default_factory=dict)
    """Custom Ray resources each rollout actor asks for besides its CPUs, to place the actors on
    chosen nodes: {rollout_node: 1} puts them only on nodes started with
    `ray start --resources='{"rollout_node": 8}'` (8 actors each at most). When such a node goes
    away its actors wait, and Ray restarts them (rollout.max_restarts) once a node offering the
    resource has room again. Empty: anywhere with CPUs to spare (docs/cluster.md, "Placement")."""


@dataclass(frozen=True)
class EvalConfig:
    num_evaluators: int = 1
    """Evaluator actors playing rating games, separate from training games (OpenAI Five's
    evaluators); 0 disables them. The in-process runner plays one round per league step if > 0."""
    num_cpus: float = 0.25
    """CPUs each evaluator asks Ray for (it idles between rounds, see interval_s)."""
    games_per_pair: int = 20
    """Games per (rated policy, reference) pair in one round; seats alternate game by game."""
    references: tuple[str, ...] = ()
    """Reference players to rate against (names from actors/scripted.py for the game); empty = all.
    The random player, the Elo-0 anchor, is always included."""
    snapshots_per_round: int = 1
    """Snapshots rated in each round besides the latest policy."""
    snapshot_pick: str = "uncertain"
    """Which snapshots a round rates: uncertain (largest Elo standard error first, unrated first) or newest."""
    greedy: bool = False
    """Rated policies play their argmax move. Off: they sample, as in training, so a rating
    describes the same policy that training games and opponents see."""
    interval_s: float = 5.0
    """Seconds from one round's start to the next; each round reloads the latest weights and the league."""
    resources: dict = field(default_factory=dict)
    """Custom Ray resources each evaluator asks for besides its CPUs (as rollout.resources), to
    place evaluators on chosen nodes. Empty: anywhere with CPUs to spare."""
    exploitability_every: int = 10
    """leduc_holdem_v4 only: every this many rounds the first evaluator computes exactly what a best
    response wins per hand against the latest policy and against the league's snapshots mixed
    uniformly (actors/exploitability.py), charted on the dashboard. 0: never."""
    replays_per_pair: int = 5
    """Rating games kept for replays (`selfplay replay`, the dashboard's replay page) per (rated
    player, reference) pair: the newest ones, in Redis, the rated player being `latest` or a
    snapshot id. A round records the moves of the last this many games of each match. 0: no moves
    are recorded. Training games never record theirs. Two-player games of Discrete moves only:
    games of more sides, and Box games, are rated but keep no replays."""


class Seeded(Protocol):
    @property
    def seed(self) -> int: ...


class RolloutSettings(Protocol):
    """The sections of the run's config a rollout worker reads (cluster/config.py's Config has them)."""

    @property
    def run(self) -> Seeded: ...
    @property
    def game(self) -> GameConfig: ...
    @property
    def model(self) -> ModelConfig: ...
    @property
    def rollout(self) -> RolloutConfig: ...
    @property
    def league(self) -> LeagueConfig: ...
    @property
    def ppo(self) -> PPOConfig:
        """Its gamma discounts the value that bootstraps a game cut by a time limit."""


class EvalSettings(Protocol):
    """The sections of the run's config an evaluator (and the initial league) reads."""

    @property
    def run(self) -> Seeded: ...
    @property
    def model(self) -> ModelConfig: ...
    @property
    def eval(self) -> EvalConfig: ...
    @property
    def league(self) -> LeagueConfig: ...
