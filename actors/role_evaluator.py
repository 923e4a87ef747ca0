"""Rating games for one role's learner of a game with roles (actors/learners.py).

A role's policy can only take its own role's sides, so it cannot play the game's references from
every seat as actors/evaluator.py's Evaluator does. Each role's league is anchored at that role's
random player and rates that role's players as the other learners meet them (actors/learners.py),
so one round for role B here plays (actors/role_match.py), `eval.games_per_pair` games each:

    B's latest      against every other role's random player: rated in the other roles' leagues
    B's snapshots   against every other role's latest policy: rated in B's own league
                    (`eval.snapshots_per_round` of them, picked as the Evaluator picks them)

and reports every game as kind "eval" to every role's league (each records the pairs it holds).
"""

from __future__ import annotations

import secrets
import time
from typing import Callable

import numpy as np

from actors.config import EvalSettings
from actors.evaluate import Agent
from actors.evaluator import EvalStats, RoundReport, rated_snapshots
from actors.games import GameSlot, GameSpec
from actors.learners import LearnerDef
from actors.role_match import Seat, role_match
from actors.rollout import LeagueSource, ParamSource, ResultSink
from actors.scripted import ScriptedFn
from league.records import GameResult
from learner.model import InferencePolicy


class RoleEvaluator:
    def __init__(
        self,
        evaluator_id: int,
        cfg: EvalSettings,
        make_slot: Callable[[], GameSlot],
        spec: GameSpec,
        learner: LearnerDef,
        opponents: dict[str, tuple[LearnerDef, ScriptedFn, ParamSource]],
        params: ParamSource,
        league: LeagueSource,
        results: ResultSink,
    ) -> None:
        """`opponents`: for every other role, (its learner, its random player, its parameters)."""
        self.evaluator_id, self.cfg = evaluator_id, cfg
        self.make_slot, self.spec, self.learner = make_slot, spec, learner
        self.opponents = opponents
        self.params, self.league, self.results = params, league, results
        self.latest = self._build(learner)
        self._others = {role: self._build(d) for role, (d, _, _) in opponents.items()}  # every other role's latest
        self.stats = EvalStats()
        self.incarnation = secrets.token_hex(4)  # game ids stay unique across a restarted evaluator's rounds

    def _seed(self, round_index: int, candidate: int) -> int:
        tag = 0x726F  # keeps these seeds apart from the Evaluator's and the rollouts'
        seq = np.random.SeedSequence([self.cfg.run.seed, tag, self.evaluator_id, self.learner.index, round_index, candidate])
        return int(seq.generate_state(1)[0]) % (2**31)

    def _build(self, d: LearnerDef) -> InferencePolicy:
        return InferencePolicy(d.spec.obs_shape, d.spec.num_actions, self.cfg.model, head=d.spec.head)

    def _candidates(self) -> list[tuple[str, InferencePolicy]]:
        for policy, params in [(self.latest, self.params), *((self._others[r], o[2]) for r, o in self.opponents.items())]:
            got = params.poll(policy.version)
            if got is not None:
                policy.load(got[1], got[0])
        out = [(self.learner.latest_id, self.latest)] if self.latest.version >= 0 else []
        return out + rated_snapshots(self, lambda: self._build(self.learner))

    def round(self) -> RoundReport:
        t0 = time.monotonic()
        r = self.stats.rounds
        candidates = self._candidates()
        games: list[GameResult] = []
        greedy = self.cfg.eval.greedy
        for c, (pid, policy) in enumerate(candidates):
            seats = {self.learner.name: Seat(pid, policy.version, Agent(policy=policy, greedy=greedy))}
            for role, (d, random_fn, _) in self.opponents.items():
                if pid == self.learner.latest_id or self._others[role].version < 0:
                    seats[role] = Seat(d.random_id, -1, Agent(scripted=random_fn))
                else:  # a snapshot meets the other roles' latest, as in its own league
                    seats[role] = Seat(d.latest_id, self._others[role].version, Agent(policy=self._others[role], greedy=greedy))
            game_id = f"eval{self.evaluator_id}-{self.incarnation}-r{r}-{pid}"
            match = role_match(self.make_slot, self.spec, seats, self.cfg.eval.games_per_pair, seed=self._seed(r, c), game_id=game_id)
            games += match.results
        if games:
            self.results.report(games)
        self.stats.rounds += 1
        self.stats.games += len(games)
        self.stats.latest_version = self.latest.version
        self.stats.last_round_s = time.monotonic() - t0
        return RoundReport(r, self.latest.version, tuple(pid for pid, _ in candidates), len(games))
