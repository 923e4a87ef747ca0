"""ppo.augment on the learner's device: each sample turned to one orientation of the board.

The group comes from learner/arch.py (augment_group: the identity first, then board_symmetries');
the learner and benchmarks/learner_speed.py's bare loop both turn their minibatches here, so the
benchmark stays the learner's arithmetic bit for bit.
"""

from __future__ import annotations

import torch

from learner.arch import ModelConfig, augment_group


class Orientations:
    """Per orientation: the gather index of the flat observation, where each original action goes,
    and where each of its actions came from."""

    def __init__(self, group: list, device: torch.device) -> None:
        self.obs_idx = torch.tensor([g[0] for g in group], dtype=torch.long, device=device)
        self.act = torch.tensor([g[1] for g in group], dtype=torch.long, device=device)
        self.came_from = torch.argsort(self.act, dim=1)

    @classmethod
    def build(cls, augment: str, model: ModelConfig, obs_shape, num_actions: int, head: str, device: torch.device) -> "Orientations | None":
        """None where ppo.augment is none; ValueError where it cannot apply (augment_group)."""
        group = augment_group(augment, model, obs_shape, num_actions, head)
        return cls(group, device) if group else None

    def __len__(self) -> int:
        return self.obs_idx.shape[0]

    def turn(self, obs: torch.Tensor, masks: torch.Tensor, actions: torch.Tensor, k: torch.Tensor):
        """Row i turned to orientation k[i] (0: as played): observation, legal mask and move alike.
        The value target and the acting policy's log-prob of the move stay: the policy being
        learned is the same in every orientation."""
        obs, masks = obs.gather(1, self.obs_idx[k]), masks.gather(1, self.came_from[k])
        return obs, masks, self.act[k].gather(1, actions[:, None]).squeeze(1)
