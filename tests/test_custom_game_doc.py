"""docs/custom_game.md works as written: its example game, taken from the page's code blocks into a
folder outside the package, loads by import path (`sticks:env`, a top-level module) and trains in
one process from the page's own config; and a game name with ':' is always an import path.

The run is bounded in env steps with a fixed seed (the outcome depends on the seed, not on machine
load); the policy is judged exactly, over the whole game tree against the random player.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from actors.evaluate import exact_outcomes, uniform_moves
from actors.games import GameError, load_game, resolve_game
from cluster.config import load_config
from cluster.run.inline import run_inline
from learner.model import InferencePolicy

DOC = Path(__file__).resolve().parent.parent / "docs" / "custom_game.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def doc_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of the guide."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(DOC.read_text())]


def doc_file(name: str) -> str:
    """The block that starts with the comment `# NAME`: a file the guide tells the reader to save."""
    found = [text for _, text in doc_blocks() if text.startswith(f"# {name}\n")]
    assert len(found) == 1, f"docs/custom_game.md should hold one block starting '# {name}', found {len(found)}"
    return found[0]


@pytest.fixture
def game_dir(tmp_path, monkeypatch):
    """The guide's modules saved in a folder of their own, on the import path as the user's are."""
    for name in ("sticks.py", "odd_even.py", "sticks.yaml"):
        (tmp_path / name).write_text(doc_file(name))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in ("sticks", "odd_even"):
        sys.modules.pop(mod, None)


@pytest.mark.slow
def test_the_guides_game_trains_from_its_own_config(game_dir, redis_server):
    overrides = ["run.total_env_steps=4000", "run.seed=0", "run.log_every_s=1e9", "eval.num_evaluators=0", "run.eval_games=0"]
    cfg = load_config(game_dir / "sticks.yaml", overrides)
    assert cfg.game.name == "sticks:env"
    learner, manager, steps = run_inline(cfg, redis_server.url, "doc-sticks", log=lambda s: None)
    assert steps >= 4000 and learner.version > 0 and manager.state.games_total > 0
    make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs)
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, learner.version)
    policy.load(learner.weights(), learner.version)
    first = exact_outcomes(make_slot, policy, uniform_moves, 0)
    second = exact_outcomes(make_slot, policy, uniform_moves, 1)
    # What the guide claims: it wins every game moving first, and nearly all moving second (26/27 at best).
    assert first[0] == pytest.approx(1.0), first
    assert second[0] > 0.9, second


def test_the_guides_parallel_game_trains(game_dir, redis_server):
    cfg = load_config(None, [
        "game.name=odd_even:parallel_env", "model.hidden_sizes=[16]", "ppo.batch_size=128", "ppo.minibatch_size=64",
        "rollout.num_actors=1", "rollout.envs_per_actor=4", "rollout.segment_length=8",
        "eval.num_evaluators=0", "run.total_env_steps=300", "run.log_every_s=1e9", "run.eval_games=0",
    ])
    learner, manager, steps = run_inline(cfg, redis_server.url, "doc-odd-even", log=lambda s: None)
    assert steps >= 300 and learner.version > 0
    assert load_game(cfg.game.name)[1].sides == ((0,), (1,))  # odd and even: two name prefixes, two sides


def test_the_guides_team_config_makes_two_teams(game_dir):
    (teams,) = [yaml.safe_load(text) for lang, text in doc_blocks() if lang == "yaml" and "north_south" in text]
    game = teams["game"]
    _, spec = load_game(game["name"], game["kwargs"], sides=game["sides"])
    assert spec.agents == ("player_0", "player_1", "player_2", "player_3")
    assert spec.sides == ((0, 2), (1, 3))


def test_a_top_level_module_is_an_import_path_not_a_builtin_name(game_dir):
    """Before the fix 'sticks:env' was looked up as pettingzoo.classic.sticks ... and refused."""
    factory = resolve_game("sticks:env")
    assert factory.__module__ == "sticks"
    assert type(factory()).__name__ == "Sticks"


def test_import_path_errors_name_the_module():
    with pytest.raises(GameError, match=r"module 'no_such_module_xyz' cannot be imported.*PYTHONPATH"):
        resolve_game("no_such_module_xyz:env")
    with pytest.raises(GameError, match="needs a module and a factory"):
        resolve_game("sticks:")


def test_a_missing_dependency_of_a_users_module_is_named(tmp_path, monkeypatch):
    (tmp_path / "needs_dep.py").write_text("import some_missing_dependency_xyz\n\ndef env():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(GameError, match="'some_missing_dependency_xyz', which is not installed"):
        resolve_game("needs_dep:env")
    sys.modules.pop("needs_dep", None)


def test_builtin_names_still_resolve_and_the_unknown_name_lists_every_family():
    assert resolve_game("tictactoe_v3").__module__.startswith("pettingzoo.classic")
    with pytest.raises(GameError) as e:
        resolve_game("no_such_game_v9")
    for family in ("classic", "butterfly", "sisl", "atari", "mpe2"):
        assert family in str(e.value)
    assert "mygame:env" in str(e.value)


@pytest.mark.slow
def test_the_command_line_finds_a_game_module_in_the_current_directory(tmp_path):
    """As the `selfplay` console script runs: from a folder holding sticks.py, which is on no import
    path but the current directory's (`python -m` and `python -c` would add it themselves)."""
    import os
    import subprocess

    game, bin_dir = tmp_path / "game", tmp_path / "bin"
    game.mkdir()
    bin_dir.mkdir()
    for name in ("sticks.py", "sticks.yaml"):
        (game / name).write_text(doc_file(name))
    (bin_dir / "selfplay_script.py").write_text("import sys\nfrom cluster.run.cli import main\nsys.exit(main())\n")
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(bin_dir / "selfplay_script.py"), "config", "show", "sticks.yaml"],
        cwd=game, env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "name: sticks:env" in done.stdout
