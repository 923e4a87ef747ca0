"""Asymmetric roles (actors/roles.py): the mapping of sides to roles, each role's spec, the refusals,
and the rollout loop seating one policy per role with one segment stream per role, in-process."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from actors.games import GameError, load_game, refuse_roles
from actors.roles import RoleError, map_roles, role_player
from actors.rollout import RoleIO, RolloutWorker
from actors.scripted import random_legal
from cluster.config import Config
from league.league import REFERENCE, SNAPSHOT, Player, Roster
from league.pool import LeagueView
from league.records import LEARNER_ID, RANDOM_ID
from tests.test_rollout import HIDDEN, FakeLeague, FakeParams, ListResults, ListSink

CHASE = "tests.team_games:chase"
H, R = "hunter", "runner"


# --- mapping -------------------------------------------------------------------------------


def test_sides_alike_make_one_role_and_sides_that_differ_make_one_role_each():
    names = ("a", "b", "c")
    sides = ((0,), (1, 2), (3,))
    assert map_roles(names, sides, ("x", "y", "y", "x")) == (("a", "b"), ((0, 2), (1,)))
    assert map_roles(names, sides, ("x",) * 4) == (("a",), ((0, 1, 2),))


def test_explicit_roles_cover_every_side_once_and_keep_a_role_alike():
    names, sides, sigs = ("a", "b", "c"), ((0,), (1,), (2,)), ("x", "x", "y")
    assert map_roles(names, sides, sigs, {"pair": ["a", "b"], "odd": "c"}) == (("pair", "odd"), ((0, 1), (2,)))
    with pytest.raises(RoleError, match="leaves sides \\['c'\\] without a role"):
        map_roles(names, sides, sigs, {"pair": ["a", "b"]})
    with pytest.raises(RoleError, match="observe or act differently"):
        map_roles(names, sides, sigs, {"all": ["a", "b", "c"]})
    with pytest.raises(RoleError, match="names \\['z'\\]"):
        map_roles(names, sides, sigs, {"pair": ["a", "z"], "odd": ["b", "c"]})
    with pytest.raises(RoleError, match="more than one role"):
        map_roles(names, sides, sigs, {"p": ["a", "b"], "q": ["b"], "r": ["c"]})
    with pytest.raises(RoleError, match="without '/'"):
        map_roles(names, sides, sigs, {"p/q": ["a", "b"], "odd": ["c"]})


def test_a_side_whose_agents_differ_is_refused_with_the_fix():
    with pytest.raises(RoleError, match="split it with game.sides"):
        map_roles(("a", "b"), ((0, 1), (2,)), ("x", "y", "x"))


# --- specs ---------------------------------------------------------------------------------


def test_an_asymmetric_game_gets_one_spec_per_role():
    make_slot, spec = load_game(CHASE)
    assert [(r.name, r.sides, r.obs_shape, r.num_actions) for r in spec.roles] == [(H, (0,), (3,), 3), (R, (1,), (4,), 2)]
    runner = spec.role(R)
    assert (runner.obs_shape, runner.num_actions, runner.roles) == ((4,), 2, ())
    slot = make_slot()
    slot.reset(seed=0)
    # Each seat's mask has its own role's size; an action legal for hunters is not for the runner.
    assert [slot.view(s)[1].size for s in slot.decisions] == [3, 3, 2]
    slot.decide(0, 2)
    slot.decide(1, 2)
    with pytest.raises(GameError, match="illegal action 2 for seat 2"):
        slot.decide(2, 2)
    with pytest.raises(GameError, match="no role 'prey'"):
        spec.role("prey")


def test_simple_tag_has_predators_and_prey_roles():
    _, spec = load_game("simple_tag_v3", {"max_cycles": 5})
    assert [(r.name, r.obs_shape, r.num_actions) for r in spec.roles] == [("adversary", (16,), 5), ("agent", (14,), 5)]
    assert spec.sides == ((0, 1, 2), (3,))


def test_games_whose_sides_are_alike_have_no_roles():
    for name in ("tictactoe_v3", "tests.team_games:relay", "tests.team_games:countdown"):
        assert load_game(name)[1].roles == ()
    # Explicit roles may still split a symmetric game; one explicit role is the same as none.
    assert load_game("tests.team_games:countdown", roles={"only": ["left", "right"]})[1].roles == ()
    assert len(load_game("tests.team_games:countdown", roles={"l": ["left"], "r": ["right"]})[1].roles) == 2


def test_bad_roles_and_what_cannot_serve_roles_are_refused_clearly():
    with pytest.raises(GameError, match="game 'tests.team_games:chase': game.roles\\['all'\\] joins sides"):
        load_game(CHASE, roles={"all": ["hunter", "runner"]})
    _, spec = load_game(CHASE)
    with pytest.raises(GameError, match="asymmetric roles \\(hunter .*runner.*\\).*human play does not support roles"):
        refuse_roles(spec, "human play")
    refuse_roles(load_game("tictactoe_v3")[1], "human play")  # no roles: nothing to refuse


# --- rollout -------------------------------------------------------------------------------


def _role_league(role: str, snapshots: tuple[int, ...]) -> FakeLeague:
    """A role's league as its reader sees it: its references and snapshots under role ids."""
    league = FakeLeague(None, "uniform")
    view = LeagueView("uniform")
    players = [Player(role_player(role, RANDOM_ID), REFERENCE, -1)]
    players += [Player(role_player(role, f"v{v:06d}"), SNAPSHOT, v) for v in snapshots]
    view.apply(players, revision=1, learner_version=max(snapshots, default=0))
    league._view = view
    return league


def _worker(leagues: dict | None = None, envs: int = 4, steps: int = 3, seed: int = 0):
    make_slot, spec = load_game(CHASE, {"steps": steps})
    cfg = (
        Config()
        .replace("game", name=CHASE, kwargs={"steps": steps}, team_spirit=0.0)
        .replace("rollout", envs_per_actor=envs, segment_length=steps, weight_poll_s=0.0)
        .replace("model", hidden_sizes=HIDDEN)
        .replace("league", sampler="uniform", latest_prob=0.0)
        .replace("run", seed=seed)
    )
    io, params, sinks = {}, {}, {}
    for k, role in enumerate(spec.roles):
        p = params[role.name] = FakeParams(role.obs_shape[0], role.num_actions)
        p.publish(0, seed=10 + k)
        sinks[role.name] = ListSink()
        league = (leagues or {}).get(role.name, FakeLeague(None, "uniform"))
        io[role.name] = RoleIO(p, league, sinks[role.name])
    refs = {role_player(r.name, RANDOM_ID): random_legal for r in spec.roles}
    results = ListResults()
    worker = RolloutWorker(0, cfg, make_slot, spec, None, None, None, results, refs, roles=io)
    return worker, params, sinks, results


def test_each_role_plays_its_own_policy_and_feeds_its_own_stream():
    worker, params, sinks, results = _worker()
    params[R].publish(3, seed=99)  # the runner's learner is ahead: versions are per role
    worker.run(lambda: False, max_ticks=40)
    hunter, runner = sinks[H].segments, sinks[R].segments
    assert hunter and runner
    assert all(s.obs.shape[1] == 3 and s.masks.shape[1] == 3 and set(s.versions.tolist()) == {0} for s in hunter)
    assert all(s.obs.shape[1] == 4 and s.masks.shape[1] == 2 and set(s.versions.tolist()) == {3} for s in runner)
    # A hunter is paid action / 2 per step, the runner its action: each row holds its own role's.
    assert all(np.array_equal(s.rewards, s.actions / 2.0) for s in hunter)
    assert all(np.array_equal(s.rewards, s.actions.astype(np.float32)) for s in runner)
    assert {int(a) for s in hunter for a in s.actions} == {0, 1, 2} and {int(a) for s in runner for a in s.actions} == {0, 1}
    assert (worker.roles[0].latest.version, worker.roles[1].latest.version) == (0, 3)
    # Before any league exists every side plays its role's latest; ids are namespaced by role.
    assert {g.players for g in results.games} == {(role_player(H, LEARNER_ID), role_player(R, LEARNER_ID))}
    assert {g.versions for g in results.games} == {(0, 3)}


def test_opponents_for_a_role_come_from_that_roles_league_and_the_roles_take_turns_learning():
    leagues = {H: _role_league(H, (1, 2)), R: _role_league(R, (5,))}
    worker, params, sinks, results = _worker(leagues, envs=3)
    for role, versions in ((H, (1, 2)), (R, (5,))):
        for v in versions:
            params[role].snapshots[role_player(role, f"v{v:06d}")] = (v, params[role].make_weights(100 + v))
    worker.run(lambda: False, max_ticks=60)
    hunters_seen, runners_seen = Counter(g.players[0] for g in results.games), Counter(g.players[1] for g in results.games)
    assert set(hunters_seen) == {role_player(H, p) for p in (LEARNER_ID, RANDOM_ID, "v000001", "v000002")}
    assert set(runners_seen) == {role_player(R, p) for p in (LEARNER_ID, RANDOM_ID, "v000005")}
    # latest_prob 0: a role's latest only plays when it is that game's learning role, half the games.
    assert abs(hunters_seen[role_player(H, LEARNER_ID)] - runners_seen[role_player(R, LEARNER_ID)]) <= 3
    assert not any(g.players == (role_player(H, LEARNER_ID), role_player(R, LEARNER_ID)) for g in results.games)
    # Only a latest policy's decisions are learned from: snapshots' and references' never are.
    assert all(set(s.versions.tolist()) == {0} for s in sinks[H].segments + sinks[R].segments)
    assert worker.stats.opponent_cache_misses >= 3 and worker.stats.opponent_fallbacks == 0


def test_a_worker_for_a_game_with_roles_needs_every_roles_io():
    make_slot, spec = load_game(CHASE)
    cfg = Config().replace("model", hidden_sizes=HIDDEN).replace("rollout", envs_per_actor=1)
    p = FakeParams(3, 3)
    with pytest.raises(ValueError, match="has 2 roles: pass roles="):
        RolloutWorker(0, cfg, make_slot, spec, p, FakeLeague(None, "uniform"), ListSink(), ListResults(), {})
    with pytest.raises(ValueError, match="RoleIO given for \\['hunter'\\]"):
        RolloutWorker(0, cfg, make_slot, spec, None, None, None, ListResults(), {}, roles={H: RoleIO(p, FakeLeague(None, "uniform"), ListSink())})


def test_rollouts_with_roles_are_reproducible_from_the_seed():
    def run(seed):
        worker, _, sinks, results = _worker(envs=2, seed=seed)
        worker.run(lambda: False, max_ticks=20)
        return [s.actions.tolist() for s in sinks[H].segments + sinks[R].segments], [g.scores for g in results.games]

    assert run(1) == run(1) and run(1) != run(2)


# --- per-role parameters, and what is not wired yet ---------------------------------------


def test_each_role_has_its_own_versions_and_snapshots_in_the_parameter_store(redis_client):
    from cluster.stores.keys import RunKeys
    from cluster.stores.param_store import ParamStore, StaleVersionError

    keys = RunKeys("selfplay", "tag")
    assert keys.for_role("").param_version == keys.param_version == "selfplay:tag:params:version"  # no roles: the same keys
    assert keys.for_role(H).param_version == "selfplay:tag:role:hunter:params:version"
    assert keys.for_role(H).league_players == "selfplay:tag:role:hunter:league:players"
    assert keys.for_role(H).snapshot("hunter/v000003") == keys.snapshot("hunter/v000003")  # snapshots stay the run's
    hunter, runner = (ParamStore(redis_client, keys.for_role(r), keep_versions=2) for r in (H, R))

    def weights(v, dim):
        return {"w": np.full((dim,), v, np.float32)}

    for v in range(4):
        hunter.publish(v, weights(v, 3))
    runner.publish(0, weights(0, 4))
    runner.publish(1, weights(1, 4))  # not stale although the hunters' learner is at 3: versions are per role
    assert (hunter.latest_version(), runner.latest_version()) == (3, 1)
    assert runner.poll(0)[1]["w"].shape == (4,) and hunter.poll(3) is None
    assert hunter.fetch(1) is None and runner.fetch(0) is not None  # each role keeps its own newest 2
    with pytest.raises(StaleVersionError):
        runner.publish(1, weights(9, 4))
    hunter.snapshot_from_published(role_player(H, "v000003"), 3)
    runner.snapshot_from_published(role_player(R, "v000001"), 1)
    version, got = runner.fetch_snapshot(role_player(H, "v000003"))  # any role's store reads any role's snapshot
    assert version == 3 and got["w"].tolist() == [3.0] * 3
    assert ParamStore(redis_client, keys).latest_version() == -1  # nothing written under the role-less keys


def test_what_a_run_with_roles_does_not_support_is_refused_before_anything_is_written(tmp_path, capsys):
    from cluster.run.cli import main

    run_dir = tmp_path / "run"
    for extra, message in (
        (["--resume"], "--resume: no checkpoint in"),  # resumable like any run: there is just nothing to resume yet
        (["--set", "model.kind=lstm"], "recurrent policies (model.kind lstm) are not supported with roles yet"),
    ):
        assert main(["train", "--config", "configs/simple_tag_smoke.yaml", "--run-dir", str(run_dir), *extra]) == 2
        assert message in capsys.readouterr().err and not run_dir.exists()


# --- the learner serves one policy per role -------------------------------------------------


class ServiceSink:
    """An actor's sink for one role, handing encoded batches straight to the learner service."""

    def __init__(self, service, role: str) -> None:
        self.service, self.role, self.sent = service, role, 0

    def send(self, segments) -> None:
        from learner.wire import encode_segments

        self.sent += len(segments)
        assert self.service.submit(encode_segments(segments), timeout_s=5.0, count=len(segments), role=self.role)


def test_the_learner_serves_one_policy_per_role_with_its_own_versions_and_staleness(redis_server, redis_client):
    from cluster.remote.learner_service import LearnerService
    from tests.fault_support import small_config

    cfg = small_config(
        f"game.name={CHASE}", "ppo.batch_size=48", "ppo.minibatch_size=24", "rollout.segment_length=6", "rollout.envs_per_actor=4",
        "rollout.weight_poll_s=0.0", "learner.queue_segments=64",
    )
    service = LearnerService(cfg.to_dict(), redis_server.url, "roles-run")  # the Ray actor's class, in-process
    assert service.publish() == 0 and service.versions() == {H: 0, R: 0}
    _, spec = load_game(CHASE)
    io = {role: RoleIO(service.params_of[role], FakeLeague(None, "uniform"), ServiceSink(service, role)) for role in (H, R)}
    worker = RolloutWorker(0, cfg, load_game(CHASE)[0], spec, None, None, None, ListResults(), {}, roles=io)
    worker.start()
    reports = []
    for _ in range(200):
        worker.tick()
        reports += service.train(wait_s=0.0).updates
        if min(service.versions().values()) >= 3:
            break
    by_role = {role: [r.version for r in reports if r.role == role] for role in (H, R)}
    assert by_role[H][:3] == [1, 2, 3] and by_role[R][:3] == [1, 2, 3]  # each role counts its own versions
    # Each role's versions went to its own keys, and the actors' policies followed them.
    versions = service.versions()
    assert {role: service.params_of[role].latest_version() for role in (H, R)} == versions
    worker.sync_weights(force=True)
    assert (worker.roles[0].latest.version, worker.roles[1].latest.version) == (versions[H], versions[R])
    status = service.train(wait_s=0.0).status
    assert dict(status.role_versions) == service.versions() and status.samples_used >= 4 * 48
    assert all(0 <= r.staleness_max <= 2 for r in reports)  # lag within a role's own versions
    with pytest.raises(ValueError, match="this run trains learners \\['hunter', 'runner'\\]"):
        service.submit(b"", role="prey")
    # A checkpoint holds every learner, and a new service restores each from it.
    from learner.checkpoint import decode_checkpoint

    version, data = service.checkpoint({"env_steps": 1}, {H: {"players": []}, R: {"players": []}})
    ckpt = decode_checkpoint(data)
    assert version == sum(versions.values()) and {n: st.version for n, st in ckpt.learner_states().items()} == versions
    assert ckpt.league_of(H) == {"players": []}
    restored = LearnerService(cfg.to_dict(), redis_server.url, "roles-run-2", initial_version=versions, checkpoint=data)
    assert restored.versions() == versions
    for role in (H, R):
        a, b = service.streams[role].learner.weights(), restored.streams[role].learner.weights()
        assert all(np.array_equal(a[k], b[k]) for k in a)


# --- a league per role ------------------------------------------------------------------------


def test_a_roles_league_holds_its_players_as_the_other_roles_learner_meets_them(redis_client):
    from actors.learners import league_roster, learner_set
    from cluster.stores.keys import RunKeys
    from cluster.stores.league_store import LeagueStore
    from cluster.stores.param_store import ParamStore
    from league.config import LeagueConfig
    from league.league import LeagueState
    from league.manager import LeagueManager
    from league.records import GameResult

    _, spec = load_game(CHASE)
    roster = league_roster(learner_set(spec), H)  # the hunters' league: what the runner's learner is drawn against
    assert (roster.learner_id, roster.pool_latest_id, roster.random_id) == ("runner/latest", "hunter/latest", "hunter/random")
    keys = RunKeys("selfplay", "chase").for_role(H)
    params, store = ParamStore(redis_client, keys), LeagueStore(redis_client, keys)
    state = LeagueState.new(reference_ids=(roster.random_id,), roster=roster)
    manager = LeagueManager(store, params, LeagueConfig(snapshot_every=2, rating_every_s=0.0), state)
    for v in range(4):
        params.publish(v, {"w": np.full(3, v, np.float32)})

    def game(n, players, versions, scores, kind="eval"):
        return GameResult(f"g{n}", players, versions, scores, 3, kind, 1.0, 0.0)

    runner, hunter, random_h = "runner/latest", "hunter/latest", "hunter/random"
    games = [game(n, (random_h, runner), (-1, 5), (0.0, 1.0)) for n in range(8)]  # the runner beats random hunters
    games += [game(8, (random_h, runner), (-1, 5), (1.0, 0.0)), game(9, (hunter, runner), (3, 5), (0.5, 0.5), "train")]
    games.append(game(10, ("hunter/latest", "runner/v000002"), (3, 2), (1.0, 0.0), "train"))  # the hunters learning: not this league's
    store.push_games(games)
    assert manager.step(5, refit=True) == ["hunter/v000003"]  # a snapshot of the hunters' newest published version
    players = state.players
    assert players[random_h].elo == 0.0 and players[runner].elo > 100  # anchored at the hunters' random player
    assert players[runner].version == 5 and players["hunter/v000003"].version == 3
    assert players[random_h].payoff_win_rate > 0.7  # PFSP weighs the runner's win rate against each hunter player
    assert players[random_h].vs_learner == [8, 0, 1] and players[hunter].games == 1 and state.games_total == 10
    assert params.fetch_snapshot("hunter/v000003")[0] == 3
    assert store.load().players.keys() == players.keys()  # saved under the role's keys
    assert LeagueStore(redis_client, RunKeys("selfplay", "chase")).load() is None
    assert league_roster(learner_set(load_game("tictactoe_v3")[1]), "") == Roster()  # one learner: the run's league as always
