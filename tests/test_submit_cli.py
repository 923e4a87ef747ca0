"""`selfplay submit` and its helpers: what it assembles, what it checks before connecting, how it
fails. The end-to-end ones submit to tests/jobs_api_fake.py's in-process fake of the Ray Jobs API
with the real JobSubmissionClient; nothing here starts Ray."""

from __future__ import annotations

import io
import sys
import zipfile

import pytest

from cluster.remote.submit import config_in_working_dir, follow_up_lines, game_py_modules, train_args
from cluster.run.cli import main
from tests.jobs_api_fake import FakeJobsApi, _closed_port, fake_api, no_ray_address_override  # noqa: F401 - fixtures


def test_train_args_carry_sets_run_dir_and_resume():
    assert train_args("c.yaml") == ["--config", "c.yaml"]
    assert train_args("c.yaml", ["a.b=1", "c.d=x y"], "/data/runs/r", "auto") == [
        "--config", "c.yaml", "--set", "a.b=1", "--set", "c.d=x y", "--run-dir", "/data/runs/r", "--resume", "auto",
    ]
    assert train_args("c.yaml", run_dir="/r", resume=True)[-1] == "--resume"


def test_the_config_path_is_taken_relative_to_the_shipped_directory(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "c.yaml").write_text("{}\n")
    assert config_in_working_dir(str(tmp_path / "configs" / "c.yaml"), str(tmp_path)) == "configs/c.yaml"
    with pytest.raises(ValueError, match="outside the working directory"):
        config_in_working_dir(str(tmp_path / "configs" / "c.yaml"), str(tmp_path / "configs" / "sub"))


def test_only_a_users_own_game_module_outside_the_working_dir_is_shipped(tmp_path, monkeypatch):
    wd, elsewhere = tmp_path / "wd", tmp_path / "elsewhere"
    (wd / "games_pkg_xyz").mkdir(parents=True)
    (wd / "games_pkg_xyz" / "__init__.py").write_text("")
    (wd / "top_game_xyz.py").write_text("def env(): pass\n")
    (elsewhere / "pkg_far_xyz").mkdir(parents=True)
    (elsewhere / "pkg_far_xyz" / "__init__.py").write_text("")
    (elsewhere / "far_game_xyz.py").write_text("def env(): pass\n")
    for folder in (wd, elsewhere):
        monkeypatch.syspath_prepend(str(folder))
    assert game_py_modules("far_game_xyz:env", str(wd)) == [str((elsewhere / "far_game_xyz.py").resolve())]
    assert game_py_modules("pkg_far_xyz.sub:make", str(wd)) == [str((elsewhere / "pkg_far_xyz").resolve())]
    assert game_py_modules("top_game_xyz:env", str(wd)) == []  # travels with the working directory
    assert game_py_modules("games_pkg_xyz.x:env", str(wd)) == []
    assert game_py_modules("connect_four_v3", str(wd)) == []  # built-in
    assert game_py_modules("pettingzoo.classic.rps_v2:env", str(wd)) == []  # installed: the image's business
    assert game_py_modules("actors.games:x", str(wd)) == []  # this project


def test_follow_up_lines_name_the_job_and_the_run():
    lines = "\n".join(follow_up_lines("http://h:8265", "raysubmit_1", "c4"))
    assert "ray job logs --follow raysubmit_1 --address http://h:8265" in lines
    assert "ray job stop raysubmit_1 --address http://h:8265" in lines
    assert 'selfplay league --redis-url "$REDIS_URL" --run c4' in lines


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("selfplay: error: ")
    return err


def test_cli_submit_to_an_unreachable_address_is_one_line(capsys):
    address = f"http://127.0.0.1:{_closed_port()}"
    assert main(["submit", "--address", address, "--config", "configs/tictactoe_smoke.yaml"]) == 2
    assert f"Cannot reach the Ray Jobs API at {address}" in _one_error_line(capsys)


def test_cli_submit_to_a_non_dashboard_address_is_one_line(capsys):
    assert main(["submit", "--address", "ray://head:10001", "--config", "configs/tictactoe_smoke.yaml"]) == 2
    assert "not a dashboard URL" in _one_error_line(capsys)


@pytest.mark.parametrize("argv, message", [
    (["--set", "ppo.lrr=1"], "unknown config key ppo.lrr"),
    (["--set", "game.name=no_such_game_v9"], "unknown game 'no_such_game_v9'"),
    (["--set", "game.native=yes"], "game.native: expected true or false"),
    (["--resume", "auto"], "--resume auto needs a run directory"),
    (["--run-dir", "runs/x"], "--run-dir runs/x is relative"),
])
def test_cli_submit_checks_the_config_before_connecting(fake_api, capsys, argv, message):
    assert main(["submit", "--address", fake_api.url, "--config", "configs/tictactoe_smoke.yaml", *argv]) == 2
    assert message in _one_error_line(capsys)
    assert fake_api.auth_headers == []  # not one request reached the cluster


def test_cli_submit_ships_the_game_module_and_prints_what_to_do_next(fake_api, tmp_path, monkeypatch, capsys):
    project, elsewhere = tmp_path / "proj", tmp_path / "games"
    (project / "configs").mkdir(parents=True)
    (project / "configs" / "c.yaml").write_text("game: {name: 'outside_game_xyz:env'}\n")
    elsewhere.mkdir()
    (elsewhere / "outside_game_xyz.py").write_text(
        "from pettingzoo.classic import tictactoe_v3\n\ndef env(**kwargs):\n    return tictactoe_v3.env(**kwargs)\n"
    )
    monkeypatch.syspath_prepend(str(elsewhere))
    fake_api.final_status = "PENDING"
    rc = main([
        "submit", "--address", fake_api.url, "--config", str(project / "configs" / "c.yaml"), "--working-dir", str(project),
        "--set", "run.seed=3", "--run-dir", "/data/runs/ttt", "--resume", "auto", "--no-follow",
    ])
    sys.modules.pop("outside_game_xyz", None)
    assert rc == 0
    (request,) = fake_api.submissions
    assert request["entrypoint"] == "selfplay train --config configs/c.yaml --set run.seed=3 --run-dir /data/runs/ttt --resume auto"
    (module_uri,) = request["runtime_env"]["py_modules"]
    assert module_uri.startswith("gcs://") and request["runtime_env"]["working_dir"].startswith("gcs://")
    shipped = [set(zipfile.ZipFile(io.BytesIO(blob)).namelist()) for blob in fake_api.packages.values()]
    # Ray's job client uploads folders only: the single-file module goes as a package of its name.
    assert {"outside_game_xyz/__init__.py"} in shipped, shipped
    assert any("configs/c.yaml" in names for names in shipped)
    out = capsys.readouterr().out
    assert f"Submitted job {FakeJobsApi.JOB_ID}" in out
    assert f"ray job logs --follow {FakeJobsApi.JOB_ID}" in out and f"ray job stop {FakeJobsApi.JOB_ID}" in out
    assert "selfplay league --redis-url \"$REDIS_URL\" --run ttt" in out


def test_help_shows_every_option_with_its_default(capsys):
    for argv, expected in [
        (["dashboard", "--help"], "port to serve on (default: 8765)"),
        (["evaluate", "--help"], "(default: 200)"),
        (["play", "--help"], "address to serve on (default: 127.0.0.1)"),
        (["submit", "--help"], "override a config value"),
    ]:
        with pytest.raises(SystemExit):
            main(argv)
        assert expected in " ".join(capsys.readouterr().out.split()), argv


def test_a_junk_policy_file_is_named(tmp_path, capsys):
    junk = tmp_path / "policy.msgpack"
    junk.write_bytes(b"\x93not a policy at all")
    assert main(["evaluate", str(junk), "--game", "tictactoe_v3"]) == 2
    assert f"{junk} is not a policy file saved by selfplay" in _one_error_line(capsys)
