"""Evaluators: rating games, kept apart from training games (OpenAI Five's dedicated evaluators).

One round: reload the latest weights and the league, pick the policies to rate (the latest one and
`eval.snapshots_per_round` snapshots), play each of them `eval.games_per_pair` games against every
reference player (random = Elo 0, the game's scripted bots) with seats alternating, and report every
game to the league's queue as kind "eval". The league fits ratings from these games (and from
training games only if league.rate_training_games is set), so a rating is measured against fixed
opponents chosen for measurement, not against whoever the opponent sampler picked for training.

Plain Python, like the rollout loop: `params`, `league` and `results` are the same small protocols
(actors/rollout.py), so the in-process runner calls `round()` directly (deterministic given the
seed) and cluster/remote/evaluator_service.py wraps `run()` in a Ray actor.
"""

from __future__ import annotations

import heapq
import logging

import secrets
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from actors.config import EvalSettings
from actors.evaluate import Agent, MatchResult, play_match
from actors.exploitability import LEDUC, ExploitabilitySink, LeducExploitability
from actors.games import GameSlot, GameSpec
from actors.references import is_import_path, with_imported
from actors.replay import Replay, ReplaySink, match_replays
from actors.rollout import LeagueSource, ParamSource, ResultSink
from actors.scripted import ScriptedFn
from league.league import SNAPSHOT, LeagueState
from league.pool import LeagueView
from league.records import LEARNER_ID, RANDOM_ID, GameResult
from learner.model import InferencePolicy

_log = logging.getLogger(__name__)


def eval_reference_ids(cfg: EvalSettings, available: dict[str, ScriptedFn]) -> tuple[str, ...]:
    """The references evaluators play: eval.references (empty = all available; built-in names and
    `package.module:function` paths, actors/references.py), random always first."""
    wanted = cfg.eval.references or tuple(available)
    return (RANDOM_ID, *(r for r in wanted if r != RANDOM_ID and (r in available or is_import_path(r))))


def initial_league(cfg: EvalSettings, available: dict[str, ScriptedFn]) -> LeagueState:
    """A new run's league: the learner, random (a training opponent and the Elo anchor), the
    references named in league.train_references (training opponents too) and, when evaluators are
    on, the other references as evaluation-only players."""
    evals = eval_reference_ids(cfg, available) if cfg.eval.num_evaluators > 0 else ()
    train = (RANDOM_ID, *(r for r in cfg.league.train_references if r != RANDOM_ID))
    return LeagueState.new(train, evals, payoff_decay=cfg.league.payoff_decay)


def pick_snapshots(state: LeagueView | LeagueState | None, n: int, how: str) -> list[str]:
    """Snapshot ids to rate this round. "uncertain": never-rated first, then the largest Elo
    standard error (ratings converge where evidence is thinnest); "newest": highest version first.
    O(N) per round (a partial selection, not a sort): rounds are seconds apart."""
    if state is None or n <= 0:
        return []
    snaps = (p for p in state.players.values() if p.kind == SNAPSHOT)
    if how == "newest":
        best = heapq.nsmallest(n, snaps, key=lambda p: -p.version)
    elif how == "uncertain":
        best = heapq.nsmallest(n, snaps, key=lambda p: (p.elo_stderr is not None, -(p.elo_stderr or 0.0), -p.version))
    else:
        raise ValueError(f"unknown snapshot pick {how!r}; use uncertain or newest")
    return [p.id for p in best]


def match_games(
    game_id_prefix: str, player: str, version: int, reference: str, match: MatchResult, finished_at: float
) -> list[GameResult]:
    """One GameResult per game of `match` (player = agent A), with the sides it really had (the
    reference plays every other side of a game of more than two)."""
    out = []
    for k, (side, _, length, scores) in enumerate(match.outcomes):
        players, versions = [reference] * len(scores), [-1] * len(scores)
        players[side], versions[side] = player, version
        out.append(
            GameResult(
                game_id=f"{game_id_prefix}-{k}",
                players=tuple(players),
                versions=tuple(versions),
                scores=tuple(scores),
                length=length,
                kind="eval",
                opponent_prob=1.0,
                finished_at=finished_at,
            )
        )
    return out


def rated_snapshots(evaluator, build: Callable[[], InferencePolicy]) -> list[tuple[str, InferencePolicy]]:
    """The snapshots an evaluator (Evaluator or RoleEvaluator) rates this round, each loaded into a
    network from `build`; a snapshot whose weights are gone is counted, logged and skipped."""
    ev, out = evaluator.cfg.eval, []
    for pid in pick_snapshots(evaluator.league.state(), ev.snapshots_per_round, ev.snapshot_pick):
        try:
            version, tensors = evaluator.params.fetch_snapshot(pid)
        except KeyError:  # the league never names one without weights: its key was lost or evicted
            evaluator.stats.missing_snapshots += 1
            _log.warning("evaluator %s: snapshot %s is missing from Redis (lost or evicted); not rated this round (%d so far)",
                         evaluator.evaluator_id, pid, evaluator.stats.missing_snapshots)
            continue
        policy = build()
        policy.load(tensors, version)
        out.append((pid, policy))
    return out


@dataclass
class EvalStats:
    rounds: int = 0
    games: int = 0
    missing_snapshots: int = 0  # picked from the league but absent from the parameter store
    latest_version: int = -1
    last_round_s: float = 0.0


@dataclass(frozen=True)
class RoundReport:
    round: int
    latest_version: int
    rated: tuple[str, ...]  # player ids rated this round
    games: int


class Evaluator:
    def __init__(
        self,
        evaluator_id: int,
        cfg: EvalSettings,
        make_slot: Callable[[], GameSlot],
        spec: GameSpec,
        params: ParamSource,
        league: LeagueSource,
        results: ResultSink,
        references: dict[str, ScriptedFn],
        replays: ReplaySink | None = None,
        curves: ExploitabilitySink | None = None,
    ) -> None:
        """`curves`: where Leduc's exploitability points go (actors/exploitability.py); None: not measured."""
        self.evaluator_id = evaluator_id
        self.cfg = cfg
        self.make_slot, self.spec = make_slot, spec
        self.params, self.league, self.results = params, league, results
        self.replays = replays  # where the last games of each match are kept for replays; None: nowhere
        ids = eval_reference_ids(cfg, references)
        players = with_imported(references, ids)  # the user's own, by import path, loaded here
        self.references = {r: players[r] for r in ids}
        self.latest = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, head=spec.head)
        every = cfg.eval.exploitability_every
        self.exploitability = None
        if curves is not None and spec.name == LEDUC and every > 0 and evaluator_id == 0:  # one evaluator measures
            build = partial(InferencePolicy, spec.obs_shape, spec.num_actions, cfg.model, head=spec.head)
            self.exploitability = LeducExploitability(every, params, build, curves)
        self.stats = EvalStats()
        # Game ids must stay unique when a restarted evaluator counts rounds from 0 again.
        self.incarnation = secrets.token_hex(4)

    def _seed(self, round_index: int, candidate: int, reference: int) -> int:
        tag = 0x6576  # keeps evaluator seeds apart from rollout seeds built from the same numbers
        seq = np.random.SeedSequence([self.cfg.run.seed, tag, self.evaluator_id, round_index, candidate, reference])
        return int(seq.generate_state(1)[0])

    def _candidates(self) -> list[tuple[str, InferencePolicy]]:
        got = self.params.poll(self.latest.version)
        if got is not None:
            self.latest.load(got[1], got[0])
        out = [(LEARNER_ID, self.latest)] if self.latest.version >= 0 else []
        spec = self.spec
        return out + rated_snapshots(self, lambda: InferencePolicy(spec.obs_shape, spec.num_actions, self.cfg.model, head=spec.head))

    def round(self) -> RoundReport:
        """Rate the latest policy and the picked snapshots against every reference; report the games."""
        t0 = time.monotonic()
        r = self.stats.rounds
        candidates = self._candidates()
        games: list[GameResult] = []
        replays: list[Replay] = []
        # Replays hold moves as integers: Box games' vector actions are not kept (their ratings are).
        # Replays are of two-player turn-based games with numbered moves (actors/replay.py): a game of
        # more sides, or of Box actions, is rated but keeps none.
        replayable = self.spec.num_sides == 2 and not self.spec.continuous
        keep = self.cfg.eval.replays_per_pair if self.replays is not None and replayable else 0
        for c, (pid, policy) in enumerate(candidates):
            agent = Agent(policy=policy, greedy=self.cfg.eval.greedy)
            for k, (ref, fn) in enumerate(self.references.items()):
                match = play_match(
                    self.make_slot, agent, Agent(scripted=fn), self.cfg.eval.games_per_pair, seed=self._seed(r, c, k), record=keep > 0
                )
                prefix = f"eval{self.evaluator_id}-{self.incarnation}-r{r}-{pid}-{ref}"
                now = time.time()
                pair_games = match_games(prefix, pid, policy.version, ref, match, now)
                games += pair_games
                if keep > 0:
                    ids = [g.game_id for g in pair_games]
                    replays += match_replays(self.spec.name, ids, pid, policy.version, ref, match, now, keep)
        if games:
            self.results.report(games)
        if replays:
            self.replays.keep(replays, keep)
        if self.exploitability is not None:
            self.exploitability.maybe_measure(r, self.latest, self.league.state())
        self.stats.rounds += 1
        self.stats.games += len(games)
        self.stats.latest_version = self.latest.version
        self.stats.last_round_s = time.monotonic() - t0
        return RoundReport(r, self.latest.version, tuple(pid for pid, _ in candidates), len(games))

    def run(self, should_stop: Callable[[], bool], wait: Callable[[float], bool]) -> EvalStats:
        """Rounds every eval.interval_s until should_stop(). `wait(s)` pauses up to s seconds and
        returns True when asked to stop (threading.Event.wait), so stopping never waits a round out."""
        while not should_stop():
            t0 = time.monotonic()
            self.round()
            if wait(max(0.0, self.cfg.eval.interval_s - (time.monotonic() - t0))):
                break
        return self.stats
