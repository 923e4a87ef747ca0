"""The config reference and `selfplay config`: docs/config.md is what the dataclasses say (this test
fails when a field is added, renamed or re-documented without regenerating it), `config show` prints
a config that loads back to the same one, and --set reads only true/false as booleans (YAML 1.2)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from cluster.config import Config, ConfigError, load_config
from cluster.run.cli import main
from cluster.run.config_doc import field_docs, render

REPO = Path(__file__).resolve().parent.parent


def test_docs_config_md_is_up_to_date():
    assert (REPO / "docs" / "config.md").read_text() == render(), (
        "docs/config.md is out of date: run `python -m cluster.run.config_doc > docs/config.md`"
    )


def test_the_reference_has_every_key_with_its_default_and_documentation():
    text = render()
    hints = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        cls = hints[section.name]
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            assert f"| `{section.name}.{f.name}` |" in text
            assert docs[f.name].split()[0] in text  # its documentation, from the source
    assert "| `ppo.lr` | float | `0.0003` |" in text
    assert "| `model.hidden_sizes` | list of integers | `[128, 128]` |" in text
    assert "| `eval.references` | list of strings | `[]` |" in text


def test_an_undocumented_field_is_refused():
    @dataclasses.dataclass
    class Bare:
        x: int = 1
        """documented"""
        y: int = 2

    assert field_docs(Bare) == {"x": "documented"}


def test_config_show_prints_every_default_and_loads_back(tmp_path, capsys):
    assert main(["config", "show", "configs/tictactoe_smoke.yaml", "--set", "run.seed=7"]) == 0
    shown = capsys.readouterr().out
    assert "eval:\n  num_evaluators:" in shown and "hidden_sizes: [64]" in shown
    (tmp_path / "full.yaml").write_text(shown)
    assert load_config(tmp_path / "full.yaml") == load_config("configs/tictactoe_smoke.yaml", ["run.seed=7"])


def test_config_show_checks_as_train_does(capsys):
    assert main(["config", "show", "--set", "game.name=no_such_game_v9"]) == 2
    assert "unknown game 'no_such_game_v9'" in capsys.readouterr().err
    assert main(["config", "show", "--set", "model.kind=conv"]) == 0  # tic-tac-toe's 3x3 board: conv fits
    capsys.readouterr()
    # ...but not a flat game: the model is checked against the game, as train does before it starts.
    assert main(["config", "show", "--set", "game.name=rps_v2", "--set", "model.kind=conv"]) == 2
    assert "conv" in capsys.readouterr().err


def test_config_doc_command_prints_the_reference(capsys):
    assert main(["config", "doc"]) == 0
    assert capsys.readouterr().out == render()


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "Yes"])
def test_yaml_11_booleans_are_strings_and_refused_for_a_bool_key(word):
    with pytest.raises(ConfigError, match=rf"game.native: expected true or false, got '{word}'.*YAML 1.2"):
        load_config(None, [f"game.native={word}"])


def test_true_and_false_are_booleans_on_the_command_line_and_in_files(tmp_path):
    assert load_config(None, ["game.native=false"]).game.native is False
    assert load_config(None, ["game.zero_sum=True"]).game.zero_sum is True
    (tmp_path / "c.yaml").write_text("game: {native: no}\n")
    with pytest.raises(ConfigError, match="got 'no'"):
        load_config(tmp_path / "c.yaml")
    # A string key may now hold such a word as itself.
    assert load_config(None, ["run.run_id=on"]).run.run_id == "on"
