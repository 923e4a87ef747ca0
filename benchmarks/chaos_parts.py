"""The parts of benchmarks/chaos.py: the game-id audit, the version sampler, the observer that kills
things on schedule, and the report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import ray
import yaml

from cluster.events import ActorRestarted, ActorStarted, LearnerRestarted, LearnerStarted, Observer, Progress

KINDS = ("actor", "evaluator", "learner", "redis", "node", "poison", "driver")
REPO = Path(__file__).resolve().parents[1]


# --- games: reported (Redis took the push) vs recorded (the league counted it) -------------------
def install_audit() -> None:
    """In every process of the run (a Ray worker setup hook, and the driver): after each push of
    finished games that Redis acknowledged, append their ids to CHAOS_AUDIT_DIR/<pid>.ids. The file
    is opened per push, so a killed process loses at most the push it was making."""
    from cluster.stores.league_store import LeagueStore

    directory = os.environ.get("CHAOS_AUDIT_DIR")
    if not directory or getattr(LeagueStore.push_games, "audited", False):
        return
    push = LeagueStore.push_games

    def audited(self, results):
        push(self, results)  # raises when Redis never took them: then they were not reported
        if results:
            with open(os.path.join(directory, f"{os.getpid()}.ids"), "a") as f:
                f.write("".join(f"{g.game_id}\n" for g in results))

    audited.audited = True
    LeagueStore.push_games = audited


def audited_ids(directory: Path, run: str) -> set[str]:
    """The ids reported during one run: its files are moved under directory/run first, so the next
    run (same processes for the driver, new ones for its actors) starts new files."""
    into = directory / run
    into.mkdir(exist_ok=True)
    for f in directory.glob("*.ids"):
        f.rename(into / f.name)
    return {line for f in into.glob("*.ids") for line in f.read_text().split()}


class Recorded:
    """The ids of the games the league (LeagueState.record, in the driver) counted into games_total."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    @contextmanager
    def installed(self):
        from league.league import LeagueState

        record = LeagueState.record

        def noting(state, g, cfg):
            before = state.games_total
            record(state, g, cfg)
            if state.games_total > before:
                self.ids.add(g.game_id)

        LeagueState.record = noting
        try:
            yield self
        finally:
            LeagueState.record = record


class VersionSampler:
    """The published version, read from Redis every period_s on a thread of its own; a read that
    fails (Redis down) is skipped."""

    def __init__(self, client, keys, period_s: float = 0.5) -> None:
        from cluster.stores.param_store import ParamStore

        self.params, self.period_s = ParamStore(client, keys), period_s
        self.versions: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.versions.append(self.params.latest_version())
            except Exception:  # noqa: BLE001 - Redis is down by design now and then: no sample
                pass

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


# --- the kills -----------------------------------------------------------------------------------
class Chaos(Observer):
    """Kills the next component every args.every seconds, from the driver's loop (its progress
    events): what blocks (a Redis restart, a node removal) runs on a thread; a lost node's
    replacement is added here, on the main thread, as Ray requires."""

    def __init__(self, args, cfg, server, cluster, log, enabled: bool = True) -> None:
        self.args, self.cfg, self.server, self.cluster, self.log, self.enabled = args, cfg, server, cluster, log, enabled
        self.pids: dict[str, int] = {}
        self.kills: dict[str, int] = {k: 0 for k in KINDS}
        self.skipped: dict[str, str] = {}
        self.recovered: dict[str, int] = {k: 0 for k in KINDS}
        self.progress_versions: list[int] = []
        self.turn = 0
        self.next_at = 0.0  # set once every actor has started: the first kill comes `every` s later
        # No kill in the last half period, so that the last one's recovery is seen before the end.
        self.last_kill_at = time.monotonic() + args.minutes * 60 - args.every / 2
        self.returning: list[tuple[float, object]] = []  # (when, removed node) to add back
        self.threads: list[threading.Thread] = []
        self.poison = None
        if "poison" in args.kinds:
            from benchmarks.chaos_poison import Poison

            self.poison = Poison(cfg, server.url)
        self.run_dir: Path | None = None  # the run's directory, for a second driver of it (set by chaos.py)

    def learner_started(self, e: LearnerStarted) -> None:
        self.pids["learner"] = e.pid

    def learner_restarted(self, e: LearnerRestarted) -> None:
        self.pids["learner"] = e.pid
        self.recovered["learner"] += 1

    def actor_started(self, e: ActorStarted) -> None:
        self.pids[f"actor{e.actor}"] = e.pid

    def actor_restarted(self, e: ActorRestarted) -> None:
        self.recovered["actor"] += 1

    def progress(self, e: Progress) -> None:
        self.progress_versions.append(e.version)
        if self.poison is not None:
            self.poison.observe(e.learner.corrupt_payloads)
        now = time.monotonic()
        for when, node in [r for r in self.returning if r[0] <= now]:
            self.returning.remove((when, node))
            self.cluster.add_like(node)
            self.recovered["node"] += 1
            self.log("chaos: an identical node joined in place of the lost one")
        if not self.next_at and all(f"actor{i}" in self.pids for i in range(self.cfg.rollout.num_actors)):
            self.next_at = now + self.args.every
        if self.enabled and self.next_at and self.next_at <= now <= self.last_kill_at:
            kind = self.args.kinds[self.turn % len(self.args.kinds)]
            try:
                what = getattr(self, f"_kill_{kind}")()
            except ProcessLookupError:  # its process is being replaced right now: try again next tick
                return
            self.next_at, self.turn = now + self.args.every, self.turn + 1
            if what:
                self.kills[kind] += 1
                self.log(f"chaos: {'injected' if kind == 'poison' else 'killed'} {what}")

    def _kill_actor(self) -> str:
        i = self.kills["actor"] % self.cfg.rollout.num_actors
        os.kill(self.pids[f"actor{i}"], signal.SIGKILL)
        return f"rollout actor {i} (pid {self.pids[f'actor{i}']})"

    def _kill_evaluator(self) -> str:
        pids = [a["Pid"] for a in ray._private.state.actors().values() if a["State"] == "ALIVE" and a["ActorClassName"].endswith("EvaluatorService")]
        if not pids:
            self.skipped["evaluator"] = "no evaluator alive (eval.num_evaluators=0?)"
            return ""
        os.kill(pids[0], signal.SIGKILL)
        return f"an evaluator (pid {pids[0]})"

    def _kill_learner(self) -> str:
        os.kill(self.pids["learner"], signal.SIGKILL)
        return f"the learner (pid {self.pids['learner']})"

    def _kill_redis(self) -> str:
        def restart() -> None:
            self.server.stop()  # SIGTERM: redis-server completes its append-only file and exits
            time.sleep(self.args.redis_down_s)
            self.server.start()  # same port, password and data directory
            self.recovered["redis"] += 1

        self._thread(restart)
        return f"redis-server (down for {self.args.redis_down_s:g} s)"

    def _kill_node(self) -> str:
        if self.cluster is None:
            self.skipped["node"] = "single-node Ray: run with --local-cluster to lose nodes"
            return ""
        learner_node = self.cluster.node_of(self.pids["learner"])
        rollout_nodes = [n for n in self.cluster.workers() if "rollout_node" in self.cluster.resources_of[n][1]]
        k = self.kills["node"]
        node = learner_node if k % 2 == 0 and learner_node is not None else rollout_nodes[(k // 2) % len(rollout_nodes)]
        role = "the learner's node" if node is learner_node else "a rollout node"
        self.returning.append((time.monotonic() + self.args.node_down_s, node))
        self._thread(lambda: self.cluster.remove_node(node))
        return f"{role} (back in {self.args.node_down_s:g} s)"

    def _kill_driver(self) -> str:
        """Not a kill: the same run started again (`selfplay train ... --resume auto`) while it runs.
        It must be refused (the run's lease), and this run must go on."""
        if self.run_dir is None:
            self.skipped["driver"] = "no run directory given to the monkey"
            return ""

        def again() -> None:
            refused, last = second_driver(self.cfg, self.server.url, self.run_dir)
            self.recovered["driver"] += int(refused)
            self.log(f"chaos: the second driver {'was refused' if refused else 'WAS NOT REFUSED'}: {last}")

        self._thread(again)
        return "nothing: started the same run again as a second driver"

    def _kill_poison(self) -> str:
        """Not a kill: hostile input (benchmarks/chaos_poison.py), counted and survived."""
        what = self.poison.inject(self.progress_versions[-1])
        if not what:
            self.skipped["poison"] = "a game with roles: the poison kind sends one policy's segments"
        return what

    def _thread(self, fn) -> None:
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        self.threads.append(t)

    def finish(self) -> None:
        for t in self.threads:
            t.join(timeout=120)
        for _, node in self.returning:
            self.cluster.add_like(node)  # back for the next run
        self.returning.clear()


def second_driver(cfg, redis_url: str, run_dir: Path, timeout_s: float = 300.0) -> tuple[bool, str]:
    """Run `selfplay train --resume auto` for the run in `run_dir` (its config, the same run id) in
    a process of its own, as an operator who retried a job would; (whether it was refused because
    another driver holds the run, its last line of output)."""
    from cluster.config import written_config

    config = run_dir.parent / f"{run_dir.name}-second-driver.yaml"
    config.write_text(yaml.safe_dump(written_config(cfg), sort_keys=False))
    cmd = [sys.executable, "-m", "cluster.run.cli", "train", "--config", str(config), "--redis-url", redis_url,
           "--run-dir", str(run_dir), "--resume", "auto"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=REPO)
    lines = (proc.stderr + proc.stdout).strip().splitlines()
    return proc.returncode == 2 and "being driven by another driver" in proc.stderr, lines[-1] if lines else f"exit {proc.returncode}"


# --- the report ----------------------------------------------------------------------------------
def strength(result) -> str:
    finals = result.final_matches
    name = "tactical" if "tactical" in finals else next((n for n in reversed(sorted(finals)) if n != "random"), "random")
    if name not in finals:
        return "n/a (interrupted)"
    r = finals[name]
    lo, hi = r.confidence_interval()
    return f"{r.score:.3f} vs {name} (95% CI {lo:.3f}-{hi:.3f}, {r.games} games)"


def _monotonic(xs: list[int]) -> bool:
    return all(b >= a for a, b in zip(xs, xs[1:]))


def table(runs: list[dict], args) -> tuple[str, bool]:
    """The markdown report, and whether the chaos run kept its promises (no game lost, versions never back)."""
    ok = True
    cols = [r["name"] for r in runs]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, f) -> None:
        rows.append((label, [f(r) for r in runs]))

    for r in runs:
        r["lost"] = len(r["reported"] - r["recorded"])
        r["mono"] = _monotonic(r["versions"]) and _monotonic(r["progress_versions"])
        ok = ok and r["lost"] == 0 and r["mono"] and r["games_total"] == len(r["recorded"])
        p = r["monkey"].poison if r["monkey"].enabled else None
        if p is not None and p.games_injected:  # every poison game refused, and versions went on after the first
            ok = ok and r["result"].summary["bad_games"] == p.games_injected and r["result"].learner_version > p.first_version
        m = r["monkey"]
        ok = ok and m.kills["driver"] == m.recovered["driver"]  # every second driver refused
    row("minutes", lambda r: f"{r['minutes']:.1f}")
    row("final learner version", lambda r: str(r["result"].learner_version))
    row("games reported (ids Redis acknowledged)", lambda r: str(len(r["reported"])))
    row("games recorded by the league (ids; games_total in Redis)", lambda r: f"{len(r['recorded'])}; {r['games_total']}")
    row("**games lost**", lambda r: f"**{r['lost']}**")
    row("reported twice, counted once", lambda r: str(r["result"].summary["duplicate_games"]))
    row("recorded, reporter killed before noting it", lambda r: str(len(r["recorded"] - r["reported"])))
    row("**versions monotonic** (Redis samples; progress events)",
        lambda r: f"**{'yes' if r['mono'] else 'NO'}** ({len(r['versions'])}; {len(r['progress_versions'])})")
    for kind, label in (("actor", "rollout actor"), ("evaluator", "evaluator"), ("learner", "learner"), ("redis", "redis-server"), ("node", "node")):
        row(f"{label}: killed / restarts seen", lambda r, k=kind: _kills(r, k))
    row("**second driver** of the run: started / refused (the run goes on)", lambda r: _kills(r, "driver"))
    if "poison" in args.kinds:
        row("poison: bad game results injected / refused (bad_games)", lambda r: _poison(r, "games"))
        row("poison: malformed segments sent / dropped (corrupt_payloads)", lambda r: _poison(r, "segments"))
        row("poison: learner versions after the first injection", lambda r: _poison(r, "versions"))
    row("**final strength** (latest, greedy)", lambda r: r["strength"])
    head = f"| {'':<10} | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    body = "".join(f"| {label} | " + " | ".join(vals) + " |\n" for label, vals in rows)
    promise = "; every poison game refused, and versions went on after it" if "poison" in args.kinds else ""
    notes = "".join(f"\n- {k}: skipped, {why}" for k, why in runs[0]["monkey"].skipped.items())
    cmd = f"python benchmarks/chaos.py --minutes {args.minutes:g} --every {args.every:g} --config {args.config}" + "".join(
        f" --set {s}" for s in args.set) + (f" --kinds {','.join(args.kinds)}" if args.kinds != KINDS else "") + (" --baseline" if args.baseline else "") + (" --local-cluster" if args.local_cluster else "")
    return f"\n## Chaos benchmark\n\n`{cmd}`\n\n{head}{body}{notes}\n\n{'PASS' if ok else 'FAIL'}: games lost 0, versions monotonic, every second driver refused{promise}\n", ok


def _poison(r: dict, what: str) -> str:
    p = r["monkey"].poison if r["monkey"].enabled else None
    if p is None or p.first_version is None:
        return "-"
    if what == "games":
        return f"{p.games_injected} / {r['result'].summary['bad_games']}"
    if what == "segments":
        return f"{p.segments_injected} / {p.corrupt_payloads}"
    return f"{r['result'].learner_version - p.first_version} (v{p.first_version} to v{r['result'].learner_version})"


def _kills(r: dict, kind: str) -> str:
    m = r["monkey"]
    if not m.enabled:
        return "-"
    if kind == "evaluator":
        seen = sum(1 for line in r["lines"] if line.startswith("evaluator ") and "starting a replacement" in line)
    else:
        seen = m.recovered[kind]  # actors and the learner also restart after a node of theirs is lost
    if kind not in r["kinds"] or (kind in m.skipped and m.kills[kind] == 0):
        return f"not killed / {seen}" if seen else "skipped"
    return f"{m.kills[kind]} / {seen}"
