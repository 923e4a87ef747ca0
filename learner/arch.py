"""The network's architecture as plain data (no torch here): the `model:` config section.

It travels with every set of weights (policy files, checkpoints, the run's metadata in Redis) so
whoever loads them builds the same network; learner/model.py turns it into torch modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MODEL_KINDS = ("mlp", "conv")


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "mlp"
    """mlp: separate policy and value MLPs over the flattened observation. conv: a residual
    convolutional trunk over board planes (observations shaped height x width x channels, as
    PettingZoo's classic board games), shared by a policy head and a value head."""
    hidden_sizes: tuple = (128, 128)
    """mlp: widths of the hidden layers of each of the two MLPs. conv: widths of the hidden layers
    of the value head (the policy head is a 1x1 convolution plus one linear layer)."""
    channels: int = 64
    """conv: channels of every trunk convolution."""
    blocks: int = 2
    """conv: residual blocks (two 3x3 convolutions each) after the first convolution."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden_sizes"] = [int(h) for h in self.hidden_sizes]
        return d

    def check(self, obs_shape: tuple[int, ...]) -> None:
        """Raise ValueError naming what to change when this architecture cannot take `obs_shape`."""
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model.kind {self.kind!r} is unknown; choose one of {', '.join(MODEL_KINDS)}")
        if any(int(h) < 1 for h in self.hidden_sizes):
            raise ValueError("model.hidden_sizes must be positive integers")
        if self.kind == "conv":
            if len(obs_shape) != 3:
                raise ValueError(
                    f"model.kind conv needs observations shaped height x width x channels; this game's are {tuple(obs_shape)}: use model.kind mlp"
                )
            if self.channels < 1 or self.blocks < 0:
                raise ValueError("model.channels must be >= 1 and model.blocks >= 0")


def model_from_meta(meta: dict[str, Any]) -> ModelConfig:
    """The architecture recorded with a set of weights. Files written before model kinds existed
    carry only hidden_sizes, which meant the MLP."""
    m = meta.get("model")
    if isinstance(m, dict):
        return ModelConfig(
            kind=str(m.get("kind", "mlp")),
            hidden_sizes=tuple(int(h) for h in m.get("hidden_sizes", (128, 128))),
            channels=int(m.get("channels", 64)),
            blocks=int(m.get("blocks", 2)),
        )
    return ModelConfig(hidden_sizes=tuple(int(h) for h in meta["hidden_sizes"]))


def as_model_config(model: "ModelConfig | tuple | list") -> ModelConfig:
    """Accept a bare tuple of widths as the MLP of those widths (what earlier callers passed)."""
    if isinstance(model, ModelConfig):
        return model
    return ModelConfig(hidden_sizes=tuple(int(h) for h in model))
