"""Config loading (cluster/config.py): strict keys and types, overrides, cross-field checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cluster.config import Config, ConfigError, config_from_dict, load_config, parse_override
from learner.config import PPOConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_load_and_equal_the_dataclass_defaults():
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.ppo.lr == PPOConfig().lr and cfg.game.name == "tictactoe_v3"


def test_yaml_file_values_are_applied_and_typed(tmp_path):
    cfg = load_config(_write(tmp_path, """
game: {name: connect_four_v3, kwargs: {render_mode: null}}
model: {hidden_sizes: [64, 32]}
ppo: {lr: 0.001, epochs: 2, gamma: 1}
rollout: {envs_per_actor: 3}
"""))
    assert cfg.game.name == "connect_four_v3" and cfg.game.kwargs == {"render_mode": None}
    assert cfg.model.hidden_sizes == (64, 32)
    assert cfg.ppo.lr == 0.001 and cfg.ppo.epochs == 2
    assert cfg.ppo.gamma == 1.0 and isinstance(cfg.ppo.gamma, float)  # int -> float is lossless
    assert cfg.rollout.envs_per_actor == 3
    assert cfg.ppo.clip == PPOConfig().clip  # untouched keys keep their defaults


def test_empty_yaml_file_gives_defaults(tmp_path):
    assert load_config(_write(tmp_path, "")) == Config()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)


def test_shipped_configs_exist():
    assert CONFIGS, "configs/*.yaml should hold at least one example config"


def test_missing_file_and_invalid_yaml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "ppo: {lr: [1, 2\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- just\n- a list\n"))


def test_unknown_top_level_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key pppo\b") as e:
        load_config(_write(tmp_path, "pppo: {lr: 0.1}\n"))
    assert "ppo" in str(e.value)  # lists the valid keys


def test_unknown_key_inside_a_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"ppo\.learning_rate") as e:
        load_config(_write(tmp_path, "ppo: {learning_rate: 0.1}\n"))
    assert "lr" in str(e.value)


@pytest.mark.parametrize(
    "yaml_text,key",
    [
        ("ppo: {epochs: 'four'}", "ppo.epochs"),
        ("ppo: {epochs: true}", "ppo.epochs"),
        ("ppo: {epochs: 2.5}", "ppo.epochs"),
        ("ppo: {epochs: 2.0}", "ppo.epochs"),
        ("ppo: {lr: fast}", "ppo.lr"),
        ("ppo: {lr: true}", "ppo.lr"),
        ("ppo: {normalize_advantages: 1}", "ppo.normalize_advantages"),
        ("game: {name: 3}", "game.name"),
        ("game: {kwargs: [1]}", "game.kwargs"),
        ("model: {hidden_sizes: [64, 'x']}", "model.hidden_sizes"),
        ("model: {hidden_sizes: [true]}", "model.hidden_sizes"),
        ("ppo: 3", "ppo"),
    ],
)
def test_wrong_type_is_named(tmp_path, yaml_text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(_write(tmp_path, yaml_text + "\n"))


def test_overrides_apply_on_top_of_the_file(tmp_path):
    path = _write(tmp_path, "ppo: {lr: 0.1, epochs: 2}\n")
    cfg = load_config(path, ["ppo.lr=0.001", "model.hidden_sizes=[8, 4]", "game.name=connect_four_v3"])
    assert cfg.ppo.lr == 0.001 and cfg.ppo.epochs == 2
    assert cfg.model.hidden_sizes == (8, 4)
    assert cfg.game.name == "connect_four_v3"


def test_override_of_a_dict_field_entry():
    cfg = load_config(None, ["game.kwargs.max_cycles=7"])
    assert cfg.game.kwargs == {"max_cycles": 7}


def test_overrides_are_type_checked():
    with pytest.raises(ConfigError, match=r"ppo\.epochs"):
        load_config(None, ["ppo.epochs=many"])
    with pytest.raises(ConfigError, match=r"ppo\.lrr"):
        load_config(None, ["ppo.lrr=0.1"])


def test_override_with_exponent_notation_is_a_number():
    # parse_override's own docstring promises 'ppo.lr=1e-3' -> 0.001; YAML 1.1 reads "1e-3" as a string.
    assert parse_override("ppo.lr=1e-3") == (["ppo", "lr"], 0.001)
    assert load_config(None, ["ppo.lr=1e-3"]).ppo.lr == pytest.approx(1e-3)


@pytest.mark.parametrize("text", ["ppo.lr", "lr=0.1", "=0.1", ".lr=0.1", "ppo.lr=[1, 2"])
def test_bad_override_syntax(text):
    with pytest.raises(ConfigError, match="override"):
        load_config(None, [text])


def test_override_into_a_non_section_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a section"):
        load_config(_write(tmp_path, "game: {name: tictactoe_v3}\n"), ["game.name.x=1"])


def test_minibatch_larger_than_batch_is_refused():
    with pytest.raises(ConfigError, match="minibatch_size"):
        load_config(None, ["ppo.batch_size=64", "ppo.minibatch_size=128"])
    assert load_config(None, ["ppo.batch_size=64", "ppo.minibatch_size=64"]).ppo.minibatch_size == 64


@pytest.mark.parametrize(
    "override,match",
    [
        ("ppo.gamma=1.5", "gamma"),
        ("ppo.epochs=0", "epochs"),
        ("rollout.segment_length=0", "segment_length"),
        ("learner.device=tpu", "device"),
        ("redis.keep_versions=1", "keep_versions"),
        ("league.latest_prob=-0.1", "latest_prob"),
    ],
)
def test_cross_field_and_range_checks(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_unknown_sampler_lists_the_choices():
    with pytest.raises(ConfigError, match="league.sampler 'best_ever' is unknown") as e:
        config_from_dict({"league": {"sampler": "best_ever"}})
    assert "pfsp_hard" in str(e.value) and "openai_five" in str(e.value)
    assert config_from_dict({"league": {"sampler": "pfsp_var"}}).league.sampler == "pfsp_var"


def test_to_dict_round_trips_through_config_from_dict():
    cfg = load_config(None, ["ppo.lr=0.002", "model.hidden_sizes=[16]", "game.kwargs.x=1"])
    assert config_from_dict(cfg.to_dict()) == cfg


def test_replace_changes_one_section_and_configs_are_frozen():
    cfg = Config()
    new = cfg.replace("ppo", lr=0.5)
    assert new.ppo.lr == 0.5 and cfg.ppo.lr == PPOConfig().lr and new.rollout == cfg.rollout
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.ppo.lr = 1.0  # type: ignore[misc]
