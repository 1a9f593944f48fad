"""Just enough of WebSocket (RFC 6455) for the sample app to answer an upgraded connection,
and for tests and lessons to open one: the opening handshake's accept value, and reading and
writing single-frame messages. Standard library only.

Not a general WebSocket library: no fragmented messages, no extensions, no ping/pong
keep-alive. A peer that sends a fragmented frame gets a close frame with code 1003.
"""
from __future__ import annotations

import base64
import hashlib
import os
import struct

# RFC 6455 section 1.3: the server proves it read the key by hashing it with this GUID
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class FrameError(Exception):
    """The peer sent something this module does not read (a fragment, a truncated frame)."""


def new_key() -> str:
    """A client's Sec-WebSocket-Key: 16 random bytes, base64."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept value a server answers to `key`."""
    return base64.b64encode(hashlib.sha1((key.strip() + _GUID).encode("ascii")).digest()).decode("ascii")


def encode(payload: bytes, opcode: int = TEXT, mask: bool = False) -> bytes:
    """One final frame. Clients must mask their frames (`mask=True`); servers must not."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read(rfile) -> tuple[int, bytes]:
    """(opcode, payload) of the next frame from a binary file object; (CLOSE, b"") at end of stream."""
    first = rfile.read(2)
    if len(first) < 2:
        return CLOSE, b""
    fin, opcode, masked, n = first[0] & 0x80, first[0] & 0x0F, first[1] & 0x80, first[1] & 0x7F
    if not fin or opcode == 0:
        raise FrameError("fragmented messages are not supported")
    if n == 126:
        n = struct.unpack("!H", _exactly(rfile, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _exactly(rfile, 8))[0]
    key = _exactly(rfile, 4) if masked else b""
    payload = _exactly(rfile, n)
    if masked:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return opcode, payload


def _exactly(rfile, n: int) -> bytes:
    data = rfile.read(n)
    if len(data) < n:
        raise FrameError(f"the stream ended inside a frame ({len(data)} of {n} bytes)")
    return data
