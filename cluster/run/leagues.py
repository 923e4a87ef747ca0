"""Every learner's league, as the driver's loop steps, checkpoints and reports it.

A run trains a set of learners (actors/learners.py); each has a league (its snapshots, its random
player, the latest of the other learners: league/league.py Roster), kept under its own keys and
stepped by its own LeagueManager. LeagueSet is the one object the driver talks to about leagues,
for one learner and for several alike:

    step(versions)        claim every league's games, refit, snapshot each learner's published versions
    checkpoint_leagues()  what a checkpoint carries: the one league, or {learner: league}
    snapshot_ids()        every league's snapshots (their weights are kept beside the checkpoints)

Exploiters (actors/learners.py) own no league: the main learner's league holds their latest and
their snapshots (copied from the exploiter's own parameter store). Each step snapshots an
exploiter every league.snapshot_every versions, and one that beats the main latest often enough
(league.exploiter_reset_win_rate) or trained league.exploiter_reset_versions versions since its
last reset is snapshotted and queued for a reset (`take_resets`): the driver has the learner
service load the main learner's current weights into it (AlphaStar resets exploiters to the
supervised agent; with none here, the main agent is the closest thing) and reports it back
(`exploiter_reset`).

A league is stepped with the versions of every learner it holds: learner B's league rates the other
learners' latest against B's players, so it must know their versions as well as B's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.learners import LearnerDef
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from league.config import LeagueConfig
from league.league import LeagueState, Player, snapshot_id
from league.manager import LeagueManager


@dataclass
class LearnerLeague:
    """One learner's league in the driver: its definition, stores and manager."""

    learner: LearnerDef
    params: ParamStore
    """The learner's parameter store (its published versions, and the snapshots it takes)."""
    store: LeagueStore
    manager: LeagueManager

    @property
    def state(self) -> LeagueState:
        return self.manager.state


@dataclass
class ExploiterLine:
    """An exploiter in the driver: its definition and parameter store (its league is the main one's)."""

    learner: LearnerDef
    params: ParamStore


class LeagueSet:
    def __init__(self, leagues: list[LearnerLeague], exploiters: list[ExploiterLine] = (), cfg: LeagueConfig | None = None) -> None:
        if not leagues:
            raise ValueError("a run has at least one learner")
        if exploiters and len(leagues) != 1:
            raise ValueError("exploiters join the one league of a game without roles")
        self.leagues = {lg.learner.name: lg for lg in leagues}
        self._ids = {lg.learner.latest_id: lg.learner.name for lg in leagues}
        self.exploiters = list(exploiters)
        self.cfg = cfg or LeagueConfig()
        self._resets: list[str] = []

    def __iter__(self):
        return iter(self.leagues.values())

    def __len__(self) -> int:
        return len(self.leagues)

    @property
    def first(self) -> LearnerLeague:
        """The first learner's league: THE league of a run of one learner (what the console charts)."""
        return next(iter(self.leagues.values()))

    def step(self, versions: dict[str, int], refit: bool = False, env_steps: int = -1) -> list[tuple[str, int]]:
        """Step every league (`versions`: each learner's version, by name); the snapshots added, as
        (player id, version)."""
        if len(self.leagues) == 1:
            lg = self.first
            if not self.exploiters:
                return [(pid, versions[lg.learner.name]) for pid in lg.manager.step(versions[lg.learner.name], refit, env_steps)]
            theirs = {x.learner.latest_id: versions[x.learner.name] for x in self.exploiters if x.learner.name in versions}
            added = [(pid, versions[lg.learner.name]) for pid in lg.manager.step(versions[lg.learner.name], refit, env_steps, versions=theirs)]
            return added + self._step_exploiters(lg)
        by_id = {pid: versions[name] for pid, name in self._ids.items() if name in versions}
        added = []
        for lg in self.leagues.values():
            head = lg.state.learner_id  # the first other learner's latest: the league's own version stamp
            for pid in lg.manager.step(by_id.get(head, 0), refit, env_steps, versions=by_id):
                added.append((pid, versions.get(lg.learner.name, 0)))
        return added

    def _step_exploiters(self, lg: LearnerLeague) -> list[tuple[str, int]]:
        """Each exploiter's snapshot when due, and its reset queued when due (see the module doc)."""
        st, cfg, added = lg.state, self.cfg, []
        for x in self.exploiters:
            d = x.learner
            published = x.params.latest_version()
            if published < 0 or d.name in self._resets:
                continue
            since = max(st.exploiter_last_snapshot(d.name), st.players[d.latest_id].reset_version)
            rate, games = st.exploiter_vs_main(d.latest_id)
            reset = (games >= cfg.exploiter_reset_min_games and rate > cfg.exploiter_reset_win_rate) or (
                published - st.players[d.latest_id].reset_version >= cfg.exploiter_reset_versions
            )
            if published > since and (reset or published >= since + cfg.snapshot_every):
                pid = d.player(snapshot_id(published))
                x.params.snapshot_from_published(pid, published)  # weights first: the league never names a snapshot without
                player = st.add_exploiter_snapshot(d.name, d.latest_id, pid, published)
                lg.store.record_ratings([player], st.learner_version)
                added.append((pid, published))
            if reset:
                self._resets.append(d.name)
        if added or self._resets:
            lg.store.save(st)
        return added

    def take_resets(self) -> list[str]:
        """The exploiters due for a reset (each snapshotted already); the driver resets them."""
        out, self._resets = self._resets, []
        return out

    def exploiter_reset(self, name: str, version: int) -> None:
        """Exploiter `name` now plays the main learner's weights as `version`: its record starts afresh."""
        lg = self.first
        d = next(x.learner for x in self.exploiters if x.learner.name == name)
        lg.state.exploiter_reset(d.latest_id, version)
        lg.store.save(lg.state)

    @property
    def duplicate_games(self) -> int:
        return sum(lg.manager.duplicate_games for lg in self.leagues.values())

    @property
    def bad_games(self) -> int:
        """Game results refused and set aside (docs/faults.md), over every league."""
        return sum(lg.manager.bad_games for lg in self.leagues.values())

    def checkpoint_leagues(self) -> dict:
        """{learner name: LeagueState.to_dict()} (a run of one learner: {"": its league})."""
        return {name: lg.state.to_dict() for name, lg in self.leagues.items()}

    def snapshot_ids(self) -> list[tuple[str, ParamStore]]:
        """Every league's snapshot ids, each with the parameter store that holds its weights."""
        owned = {x.learner.name: x.params for x in self.exploiters}
        return [
            (pid, owned.get(lg.state.players[pid].owner, lg.params)) for lg in self.leagues.values() for pid in sorted(lg.state.snapshot_ids())
        ]

    def tables(self) -> dict[str, list[Player]]:
        return {name: lg.state.table() for name, lg in self.leagues.items()}

    def table(self) -> list[Player]:
        """One table of every league's players, each id once: a learner's latest is rated in the
        other learners' leagues (each Elo on its own league's scale, anchored at its random player)."""
        seen: set[str] = set()
        out = []
        for lg in self.leagues.values():
            for p in lg.state.table():
                if p.id not in seen and not (len(self.leagues) > 1 and p.id == lg.learner.latest_id):
                    seen.add(p.id)
                    out.append(p)
        return out


def per_learner(leagues: LeagueSet):
    """What the metrics observer (cluster/ui/metrics.py) charts per learner: None for a run of one
    learner (its league rides on every Progress event), else each learner's league by name."""
    if len(leagues) == 1:
        return None
    return lambda: {name: lg.state for name, lg in leagues.leagues.items()}
