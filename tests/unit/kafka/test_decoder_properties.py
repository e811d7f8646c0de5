"""The PriceUpdate decoder on arbitrary bytes: a PriceUpdate or a `DecodeError`, nothing else.

The registry is `FakeRegistry`, an in-memory schema lookup: these tests cover the decoder's
handling of bytes, not the Schema Registry.
"""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from finance.market.v1 import market_pb2
from finplat.kafka.errors import DecodeError
from finplat.kafka.serde import PriceUpdateDeserializer
from tests.unit.backtest.service_support import SCHEMA_ID, FakeRegistry, encode, update

PROPERTY = settings(max_examples=300, deadline=None)
# Confluent framing: magic byte 0, then the schema id as 4 big-endian bytes.
KNOWN_ID = b"\x00" + struct.pack(">I", SCHEMA_ID)
VALID = encode(update("1"))


def _decode_or_reject(value: bytes) -> market_pb2.PriceUpdate | None:
    # Any other exception fails the test: DecodeError is the one documented for bad bytes.
    try:
        return PriceUpdateDeserializer(FakeRegistry())(value)
    except DecodeError:
        return None


@PROPERTY
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_decode_error(value: bytes) -> None:
    decoded = _decode_or_reject(value)

    assert decoded is None or isinstance(decoded, market_pb2.PriceUpdate)


@PROPERTY
@given(st.binary(max_size=300))
def test_garbage_behind_a_known_schema_id_decodes_or_raises_decode_error(body: bytes) -> None:
    decoded = _decode_or_reject(KNOWN_ID + body)

    assert decoded is None or isinstance(decoded, market_pb2.PriceUpdate)


@PROPERTY
@given(st.data())
def test_a_valid_message_with_one_byte_changed_decodes_or_raises_decode_error(
    data: st.DataObject,
) -> None:
    position = data.draw(st.integers(len(KNOWN_ID), len(VALID) - 1))
    byte = data.draw(st.integers(0, 255))
    value = VALID[:position] + bytes([byte]) + VALID[position + 1 :]

    decoded = _decode_or_reject(value)

    assert decoded is None or isinstance(decoded, market_pb2.PriceUpdate)


@PROPERTY
@given(st.integers(1, 255), st.binary(min_size=4, max_size=100))
def test_a_wrong_magic_byte_is_always_rejected(magic: int, rest: bytes) -> None:
    assert _decode_or_reject(bytes([magic]) + rest) is None


@PROPERTY
@given(st.integers(0, 2**32 - 1).filter(lambda i: i != SCHEMA_ID), st.binary(max_size=100))
def test_an_unknown_schema_id_is_always_rejected(schema_id: int, body: bytes) -> None:
    assert _decode_or_reject(b"\x00" + struct.pack(">I", schema_id) + body) is None


@PROPERTY
@given(st.integers(0, len(VALID) - 1))
def test_every_truncation_of_a_valid_message_is_rejected(length: int) -> None:
    assert _decode_or_reject(VALID[:length]) is None


@PROPERTY
@given(st.binary(min_size=1, max_size=50))
def test_bytes_after_a_valid_record_are_rejected(tail: bytes) -> None:
    assert _decode_or_reject(VALID + tail) is None
