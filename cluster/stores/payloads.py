"""The league's payloads on the wire format (learner/wire.py): game results and small documents
(league state, history points, health, run metadata). Never pickle."""

from __future__ import annotations

from league.records import GameResult
from learner.wire import PayloadError, pack_payload, typed_field, unpack_payload

# --- game results --------------------------------------------------------------------------

GAME_SCHEMA, GAME_V = "game", 1


def encode_game(g: GameResult) -> bytes:
    return pack_payload(GAME_SCHEMA, GAME_V, g.to_dict())


def decode_game(payload: bytes) -> GameResult:
    obj = unpack_payload(payload, GAME_SCHEMA, GAME_V, GameResult.FIELDS)
    # Two seats in a two-player game, one per side in an N-sided one: the same schema, so a
    # two-player payload written before N-sided games existed reads as it always did.
    for key, item_type in (("players", str), ("versions", int), ("scores", (int, float))):
        seq = obj[key]
        if not isinstance(seq, list) or len(seq) < 2 or not all(
            isinstance(x, item_type) and not isinstance(x, bool) for x in seq
        ):
            raise PayloadError(f"game.{key}: expected a list of two or more {item_type}, got {seq!r}")
    typed_field(obj, "game_id", str, "game")
    typed_field(obj, "length", int, "game")
    typed_field(obj, "kind", str, "game")
    typed_field(obj, "opponent_prob", (int, float), "game")
    typed_field(obj, "finished_at", (int, float), "game")
    try:
        return GameResult.from_dict({k: obj[k] for k in GameResult.FIELDS})
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"game: {exc}") from exc


# --- generic small documents (league state, metrics) ----------------------------------------


def encode_doc(schema: str, version: int, body: dict) -> bytes:
    return pack_payload(schema, version, {"body": body})


def decode_doc(payload: bytes, schema: str, version: int) -> dict:
    obj = unpack_payload(payload, schema, version, ("body",))
    return typed_field(obj, "body", dict, schema)
