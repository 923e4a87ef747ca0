"""The league's payloads on the wire format (learner/wire.py): game results and small documents
(league state, history points, health, run metadata). Never pickle."""

from __future__ import annotations

import math
from dataclasses import asdict

from league.league import LEARNER, REFERENCE, SNAPSHOT, Player
from league.records import GameResult
from learner.wire import PayloadError, pack_payload, typed_field, unpack_payload

# --- game results --------------------------------------------------------------------------

GAME_SCHEMA, GAME_V = "game", 1
MAX_ID_CHARS = 200
"""Longest player or game id a payload may carry (ids are opaque; a real one is under 40)."""
MAX_SEATS = 64
"""Most seats a game result may have: a game of N seats costs N(N-1)/2 pairs in the league."""


def encode_game(g: GameResult) -> bytes:
    return pack_payload(GAME_SCHEMA, GAME_V, g.to_dict())


def check_id(value: object, what: str) -> str:
    """An opaque id as a payload may carry it: a non-empty printable string of at most MAX_ID_CHARS."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS or not value.isprintable():
        shown = repr(value)[:80]
        raise PayloadError(f"{what}: expected a printable id of 1 to {MAX_ID_CHARS} characters, got {shown}")
    return value


def decode_game(payload: bytes) -> GameResult:
    """A game result read from the queue, every field checked: types, ids, seat counts that agree,
    and (GameResult's own invariants) scores, kind, opponent_prob in (0, 1], finite numbers."""
    obj = unpack_payload(payload, GAME_SCHEMA, GAME_V, GameResult.FIELDS)
    # Two seats in a two-player game, one per side in an N-sided one: the same schema, so a
    # two-player payload written before N-sided games existed reads as it always did.
    for key, item_type in (("players", str), ("versions", int), ("scores", (int, float))):
        seq = obj[key]
        if not isinstance(seq, list) or not 2 <= len(seq) <= MAX_SEATS or not all(
            isinstance(x, item_type) and not isinstance(x, bool) for x in seq
        ):
            raise PayloadError(f"game.{key}: expected a list of 2 to {MAX_SEATS} {item_type}, got {repr(seq)[:120]}")
    for i, pid in enumerate(obj["players"]):
        check_id(pid, f"game.players[{i}]")
    check_id(typed_field(obj, "game_id", str, "game"), "game.game_id")
    typed_field(obj, "length", int, "game")
    typed_field(obj, "kind", str, "game")
    typed_field(obj, "opponent_prob", (int, float), "game")
    typed_field(obj, "finished_at", (int, float), "game")
    try:
        return GameResult.from_dict({k: obj[k] for k in GameResult.FIELDS})
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"game {obj['game_id']!r}: {exc}") from exc


BAD_GAME_SCHEMA, BAD_GAME_V = "bad_game", 1


def encode_bad_game(raw: bytes, reason: str, at: float) -> bytes:
    """A refused game result as it is kept aside: its bytes untouched, why, and when."""
    return pack_payload(BAD_GAME_SCHEMA, BAD_GAME_V, {"payload": bytes(raw), "reason": reason[:500], "at": float(at)})


def decode_bad_game(payload: bytes) -> tuple[bytes, str, float]:
    obj = unpack_payload(payload, BAD_GAME_SCHEMA, BAD_GAME_V, ("payload", "reason", "at"))
    return typed_field(obj, "payload", bytes, "bad_game"), typed_field(obj, "reason", str, "bad_game"), float(typed_field(obj, "at", (int, float), "bad_game"))


# --- generic small documents (league state, metrics) ----------------------------------------


def encode_doc(schema: str, version: int, body: dict) -> bytes:
    return pack_payload(schema, version, {"body": body})


def decode_doc(payload: bytes, schema: str, version: int) -> dict:
    obj = unpack_payload(payload, schema, version, ("body",))
    return typed_field(obj, "body", dict, schema)


# --- league player records ------------------------------------------------------------------

PLAYER_KINDS = frozenset((LEARNER, SNAPSHOT, REFERENCE))
_COUNTS = ("games", "wins", "draws", "losses")


def _number(body: dict, key: str, what: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    x = body[key]
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or not lo <= x <= hi:
        raise PayloadError(f"{what}.{key}: expected a finite number in [{lo}, {hi}], got {x!r}")
    return float(x)


def player_from_body(body: dict, what: str = "league player") -> Player:
    """A league player record (league/league.py Player) from its document body, every field checked:
    no unknown fields (a missing one takes its default, as records written before it existed do),
    an id, a kind in the allowed set, finite ratings, counts >= 0."""
    unknown = set(body) - set(Player.__dataclass_fields__)
    if unknown or not {"id", "kind", "version"} <= set(body):
        raise PayloadError(f"{what}: unexpected fields {sorted(unknown)} or no id, kind and version")
    pid = check_id(body["id"], f"{what}.id")
    try:
        body = asdict(Player(**body))  # with the defaults of fields it lacks
    except TypeError as exc:
        raise PayloadError(f"{what} {pid!r}: {exc}") from exc
    what = f"league player {pid!r}"
    if body["kind"] not in PLAYER_KINDS:
        raise PayloadError(f"{what}.kind: {body['kind']!r} is not one of {sorted(PLAYER_KINDS)}")
    for key in ("version", *_COUNTS):
        if isinstance(body[key], bool) or not isinstance(body[key], int) or body[key] < (-1 if key == "version" else 0):
            raise PayloadError(f"{what}.{key}: expected an integer >= {-1 if key == 'version' else 0}, got {body[key]!r}")
    for key in ("vs_random", "vs_learner"):
        v = body[key]
        if not isinstance(v, list) or len(v) != 3 or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
            raise PayloadError(f"{what}.{key}: expected [wins, draws, losses] >= 0, got {v!r}")
    _number(body, "elo", what)
    _number(body, "quality", what)
    _number(body, "payoff_win_rate", what, 0.0, 1.0)
    stderr = body["elo_stderr"]
    if stderr is not None and (isinstance(stderr, bool) or not isinstance(stderr, (int, float)) or not stderr >= 0.0):
        raise PayloadError(f"{what}.elo_stderr: expected None or a number >= 0, got {stderr!r}")
    if not isinstance(body["owner"], str):
        raise PayloadError(f"{what}.owner: expected a string, got {body['owner']!r}")
    if body["vs_main"] is not None:
        _number(body, "vs_main", what, 0.0, 1.0)
    rates = body["exploiter_win_rates"]
    if not isinstance(rates, dict) or not all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for k, v in rates.items()):
        raise PayloadError(f"{what}.exploiter_win_rates: expected {{exploiter id: win rate in [0, 1]}}, got {rates!r}")
    if isinstance(body["reset_version"], bool) or not isinstance(body["reset_version"], int) or body["reset_version"] < 0:
        raise PayloadError(f"{what}.reset_version: expected an integer >= 0, got {body['reset_version']!r}")
    if not isinstance(body["training_opponent"], bool):
        raise PayloadError(f"{what}.training_opponent: expected a bool, got {body['training_opponent']!r}")
    return Player(**body)
