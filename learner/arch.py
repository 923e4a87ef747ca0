"""The network's architecture as plain data (no torch here): the `model:` config section.

It travels with every set of weights (policy files, checkpoints, the run's metadata in Redis) so
whoever loads them builds the same network; learner/model.py turns it into torch modules.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

MODEL_KINDS = ("mlp", "conv", "lstm")
SYMMETRIES = ("none", "mirror", "dihedral")
CATEGORICAL, GAUSSIAN = "categorical", "gaussian"
HEADS = (CATEGORICAL, GAUSSIAN)
"""The policy heads: categorical over a Discrete action space (masked logits), a diagonal Gaussian
over a Box one (learner/distributions.py). Which one a network has follows from the game's action
space, not from the config; weights record it (policy_meta's "head") so loaders rebuild the same."""


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "mlp"
    """mlp: separate policy and value MLPs over the flattened observation. conv: a residual
    convolutional trunk over board planes (observations shaped height x width x channels, as
    PettingZoo's classic board games), shared by a policy head and a value head. lstm: a recurrent
    policy (as OpenAI Five's): an MLP encoder, one LSTM layer whose state each seat carries from
    decision to decision of a game, and linear policy and value heads over its output (discrete
    actions; not with symmetry)."""
    hidden_sizes: tuple = (128, 128)
    """mlp: widths of the hidden layers of each of the two MLPs. conv: widths of the hidden layers
    of the value head (the policy head is a 1x1 convolution plus one linear layer). lstm: widths of
    the encoder MLP before the LSTM."""
    channels: int = 64
    """conv: channels of every trunk convolution."""
    blocks: int = 2
    """conv: residual blocks (two 3x3 convolutions each) after the first convolution."""
    stem_kernel: int = 3
    """conv: kernel size of the first convolution (odd; AlphaZero's 3). A line of k cells through
    a cell spans 2k - 1 cells centred on it, so a kernel that wide (connect four: 7) lets one
    layer see, for every cell, each line of four it would complete or must block. Cheap: the
    first layer reads only the observation's few planes. On connect four 7 ended weaker than 3
    at equal wall time (docs/results.md)."""
    policy_planes: int = 2
    """conv: planes of the policy head's 1x1 convolution, read by its linear layer. AlphaZero's 2 is
    too narrow where one action stands for many cells (a connect four column): 8 learned to take
    horizontal and diagonal wins that 2 kept missing (docs/results.md, "Connect four")."""
    value_planes: int = 1
    """conv: planes of the value head's 1x1 convolution, read by its MLP (AlphaZero: 1)."""
    lstm_size: int = 128
    """lstm: units of the LSTM layer; its state (h and c, lstm_size each) is what a seat remembers
    of its game so far, and what every trajectory segment carries from its first decision."""
    symmetry: str = "none"
    """Make the policy exactly symmetric by averaging the network over the board's symmetries
    (each game seen in every orientation at once, as AlphaZero's augmentation, at that many times
    the compute). none; mirror: left-right (connect four: columns reverse); dihedral: the 8
    rotations and reflections of a square board (tic-tac-toe). Boards are observations shaped
    height x width x channels; actions are columns (num_actions = width) or cells (height x width, row-major)."""

    def fields_in_use(self) -> set[str]:
        """The fields that shape this kind's network (an MLP has no channels or blocks)."""
        conv = {"channels", "blocks", "stem_kernel", "policy_planes", "value_planes"}
        extra = conv if self.kind == "conv" else {"lstm_size"} if self.kind == "lstm" else set()
        return {"kind", "hidden_sizes", "symmetry"} | extra

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden_sizes"] = [int(h) for h in self.hidden_sizes]
        return d

    def check(self, obs_shape: tuple[int, ...] | None = None, num_actions: int | None = None, head: str = CATEGORICAL) -> None:
        """Raise ValueError naming what to change when this section is invalid or, given the
        game's observation shape, action count and policy head, cannot play that game."""
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model.kind {self.kind!r} is unknown; choose one of {', '.join(MODEL_KINDS)}")
        if self.symmetry not in SYMMETRIES:
            raise ValueError(f"model.symmetry {self.symmetry!r} is unknown; choose one of {', '.join(SYMMETRIES)}")
        if not self.hidden_sizes or any(int(h) < 1 for h in self.hidden_sizes):
            raise ValueError("model.hidden_sizes must be a non-empty list of positive widths")
        if self.channels < 1 or self.blocks < 0:
            raise ValueError("model.channels must be >= 1 and model.blocks >= 0")
        if self.stem_kernel < 1 or self.stem_kernel % 2 == 0:
            raise ValueError(f"model.stem_kernel must be an odd size >= 1 (3, 5, 7); got {self.stem_kernel}")
        if self.policy_planes < 1 or self.value_planes < 1:
            raise ValueError("model.policy_planes and model.value_planes must be >= 1")
        if self.kind == "lstm" and self.lstm_size < 1:
            raise ValueError("model.lstm_size must be >= 1")
        if self.kind == "lstm" and self.symmetry != "none":
            raise ValueError(
                f"model.kind lstm cannot be combined with model.symmetry {self.symmetry}: averaging over board "
                "symmetries would need one recurrent state per orientation; set model.symmetry: none"
            )
        if head not in HEADS:
            raise ValueError(f"policy head {head!r} is unknown; one of {', '.join(HEADS)}")
        if head == GAUSSIAN and (self.kind != "mlp" or self.symmetry != "none"):
            # The Gaussian head is the MLP's policy output; conv trunks and board symmetries are
            # built for Discrete board moves (recurrent policies are not combined with it either).
            raise ValueError(
                f"a Box action space (a diagonal Gaussian policy) needs model.kind mlp and model.symmetry none; "
                f"this config has kind {self.kind}, symmetry {self.symmetry}"
            )
        if obs_shape is None:
            return
        if self.kind == "conv" and len(obs_shape) != 3:
            raise ValueError(
                f"model.kind conv needs observations shaped height x width x channels; this game's are {tuple(obs_shape)}: use model.kind mlp"
            )
        if num_actions is not None:
            board_symmetries(self.symmetry, obs_shape, num_actions)


def head_from_meta(meta: dict[str, Any]) -> str:
    """The policy head recorded with a set of weights; files written before Box games carry none."""
    head = meta.get("head", CATEGORICAL)
    if head not in HEADS:
        raise ValueError(f"these weights name the policy head {head!r}, which this build does not know ({', '.join(HEADS)})")
    return head


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
            stem_kernel=int(m.get("stem_kernel", 3)),  # absent from weights saved before it existed
            symmetry=str(m.get("symmetry", "none")),
            policy_planes=int(m.get("policy_planes", 2)),  # absent from weights saved before it existed
            value_planes=int(m.get("value_planes", 1)),
            lstm_size=int(m.get("lstm_size", 128)),
        )
    return ModelConfig(hidden_sizes=tuple(int(h) for h in meta["hidden_sizes"]))


def board_symmetries(symmetry: str, obs_shape: tuple[int, ...], num_actions: int) -> list[tuple[list[int], list[int]]]:
    """(obs_index, action_index) per non-identity symmetry: the transformed flat observation is
    obs[obs_index], and action a of the original board is action action_index[a] of the transformed
    one. Raises ValueError when the observation or action space is not a board this fits."""
    import numpy as np  # numpy only: this module stays free of torch

    if symmetry == "none":
        return []
    if len(obs_shape) != 3:
        raise ValueError(f"model.symmetry {symmetry} needs board observations (height x width x channels); got {tuple(obs_shape)}")
    h, w, c = obs_shape
    if symmetry == "mirror":
        transforms = [lambda a: a[:, ::-1]]
    else:
        if h != w:
            raise ValueError(f"model.symmetry dihedral needs a square board; got {h} x {w}")
        transforms = [
            lambda a, k=k, f=f: np.rot90(a[:, ::-1] if f else a, k, axes=(0, 1)) for f in (False, True) for k in range(4)
        ][1:]  # drop the identity
    if num_actions == h * w:
        cells = np.arange(h * w).reshape(h, w)
        act = lambda t: np.argsort(t(cells).reshape(-1))  # noqa: E731 - where each original cell went
    elif num_actions == w and symmetry == "mirror":
        act = lambda t: np.arange(w)[::-1].copy()  # noqa: E731
    else:
        raise ValueError(
            f"model.symmetry {symmetry}: actions must be board cells ({h * w}) or, for mirror, columns ({w}); this game has {num_actions}"
        )
    flat = np.arange(h * w * c).reshape(h, w, c)
    return [(t(flat).reshape(-1).tolist(), act(t).tolist()) for t in transforms]


def augment_group(augment: str, model: "ModelConfig", obs_shape=None, num_actions: int = 0, head: str = CATEGORICAL) -> list:
    """ppo.augment's orientations, the identity first, as board_symmetries gives them; without a
    game's shape only the setting itself is checked ([]). Raises ValueError saying what does not fit."""
    if augment not in SYMMETRIES:
        raise ValueError(f"ppo.augment {augment!r} is unknown; choose one of {', '.join(SYMMETRIES)}")
    if augment == "none":
        return []
    if model.symmetry != "none" or model.kind == "lstm" or head == GAUSSIAN:
        raise ValueError(
            f"ppo.augment {augment} needs a feed-forward categorical policy with model.symmetry none (this one: "
            f"kind {model.kind}, symmetry {model.symmetry}, {head} actions); a symmetric network sees every orientation already"
        )
    if obs_shape is None:
        return []
    shape = tuple(int(d) for d in obs_shape)
    try:
        turned = board_symmetries(augment, shape, num_actions)
    except ValueError as e:  # its message speaks of model.symmetry, which has the same groups
        raise ValueError(f"ppo.augment {augment} does not fit this game: {e}") from None
    return [(list(range(math.prod(shape))), list(range(num_actions)))] + turned


def as_model_config(model: "ModelConfig | tuple | list") -> ModelConfig:
    """Accept a bare tuple of widths as the MLP of those widths (what earlier callers passed)."""
    if isinstance(model, ModelConfig):
        return model
    return ModelConfig(hidden_sizes=tuple(int(h) for h in model))
