"""Page cursors: opaque, and valid only for the listing that handed them out.

A cursor names the last memory of a page by its rowid, which counts every memory ever
stored on the server, all accounts together: handed out as it is, two cursors a minute apart
would tell an account how much everyone else stored meanwhile. So the rowid is enciphered
with a keyed pseudorandom permutation of 64-bit numbers (a four-round Feistel network over
HMAC-SHA256, a construction proven to be a pseudorandom permutation) under a secret kept in
the database, with a different key for every listing (account, user, agent, session, keys,
filters), and carries a tag binding it to that listing. A cursor of another listing, or any
made-up string, is a 422.

Example:
    >>> secret = bytes(32)
    >>> c = encode(secret, b"listing", 41)
    >>> decode(secret, b"listing", c, "cursor")
    41
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from .errors import validation_error

__all__ = ["decode", "encode"]

_ROUNDS = 4
_TAG_BYTES = 10
_MASK32 = 0xFFFFFFFF


def _round(secret: bytes, listing: bytes, index: int, half: int) -> int:
    message = b"round%d:" % index + half.to_bytes(4, "big") + listing
    return int.from_bytes(hmac.digest(secret, message, hashlib.sha256)[:4], "big")


def _permute(secret: bytes, listing: bytes, value: int, inverse: bool = False) -> int:
    left, right = value >> 32, value & _MASK32
    rounds = range(_ROUNDS - 1, -1, -1) if inverse else range(_ROUNDS)
    for i in rounds:
        if inverse:
            left, right = right ^ _round(secret, listing, i, left), left
        else:
            left, right = right, left ^ _round(secret, listing, i, right)
    return (left << 32) | right


def _tag(secret: bytes, listing: bytes, block: bytes) -> bytes:
    return hmac.digest(secret, b"tag:" + block + listing, hashlib.sha256)[:_TAG_BYTES]


def encode(secret: bytes, listing: bytes, rowid: int) -> str:
    """The cursor for "after ``rowid``" in ``listing``."""
    block = _permute(secret, listing, rowid).to_bytes(8, "big")
    return base64.urlsafe_b64encode(block + _tag(secret, listing, block)).decode().rstrip("=")


def decode(secret: bytes, listing: bytes, cursor: str, field: str) -> int:
    """The rowid of a cursor :func:`encode` made for ``listing``, or a 422 naming ``field``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (ValueError, binascii.Error):
        raw = b""
    block, tag = raw[:8], raw[8:]
    if len(raw) != 8 + _TAG_BYTES or not hmac.compare_digest(tag, _tag(secret, listing, block)):
        raise validation_error(
            f"{field}: not a cursor this server returned for this listing", field
        )
    return _permute(secret, listing, int.from_bytes(block, "big"), inverse=True)
