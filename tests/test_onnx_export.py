"""`selfplay export --format onnx`: parity with the torch policy under onnxruntime for every model
kind (and symmetry), a wrong model caught by the command's own check, the message when the extra
is missing, and the example of docs/play_and_export.md run without this project."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort  # in the test extra: a missing one fails the tests instead of skipping them
import pytest
import torch

from actors.evaluate import sample_positions
from actors.games import load_game
from cluster.run.cli import main
from learner.arch import MODEL_KINDS, ModelConfig
from learner.export import load_policy, policy_meta, save_policy
from learner.model import InferencePolicy, state_dict_numpy


REPO = Path(__file__).resolve().parents[1]
SMALL = dict(hidden_sizes=(32,), channels=8, blocks=1, policy_planes=4, value_planes=2)
CASES = [
    ("tictactoe_v3", ModelConfig(kind="mlp", **SMALL)),
    ("tictactoe_v3", ModelConfig(kind="mlp", symmetry="dihedral", **SMALL)),
    ("connect_four_v3", ModelConfig(kind="mlp", symmetry="mirror", **SMALL)),
    ("connect_four_v3", ModelConfig(kind="conv", **SMALL)),
    ("connect_four_v3", ModelConfig(kind="conv", symmetry="mirror", **SMALL)),
    ("connect_four_v3", ModelConfig(kind="conv", stem_kernel=7, **SMALL)),
    ("tictactoe_v3", ModelConfig(kind="conv", symmetry="dihedral", **SMALL)),
]


REFUSED_KINDS = {"lstm"}  # recurrent: refused with a message (test_a_recurrent_policy_is_refused_by_name)


def test_every_model_kind_is_covered():
    assert {m.kind for _, m in CASES} | REFUSED_KINDS == set(MODEL_KINDS), "add the new model.kind to CASES"


def write_policy(path: Path, game: str, model: ModelConfig, seed: int = 0) -> Path:
    """A policy with weights shaken far from their near-uniform start, so parity means something."""
    torch.manual_seed(seed)
    _, spec = load_game(game)
    net = InferencePolicy(spec.obs_shape, spec.num_actions, model).net
    rng = np.random.default_rng(seed)
    tensors = {k: (v + rng.normal(0, 0.3, v.shape)).astype(np.float32) for k, v in state_dict_numpy(net).items()}
    save_policy(path, tensors, 12, policy_meta(game, model, spec.obs_shape, spec.num_actions))
    return path


def torch_probs(policy, obs, mask) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        logits, value = policy.net(torch.from_numpy(obs), torch.from_numpy(mask))
    return torch.softmax(logits, -1).numpy(), value.numpy()


@pytest.mark.parametrize("game,model", CASES, ids=[f"{g}-{m.kind}-{m.symmetry}" for g, m in CASES])
def test_export_matches_torch_under_onnxruntime(game, model, tmp_path, capsys):
    policy_file = write_policy(tmp_path / "p.msgpack", game, model)
    out = tmp_path / "p.onnx"
    assert main(["export", str(policy_file), "--format", "onnx", "--out", str(out), "--positions", "64"]) == 0
    printed = capsys.readouterr().out
    m = re.search(r"on 64 positions of (\S+): max abs difference probs (\S+), value (\S+)", printed)
    assert m and m.group(1) == game and float(m.group(2)) <= 1e-5 and float(m.group(3)) <= 1e-5, printed

    # Checked again here, independently, on positions of other games and a batch size never traced.
    policy = load_policy(policy_file)
    make_slot, spec = load_game(game)
    obs, mask = sample_positions(make_slot, 37, seed=9)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    probs, value = session.run(["probs", "value"], {"obs": obs, "mask": mask})
    t_probs, t_value = torch_probs(policy, obs, mask)
    np.testing.assert_allclose(probs, t_probs, atol=1e-5)
    np.testing.assert_allclose(value, t_value, atol=1e-5)
    assert (probs[~mask] == 0).all() and np.allclose(probs.sum(-1), 1, atol=1e-5)
    assert probs.max(-1).mean() > 1.5 / spec.num_actions, "weights too close to uniform for parity to mean much"
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["game"] == game and meta["num_actions"] == str(spec.num_actions)
    assert meta["obs_shape"] == ",".join(map(str, spec.obs_shape)) and meta["model_kind"] == model.kind
    assert meta["learner_version"] == "12"


def test_a_model_that_differs_from_torch_is_refused_and_not_written(tmp_path, monkeypatch, capsys):
    import learner.onnx_export as onnx_export

    game, model = CASES[0]
    policy_file = write_policy(tmp_path / "p.msgpack", game, model)
    other = load_policy(write_policy(tmp_path / "other.msgpack", game, model, seed=1))
    real_export = onnx_export.export_onnx
    # An exporter that writes the wrong network: the command's own check must catch it.
    monkeypatch.setattr(onnx_export, "export_onnx", lambda policy, path, obs, mask: real_export(other, path, obs, mask))
    out = tmp_path / "p.onnx"
    assert main(["export", str(policy_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the ONNX model differs from the torch policy by" in err and "nothing was written" in err
    assert not out.exists()


def test_a_recurrent_policy_is_refused_by_name(tmp_path, capsys):
    policy_file = write_policy(tmp_path / "lstm.msgpack", "tictactoe_v3", ModelConfig(kind="lstm", hidden_sizes=(16,), lstm_size=8))
    out = tmp_path / "lstm.onnx"
    assert main(["export", str(policy_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model.kind lstm policies are not exported to ONNX" in err and not out.exists()


def test_without_the_extra_the_command_names_it(tmp_path, monkeypatch, capsys):
    policy_file = write_policy(tmp_path / "p.msgpack", *CASES[0])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    assert main(["export", str(policy_file), "--out", str(tmp_path / "p.onnx")]) == 2
    err = capsys.readouterr().err
    assert "onnxruntime is missing" in err and "pip install 'selfplay[export]'" in err


def guide_onnx_example() -> str:
    text = (REPO / "docs" / "play_and_export.md").read_text()
    start = text.index("    import numpy as np\n    import onnxruntime as ort")
    lines = []
    for line in text[start:].splitlines():
        if line and not line.startswith("    "):
            break  # the indented block ends at the next paragraph
        lines.append(line[4:])
    return "\n".join(lines)


def test_the_guides_example_runs_without_this_project(tmp_path, capsys):
    policy_file = write_policy(tmp_path / "p.msgpack", "connect_four_v3", ModelConfig(kind="conv", **SMALL))
    assert main(["export", str(policy_file), "--out", str(tmp_path / "policy.onnx")]) == 0
    (tmp_path / "example.py").write_text(guide_onnx_example())
    # -I: no PYTHONPATH, no current directory on sys.path; the repo is not importable from tmp_path.
    proc = subprocess.run([sys.executable, "-I", "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    policy = load_policy(policy_file)
    mask = np.ones((1, 7), bool)
    expected = int(torch_probs(policy, np.zeros((1, 84), np.float32), mask)[0].argmax())
    assert f"connect_four_v3: best action {expected}" in proc.stdout, proc.stdout
