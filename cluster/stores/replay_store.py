"""Replays in Redis: a bounded list of rating games per (rated player, reference) pair.

Evaluators write (`keep`: RPUSH then LTRIM in one transaction, so a list never holds more than the
bound, whatever the number of evaluators); `selfplay replay` and the dashboard's replay page read.
Keys are in cluster/stores/keys.py. Records travel as msgpack with an explicit schema (learner/wire.py's
envelope), never pickle, and decoding checks every field: a corrupt record raises PayloadError.
"""

from __future__ import annotations

from actors.replay import Replay, ReplayNotFound
from cluster.stores.keys import RunKeys
from learner.wire import PayloadError, pack_payload, typed_field, unpack_payload

REPLAY_SCHEMA, REPLAY_V = "replay", 1
FIELDS = ("game", "game_id", "players", "versions", "rated_seat", "scores", "moves", "seed", "finished_at")
MAX_MOVES = 100_000  # far past any board game's length: a longer list is a corrupt record


def encode_replay(r: Replay) -> bytes:
    return pack_payload(REPLAY_SCHEMA, REPLAY_V, {
        "game": r.game, "game_id": r.game_id, "players": list(r.players), "versions": list(r.versions),
        "rated_seat": r.rated_seat, "scores": [float(s) for s in r.scores], "moves": [int(a) for a in r.moves],
        "seed": int(r.seed), "finished_at": float(r.finished_at),
    })


def _pair(obj: dict, key: str, item_type) -> tuple:
    seq = obj[key]
    if not isinstance(seq, list) or len(seq) != 2 or not all(isinstance(x, item_type) and not isinstance(x, bool) for x in seq):
        raise PayloadError(f"replay.{key}: expected a list of two {item_type}, got {seq!r}")
    return tuple(seq)


def decode_replay(payload: bytes) -> Replay:
    obj = unpack_payload(payload, REPLAY_SCHEMA, REPLAY_V, FIELDS)
    moves = typed_field(obj, "moves", list, "replay")
    if len(moves) > MAX_MOVES or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in moves):
        raise PayloadError(f"replay.moves: expected at most {MAX_MOVES} action numbers (integers >= 0)")
    rated_seat = typed_field(obj, "rated_seat", int, "replay")
    if rated_seat not in (0, 1):
        raise PayloadError(f"replay.rated_seat: expected 0 or 1, got {rated_seat}")
    scores = _pair(obj, "scores", (int, float))
    if not all(s in (0.0, 0.5, 1.0) for s in scores) or sum(scores) != 1.0:
        raise PayloadError(f"replay.scores: expected win/draw/loss scores summing to 1, got {list(scores)}")
    return Replay(
        game=typed_field(obj, "game", str, "replay"),
        game_id=typed_field(obj, "game_id", str, "replay"),
        players=_pair(obj, "players", str),
        versions=_pair(obj, "versions", int),
        rated_seat=rated_seat,
        scores=(float(scores[0]), float(scores[1])),
        moves=tuple(moves),
        seed=typed_field(obj, "seed", int, "replay"),
        finished_at=float(typed_field(obj, "finished_at", (int, float), "replay")),
    )


def _text(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


class ReplayStore:
    """One run's replays: the evaluators' ReplaySink, and what the CLI and the dashboard read."""

    def __init__(self, client, keys: RunKeys) -> None:
        self.client, self.keys = client, keys

    def keep(self, replays: list[Replay], per_pair: int) -> None:
        """Append each replay to its pair's list and trim every list touched to its newest `per_pair`."""
        if not replays or per_pair <= 0:
            return
        pipe = self.client.pipeline(transaction=True)
        pairs = {}
        for r in replays:
            key = self.keys.replays(r.rated, r.reference)
            pipe.rpush(key, encode_replay(r))
            pairs[key] = f"{r.rated}\t{r.reference}"
        for key, member in pairs.items():
            pipe.ltrim(key, -per_pair, -1)
            pipe.sadd(self.keys.replay_pairs, member)
        pipe.execute()

    def pairs(self) -> list[tuple[str, str, int]]:
        """(rated player, reference, replays stored) for every pair with replays, sorted by player then reference."""
        members = sorted(_text(m).split("\t", 1) for m in self.client.smembers(self.keys.replay_pairs))
        pipe = self.client.pipeline(transaction=False)
        for player, ref in members:
            pipe.llen(self.keys.replays(player, ref))
        return [(p, r, int(n)) for (p, r), n in zip(members, pipe.execute()) if n]

    def games(self, player: str, reference: str) -> list[Replay]:
        """The pair's stored replays, oldest first; PayloadError naming the first corrupt one."""
        out = []
        for i, payload in enumerate(self.client.lrange(self.keys.replays(player, reference), 0, -1)):
            out.append(self._decode(payload, player, reference, i))
        return out

    def count(self, player: str, reference: str) -> int:
        return int(self.client.llen(self.keys.replays(player, reference)))

    def game(self, player: str, reference: str, index: int = -1) -> Replay:
        """One replay of the pair by position (0 the oldest kept, -1 the newest); ReplayNotFound if there is none."""
        key = self.keys.replays(player, reference)
        n = self.count(player, reference)
        if n == 0:
            raise ReplayNotFound(f"no replays of {player} against {reference} in this run{self._choices()}")
        if not -n <= index < n:
            raise ReplayNotFound(f"there are {n} replays of {player} against {reference}: the index goes from {-n} to {n - 1}")
        return self._decode(self.client.lindex(key, index), player, reference, index % n)

    def _decode(self, payload: bytes, player: str, reference: str, position: int) -> Replay:
        try:
            r = decode_replay(payload)
        except PayloadError as exc:
            raise PayloadError(f"replay {position} of {player} against {reference} is corrupt: {exc}") from exc
        if (r.rated, r.reference) != (player, reference):
            raise PayloadError(
                f"replay {position} of {player} against {reference} is corrupt: it records {r.rated} against {r.reference}"
            )
        return r

    def _choices(self) -> str:
        pairs = self.pairs()
        if not pairs:
            return " (it has none yet: evaluators keep them with eval.replays_per_pair > 0)"
        return "; stored pairs: " + ", ".join(f"{p} vs {r}" for p, r, _ in pairs)
