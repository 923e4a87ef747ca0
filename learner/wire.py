"""Wire format: msgpack with explicit, versioned schemas. Never pickle. And the learner's payloads on it:
weights (the parameter store's and policy files') and trajectory segments.

Numpy arrays travel as {"dtype", "shape", "data"} with raw little-endian bytes. Every payload is a
map with "schema" and "v" so a reader can refuse data it does not understand with a clear error
instead of misreading it. Decoding validates everything it reads: a corrupt or truncated payload
raises PayloadError, never a half-built record. The league's payloads (game results, documents)
are built on the same envelope in cluster/stores/payloads.py.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import msgpack
import numpy as np

from learner.segment import Segment

# Only plain numeric dtypes may cross the wire; anything else (object arrays!) is refused.
ALLOWED_DTYPES = frozenset(
    ["bool", "int8", "uint8", "int16", "int32", "int64", "float16", "float32", "float64"]
)
MAX_PAYLOAD_BYTES = 512 * 1024 * 1024


class PayloadError(ValueError):
    """A payload could not be decoded: corrupt, truncated, wrong schema or wrong version."""


def pack_array(a: np.ndarray) -> dict:
    a = np.asarray(a, order="C")  # not ascontiguousarray: that turns 0-d scalars into shape (1,)
    dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    if dtype.name not in ALLOWED_DTYPES:
        raise TypeError(f"dtype {a.dtype} cannot be sent; allowed: {sorted(ALLOWED_DTYPES)}")
    return {"dtype": dtype.name, "shape": list(a.shape), "data": a.astype(dtype, copy=False).tobytes()}


def unpack_array(d: Any, what: str) -> np.ndarray:
    if not isinstance(d, dict) or set(d) != {"dtype", "shape", "data"}:
        raise PayloadError(f"{what}: not an array record")
    dtype, shape, data = d["dtype"], d["shape"], d["data"]
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise PayloadError(f"{what}: dtype {dtype!r} is not allowed")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise PayloadError(f"{what}: bad shape {shape!r}")
    if not isinstance(data, bytes):
        raise PayloadError(f"{what}: data is not bytes")
    dt = np.dtype(dtype).newbyteorder("<")
    expected = math.prod(shape) * dt.itemsize  # Python ints: no int64 overflow on hostile shapes
    if len(data) != expected:
        raise PayloadError(f"{what}: {len(data)} bytes for shape {shape} {dtype} (expected {expected}); truncated?")
    return np.frombuffer(data, dtype=dt).reshape(shape).astype(dt.newbyteorder("="), copy=True)


def pack_payload(schema: str, version: int, body: dict) -> bytes:
    return msgpack.packb({"schema": schema, "v": version, **body}, use_bin_type=True)


def unpack_payload(payload: bytes, schema: str, version: int, keys: Iterable[str]) -> dict:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise PayloadError(f"{schema}: payload is {type(payload).__name__}, not bytes")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"{schema}: payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES} limit")
    try:
        obj = msgpack.unpackb(bytes(payload), raw=False, strict_map_key=True, max_bin_len=MAX_PAYLOAD_BYTES)
    except Exception as exc:  # msgpack raises several unrelated types for corrupt data
        raise PayloadError(f"{schema}: corrupt or truncated msgpack ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise PayloadError(f"{schema}: payload is not a map")
    if obj.get("schema") != schema:
        raise PayloadError(f"expected a {schema!r} payload, got schema {obj.get('schema')!r}")
    if obj.get("v") != version:
        raise PayloadError(f"{schema}: version {obj.get('v')!r} is not supported (this build reads v{version})")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise PayloadError(f"{schema}: missing fields {missing}")
    return obj


def typed_field(obj: dict, key: str, tp: type | tuple, what: str) -> Any:
    value = obj[key]
    if isinstance(value, bool) and tp is not bool and bool not in (tp if isinstance(tp, tuple) else (tp,)):
        raise PayloadError(f"{what}.{key}: expected {tp}, got bool")
    if not isinstance(value, tp):
        raise PayloadError(f"{what}.{key}: expected {tp}, got {type(value).__name__}")
    return value


# --- weights -------------------------------------------------------------------------------

WEIGHTS_SCHEMA, WEIGHTS_V = "weights", 1


def encode_weights(tensors: dict[str, np.ndarray], version: int, meta: dict | None = None) -> bytes:
    """Encode named arrays (a state dict as numpy) with the version that produced them."""
    return pack_payload(
        WEIGHTS_SCHEMA,
        WEIGHTS_V,
        {"version": int(version), "meta": meta or {}, "tensors": [[k, pack_array(v)] for k, v in tensors.items()]},
    )


def decode_weights(payload: bytes) -> tuple[int, dict[str, np.ndarray], dict]:
    obj = unpack_payload(payload, WEIGHTS_SCHEMA, WEIGHTS_V, ("version", "meta", "tensors"))
    version = typed_field(obj, "version", int, "weights")
    meta = typed_field(obj, "meta", dict, "weights")
    tensors = {}
    for item in typed_field(obj, "tensors", list, "weights"):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise PayloadError("weights.tensors: entries must be [name, array]")
        tensors[item[0]] = unpack_array(item[1], f"weights[{item[0]}]")
    return version, tensors, meta


# --- trajectory segments -------------------------------------------------------------------

# Box games' segments travel under the same v1 (float32 [T, D] actions, empty [T, 0] masks, which
# Segment validates): every payload of earlier builds still decodes, and a build that predates Box
# games refuses theirs with PayloadError (its Segment wants int64 actions).
SEGMENTS_SCHEMA, SEGMENTS_V = "segments", 1
_SEG_ARRAYS = ("obs", "masks", "actions", "logp", "values", "rewards", "dones", "versions")


def encode_segments(segments: list[Segment]) -> bytes:
    items = []
    for s in segments:
        item = {k: pack_array(getattr(s, k)) for k in _SEG_ARRAYS}
        item.update(actor_id=s.actor_id, segment_id=s.segment_id, bootstrap_value=float(s.bootstrap_value))
        if s.initial_state is not None:  # recurrent policies only: feed-forward segments encode as before
            item["initial_state"] = pack_array(s.initial_state)
        items.append(item)
    return pack_payload(SEGMENTS_SCHEMA, SEGMENTS_V, {"segments": items})


def decode_segments(payload: bytes) -> list[Segment]:
    obj = unpack_payload(payload, SEGMENTS_SCHEMA, SEGMENTS_V, ("segments",))
    out = []
    for i, item in enumerate(typed_field(obj, "segments", list, "segments")):
        what = f"segments[{i}]"
        if not isinstance(item, dict):
            raise PayloadError(f"{what}: not a map")
        missing = [k for k in (*_SEG_ARRAYS, "actor_id", "segment_id", "bootstrap_value") if k not in item]
        if missing:
            raise PayloadError(f"{what}: missing fields {missing}")
        arrays = {k: unpack_array(item[k], f"{what}.{k}") for k in _SEG_ARRAYS}
        if "initial_state" in item:
            arrays["initial_state"] = unpack_array(item["initial_state"], f"{what}.initial_state")
        try:
            seg = Segment(
                actor_id=typed_field(item, "actor_id", int, what),
                segment_id=typed_field(item, "segment_id", int, what),
                bootstrap_value=float(typed_field(item, "bootstrap_value", (int, float), what)),
                **arrays,
            )
        except ValueError as exc:  # Segment validates shapes and dtypes itself
            raise PayloadError(f"{what}: {exc}") from exc
        out.append(seg)
    return out
