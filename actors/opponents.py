"""One rollout actor's past-opponent policies, sized to the opponents in play.

A fixed-size LRU thrashes once more distinct snapshots are seated than it holds (64 game slots
with 20% past-opponent games seat about a dozen): every tick's forward pass for an evicted
opponent refetches its weights from the parameter store, decodes them and builds a new network.
Here an opponent seated in some game slot is never evicted; when its last game ends it becomes
idle, and at most `idle_limit` idle ones are kept (least recently released dropped first), ready
should the sampler draw them again. A miss loads the new weights into the network of the least
recently released idle policy: a network is only built when no idle one is left (the opponents in
play outgrew what the cache held), and memory stays bounded by (distinct opponents seated) +
idle_limit networks. The rollout worker releases a finished game's opponent before drawing the
next one, so in steady play a miss reuses a network and nothing is built.

Plain Python: the fetch and the network factory are handed in, so it is tested in-process.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np

from learner.model import InferencePolicy


class OpponentCache:
    def __init__(
        self,
        fetch: Callable[[str], tuple[int, dict[str, np.ndarray]]],
        build: Callable[[], InferencePolicy],
        idle_limit: int,
    ) -> None:
        """`fetch(player_id)` -> (version, weights), raising KeyError for a snapshot the store lacks;
        `build()` -> a new network of the run's architecture (weights to be loaded)."""
        if idle_limit < 1:
            raise ValueError(f"idle_limit must be >= 1 (rollout.opponent_cache); got {idle_limit}")
        self._fetch, self._build, self.idle_limit = fetch, build, idle_limit
        self._policies: dict[str, InferencePolicy] = {}  # seated and idle ones
        self._seats: dict[str, int] = {}  # player id -> game slots seating it now
        self._idle: OrderedDict[str, None] = OrderedDict()  # least recently released first
        self.hits = 0
        self.misses = 0
        self.built = 0

    def seat(self, player_id: str) -> InferencePolicy:
        """The policy of `player_id`, now seated in one more game slot (until release()).
        Raises KeyError, and changes nothing, when the store has no such snapshot."""
        policy = self._policies.get(player_id)
        if policy is not None:
            self.hits += 1
            self._idle.pop(player_id, None)
        else:
            version, tensors = self._fetch(player_id)
            policy = self._free_network()
            policy.load(tensors, version)
            self._policies[player_id] = policy
            self.misses += 1
        self._seats[player_id] = self._seats.get(player_id, 0) + 1
        return policy

    def release(self, player_id: str) -> None:
        """One game slot seating `player_id` has finished its game."""
        left = self._seats[player_id] - 1  # KeyError: released more often than seated (a bookkeeping bug)
        if left:
            self._seats[player_id] = left
            return
        del self._seats[player_id]
        self._idle[player_id] = None
        if len(self._idle) > self.idle_limit:
            victim, _ = self._idle.popitem(last=False)
            del self._policies[victim]  # fewer opponents in play than before: memory shrinks

    def _free_network(self) -> InferencePolicy:
        # Reusing an idle network even below idle_limit keeps the cache at its size: growing it
        # would hold more weights than the opponents in play need, at the cost of a new network.
        if self._idle:
            victim, _ = self._idle.popitem(last=False)
            return self._policies.pop(victim)
        self.built += 1
        return self._build()

    def __getitem__(self, player_id: str) -> InferencePolicy:
        """A seated (or idle) opponent's policy; KeyError for one not held."""
        return self._policies[player_id]

    def __contains__(self, player_id: str) -> bool:
        return player_id in self._policies

    @property
    def seated(self) -> dict[str, int]:
        """Player id -> game slots seating it now."""
        return dict(self._seats)

    @property
    def networks(self) -> int:
        """Networks held (seated and idle): what the cache costs in memory."""
        return len(self._policies)
