"""A trained policy as an ONNX model, checked against the torch policy with onnxruntime.

The model's inputs are what the policy sees, batched: `obs` float32 [batch, obs_dim] (the game's
observation flattened) and `mask` bool [batch, num_actions] (True = legal). Its outputs are `probs`
float32 [batch, num_actions] (the policy's action probabilities, 0 on illegal actions) and `value`
float32 [batch]. The game, observation shape and learner version (and, for one role's policy of a
game with roles, the role) are stored in the model's metadata_props, so a reader without this
project knows how to feed it.

onnx and onnxruntime are an optional extra: pip install 'selfplay[export]'.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported when an export runs, so the CLI starts without it
    from learner.model import InferencePolicy, PolicyNet

OPSET = 17
DEFAULT_TOLERANCE = 1e-5
"""Largest allowed |p_onnx - p_torch| over a batch's action probabilities (and values). Both run the
same float32 graph on the CPU; they differ by rounding only, about 1e-7."""


class ExportError(RuntimeError):
    """The export cannot be made or does not match the torch policy; the message says what to do."""


def require_onnx():
    """(onnx, onnxruntime), or ExportError naming the extra to install."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ExportError(
            f"ONNX export needs the packages onnx and onnxruntime ({exc.name} is missing): "
            "pip install 'selfplay[export]' (or: pip install onnx onnxruntime)"
        ) from exc
    return onnx, onnxruntime


def check_exportable(policy: "InferencePolicy") -> None:
    """ExportError for a policy this format does not describe: the model outputs action
    probabilities, which a Box game's Gaussian policy does not have."""
    if policy.net.log_std is not None:
        raise ExportError(
            "ONNX export covers Discrete-action (categorical) policies only; this one is a diagonal Gaussian over a "
            "Box action space. Use its policy file instead (learner/export.py: load_policy, act(greedy=True) gives the mean)."
        )


def _probs_and_value(net: "PolicyNet"):
    """The exported graph: the network's masked logits turned into probabilities."""
    import torch

    class ProbsAndValue(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits, value = self.net(obs, mask)
            return torch.softmax(logits, dim=-1), value

    return ProbsAndValue().eval()


@dataclass(frozen=True)
class Parity:
    """How far onnxruntime's outputs are from torch's on one batch."""

    positions: int
    max_abs_diff_probs: float
    max_abs_diff_value: float


def export_onnx(policy: "InferencePolicy", path: str | Path, obs: np.ndarray, mask: np.ndarray) -> None:
    """Write `policy` to `path` as ONNX, traced on the example batch (obs, mask); the batch size stays free."""
    import torch

    if policy.net.recurrent:
        raise ExportError(
            "model.kind lstm policies are not exported to ONNX: their graph would need the recurrent state "
            "(h, c) as inputs and outputs, which this exporter does not write. Export an mlp or conv policy."
        )
    onnx, _ = require_onnx()
    check_exportable(policy)
    path = Path(path)
    graph = _probs_and_value(policy.net)
    example = (torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.bool))
    batch = {0: "batch"}
    with warnings.catch_warnings():
        # torch.export's exporter needs onnxscript; the TorchScript one needs nothing more and
        # traces this network exactly (no data-dependent control flow: the only Python branch is
        # on the symmetry group's size, a constant of the model).
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*Converting a tensor to a Python boolean.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        torch.onnx.export(
            graph, example, str(path), dynamo=False, opset_version=OPSET,
            input_names=["obs", "mask"], output_names=["probs", "value"],
            dynamic_axes={"obs": batch, "mask": batch, "probs": batch, "value": batch},
        )
    model = onnx.load(str(path))
    meta = getattr(policy, "meta", {}) or {}
    props = {
        "game": str(meta.get("game", "")),
        "obs_shape": ",".join(str(d) for d in policy.net.obs_shape),
        "num_actions": str(policy.net.num_actions),
        "learner_version": str(policy.version),
        "model_kind": policy.net.model_cfg.kind,
        **({"role": str(meta["role"])} if meta.get("role") else {}),  # the role it plays, in a game with roles
    }
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def check_parity(policy: "InferencePolicy", path: str | Path, obs: np.ndarray, mask: np.ndarray) -> Parity:
    """Run the ONNX model at `path` with onnxruntime and the torch policy on the same batch."""
    import torch

    _, ort = require_onnx()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    obs = np.asarray(obs, np.float32)
    mask = np.asarray(mask, bool)
    probs, value = session.run(["probs", "value"], {"obs": obs, "mask": mask})
    with torch.no_grad():
        t_probs, t_value = _probs_and_value(policy.net)(torch.from_numpy(obs), torch.from_numpy(mask))
    return Parity(
        positions=len(obs),
        max_abs_diff_probs=float(np.abs(probs - t_probs.numpy()).max()),
        max_abs_diff_value=float(np.abs(value - t_value.numpy()).max()),
    )


def export_checked(
    policy: "InferencePolicy", path: str | Path, obs: np.ndarray, mask: np.ndarray, tolerance: float = DEFAULT_TOLERANCE
) -> Parity:
    """Export, then check on (obs, mask); ExportError (and no file left behind) when onnxruntime's
    probabilities or values differ from torch's by more than `tolerance`."""
    path = Path(path)
    export_onnx(policy, path, obs[:2], mask[:2])  # traced on two, checked on all: the batch size is free
    parity = check_parity(policy, path, obs, mask)
    worst = max(parity.max_abs_diff_probs, parity.max_abs_diff_value)
    if not worst <= tolerance:  # NaN fails too
        path.unlink(missing_ok=True)
        raise ExportError(
            f"the ONNX model differs from the torch policy by {worst:.3g} (> tolerance {tolerance:g}) on "
            f"{parity.positions} positions; nothing was written. Report it with the policy's model section."
        )
    return parity
