"""Just enough of the protocol buffers wire format to read a message without generated code.

A serialized message is a sequence of fields, each a varint key ``number << 3 | wire type``
followed by its value: wire type 0 a varint, 1 eight little-endian bytes, 2 a varint
length and that many bytes (strings, bytes, embedded messages, packed repeated fields),
5 four little-endian bytes; 3 and 4 (groups) are obsolete and rejected. Fields may appear
in any order and repeat; for a singular field the last value wins.
"""
from __future__ import annotations

import struct
from typing import Iterator

VARINT, I64, LEN, I32 = 0, 1, 2, 5
Value = int | bytes


class ProtoDecodeError(ValueError):
    """The bytes are not a well-formed protocol buffers message."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the base-128 varint at ``pos``."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoDecodeError("message ends inside a varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise ProtoDecodeError("varint longer than 10 bytes")


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, Value]]:
    """(field number, wire type, raw value) of every field: an int for varints and fixed
    widths (unsigned bits), bytes for length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoDecodeError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == I64:
            if pos + 8 > len(buf):
                raise ProtoDecodeError(f"field {number}: message ends inside a 64-bit value")
            (value,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
        elif wire == LEN:
            size, pos = read_varint(buf, pos)
            if pos + size > len(buf):
                raise ProtoDecodeError(f"field {number}: length {size} runs past the end of the message")
            value = bytes(buf[pos:pos + size])
            pos += size
        elif wire == I32:
            if pos + 4 > len(buf):
                raise ProtoDecodeError(f"field {number}: message ends inside a 32-bit value")
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        else:
            raise ProtoDecodeError(f"field {number}: unsupported wire type {wire}")
        yield number, wire, value


def fields(buf: bytes) -> dict[int, list[tuple[int, Value]]]:
    """Field number -> [(wire type, raw value), ...] in message order."""
    out: dict[int, list[tuple[int, Value]]] = {}
    for number, wire, value in iter_fields(buf):
        out.setdefault(number, []).append((wire, value))
    return out


def as_double(wire: int, value: Value) -> float:
    """A ``double`` field's value."""
    if wire != I64:
        raise ProtoDecodeError(f"expected a double (wire type 1), got wire type {wire}")
    return struct.unpack("<d", struct.pack("<Q", value))[0]


def as_int32(wire: int, value: Value) -> int:
    """An ``int32``/``int64`` field's value (negative numbers are 10-byte two's complement)."""
    if wire != VARINT:
        raise ProtoDecodeError(f"expected a varint (wire type 0), got wire type {wire}")
    assert isinstance(value, int)
    return value - (1 << 64) if value >= 1 << 63 else value


def as_bytes(wire: int, value: Value) -> bytes:
    """A ``bytes``/``string``/message field's value."""
    if wire != LEN:
        raise ProtoDecodeError(f"expected a length-delimited field (wire type 2), got wire type {wire}")
    assert isinstance(value, bytes)
    return value
