"""Wire format (learner/wire.py, cluster/stores/payloads.py): exact round trips, and every kind of corrupt payload -> PayloadError."""

from __future__ import annotations

import ast
import inspect

import msgpack
import numpy as np
import pytest

import cluster.stores.payloads as payloads
import learner.wire as wire
from cluster.stores.payloads import decode_doc, decode_game, encode_doc, encode_game
from league.records import GameResult
from learner.segment import Segment
from learner.wire import PayloadError, decode_segments, decode_weights, encode_segments, encode_weights


def _weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "trunk.0.weight": rng.normal(size=(4, 3)).astype(np.float32),
        "trunk.0.bias": np.array([1e-30, -0.0, np.inf, np.nan], np.float32),
        "counts": np.arange(6, dtype=np.int64).reshape(2, 3, 1),
        "half": np.array([1.5, -2.25], np.float16),
        "flags": np.array([True, False, True]),
        "bytes": np.array([0, 255], np.uint8),
        "scalar": np.array(3.25, np.float64),
        "empty": np.zeros((0, 5), np.float32),
        "big_endian": np.array([1, 2, 3], dtype=">i4"),
    }


def _segment(seg_id: int = 7, t: int = 3) -> Segment:
    rng = np.random.default_rng(seg_id)
    return Segment(
        actor_id=2,
        segment_id=seg_id,
        obs=rng.normal(size=(t, 5)).astype(np.float32),
        masks=rng.random((t, 4)) < 0.5,
        actions=rng.integers(0, 4, t).astype(np.int64),
        logp=rng.normal(size=t).astype(np.float32),
        values=rng.normal(size=t).astype(np.float32),
        rewards=np.array([0.0, -1.0, 1.0][:t] + [0.5] * max(0, t - 3), np.float32),
        dones=np.array([False, True, False][:t] + [False] * max(0, t - 3)),
        versions=np.array([4, 4, 5][:t] + [5] * max(0, t - 3), np.int64),
        bootstrap_value=0.375,
    )


GAME = GameResult("a1-xyz-e0-g3", ("latest", "v000010"), (12, 10), (0.0, 1.0), 7, "train", 0.25, 1700000000.5)


# --- round trips ------------------------------------------------------------------------


def test_weights_round_trip_is_exact():
    tensors = _weights()
    version, out, meta = decode_weights(encode_weights(tensors, 42, {"player_id": "v000042"}))
    assert version == 42 and meta == {"player_id": "v000042"}
    assert list(out) == list(tensors)  # names and their order
    for name, a in tensors.items():
        b = out[name]
        assert b.shape == a.shape, name
        assert b.dtype == a.dtype.newbyteorder("=") or b.dtype == a.dtype, name
        assert b.dtype.name == a.dtype.name, name
        np.testing.assert_array_equal(b, a, err_msg=name)  # NaN == NaN here, -0.0 and inf kept
        assert b.flags.writeable  # a decoded array is a copy the caller may modify
    assert np.signbit(out["trunk.0.bias"][1])


def test_segments_round_trip_every_field():
    segs = [_segment(7, 3), _segment(8, 5)]
    out = decode_segments(encode_segments(segs))
    assert len(out) == 2
    for a, b in zip(segs, out):
        assert (b.actor_id, b.segment_id, b.bootstrap_value) == (a.actor_id, a.segment_id, a.bootstrap_value)
        for name in ("obs", "masks", "actions", "logp", "values", "rewards", "dones", "versions"):
            x, y = getattr(a, name), getattr(b, name)
            assert y.dtype == x.dtype and y.shape == x.shape, name
            np.testing.assert_array_equal(y, x, err_msg=name)


def test_game_result_round_trip():
    assert decode_game(encode_game(GAME)) == GAME


def test_doc_round_trip():
    body = {"a": [1, 2.5, "x"], "nested": {"k": None, "b": True}}
    assert decode_doc(encode_doc("thing", 3, body), "thing", 3) == body


def test_encoder_refuses_object_and_complex_arrays():
    for bad in (np.array([object()], dtype=object), np.array([1 + 2j])):
        with pytest.raises(TypeError, match="cannot be sent"):
            encode_weights({"x": bad}, 1)


# --- corrupt payloads --------------------------------------------------------------------


def _raw(payload: bytes) -> dict:
    return msgpack.unpackb(payload, raw=False)


def _pack(obj: dict) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


DECODERS = {
    "weights": (decode_weights, lambda: encode_weights(_weights(), 3)),
    "segments": (decode_segments, lambda: encode_segments([_segment()])),
    "game": (decode_game, lambda: encode_game(GAME)),
}


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_random_bytes_raise_payload_error(kind):
    decode, _ = DECODERS[kind]
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 64, 1000):
        for _ in range(20):
            with pytest.raises(PayloadError):
                decode(rng.bytes(n))


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_truncated_payloads_raise_payload_error(kind):
    decode, make = DECODERS[kind]
    payload = make()
    for cut in sorted({1, 2, 5, len(payload) // 3, len(payload) // 2, len(payload) - 1}):
        with pytest.raises(PayloadError):
            decode(payload[:cut])


def test_non_bytes_payload_raises_payload_error():
    with pytest.raises(PayloadError, match="not bytes"):
        decode_weights("a string")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_wrong_schema_is_named_in_the_error(kind):
    decode, _ = DECODERS[kind]
    other = encode_doc("league_state", 1, {})
    with pytest.raises(PayloadError, match="league_state"):
        decode(other)


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_wrong_version_is_refused(kind):
    decode, make = DECODERS[kind]
    obj = _raw(make())
    obj["v"] = 99
    with pytest.raises(PayloadError, match="version 99 is not supported"):
        decode(_pack(obj))


def test_payload_that_is_not_a_map_is_refused():
    with pytest.raises(PayloadError, match="not a map"):
        decode_weights(_pack([1, 2, 3]))


@pytest.mark.parametrize("kind,field", [("weights", "tensors"), ("weights", "version"), ("game", "scores"), ("segments", "segments")])
def test_missing_top_level_field_is_named(kind, field):
    decode, make = DECODERS[kind]
    obj = _raw(make())
    del obj[field]
    with pytest.raises(PayloadError, match=field):
        decode(_pack(obj))


@pytest.mark.parametrize("field", ["rewards", "versions", "bootstrap_value", "actor_id"])
def test_missing_segment_field_is_named(field):
    obj = _raw(encode_segments([_segment()]))
    del obj["segments"][0][field]
    with pytest.raises(PayloadError, match=f"segments\\[0\\].*{field}"):
        decode_segments(_pack(obj))


def test_array_with_wrong_byte_count_is_refused():
    obj = _raw(encode_weights(_weights(), 3))
    name, arr = obj["tensors"][0]
    arr["data"] = arr["data"][:-4]
    with pytest.raises(PayloadError, match=rf"{name}.*bytes.*expected"):
        decode_weights(_pack(obj))


def test_segment_arrays_of_inconsistent_length_are_refused():
    obj = _raw(encode_segments([_segment(t=3)]))
    obj["segments"][0]["rewards"] = wire.pack_array(np.zeros(2, np.float32))
    with pytest.raises(PayloadError, match="rewards"):
        decode_segments(_pack(obj))


@pytest.mark.parametrize("dtype", ["object", "complex128", "O", "<U4", "float128"])
def test_disallowed_dtype_is_refused(dtype):
    obj = _raw(encode_weights({"x": np.zeros(2, np.float64)}, 1))
    obj["tensors"][0][1]["dtype"] = dtype
    with pytest.raises(PayloadError, match="not allowed"):
        decode_weights(_pack(obj))


def test_dtype_that_is_not_a_string_is_refused():
    obj = _raw(encode_weights({"x": np.zeros(2, np.float32)}, 1))
    obj["tensors"][0][1]["dtype"] = ["float32"]  # unhashable: must not escape as TypeError
    with pytest.raises(PayloadError):
        decode_weights(_pack(obj))


@pytest.mark.parametrize("shape", [[-1], [2.0], "2", [2**32, 2**32], [2**64 - 1]])
def test_bad_or_overflowing_shape_is_refused(shape):
    obj = _raw(encode_weights({"x": np.zeros(0, np.float32)}, 1))
    obj["tensors"][0][1]["shape"] = shape
    with pytest.raises(PayloadError):
        decode_weights(_pack(obj))


def test_array_record_with_extra_or_missing_keys_is_refused():
    obj = _raw(encode_weights({"x": np.zeros(2, np.float32)}, 1))
    obj["tensors"][0][1]["extra"] = 1
    with pytest.raises(PayloadError, match="not an array record"):
        decode_weights(_pack(obj))


def test_bool_where_int_expected_is_refused_in_weights_and_segments():
    obj = _raw(encode_weights(_weights(), 3))
    obj["version"] = True
    with pytest.raises(PayloadError, match="version"):
        decode_weights(_pack(obj))
    obj = _raw(encode_segments([_segment()]))
    obj["segments"][0]["actor_id"] = True
    with pytest.raises(PayloadError, match="actor_id"):
        decode_segments(_pack(obj))


@pytest.mark.parametrize("field,value", [("length", True), ("versions", [True, 10])])
def test_bool_where_int_expected_is_refused_in_game_results(field, value):
    obj = _raw(encode_game(GAME))
    obj[field] = value
    with pytest.raises(PayloadError, match=field):
        decode_game(_pack(obj))


@pytest.mark.parametrize(
    "field,value",
    [("players", ["latest"]), ("players", {"a": 1}), ("scores", [1.0]), ("players", ["a", "b", "c"]), ("kind", "bogus"),
     ("scores", [1.0, 1.0]), ("length", "seven")],
)
def test_malformed_game_result_raises_payload_error(field, value):
    obj = _raw(encode_game(GAME))
    obj[field] = value
    with pytest.raises(PayloadError):
        decode_game(_pack(obj))


@pytest.mark.parametrize("module", [wire, payloads], ids=lambda m: m.__name__)
def test_wire_module_never_uses_pickle(module):
    tree = ast.parse(inspect.getsource(module))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported.isdisjoint({"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve"})
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
    }
    assert not names & {"pickle", "loads_pickle", "allow_pickle"}


def test_msgpack_ext_types_are_not_turned_into_objects():
    # An ExtType is how msgpack would smuggle custom objects; the decoder must refuse it, not build it.
    obj = _raw(encode_weights({"x": np.zeros(2, np.float32)}, 1))
    obj["tensors"][0][1] = msgpack.ExtType(1, b"\x80\x04K\x01.")  # a pickle of the int 1
    with pytest.raises(PayloadError):
        decode_weights(_pack(obj))
