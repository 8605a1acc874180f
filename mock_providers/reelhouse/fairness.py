"""Provably fair reel stops: anyone holding the revealed server seed can recompute every round.

The studio commits to a server seed by publishing sha256(seed) before play; the player supplies a client
seed; each round has a nonce. Random bytes are
HMAC-SHA256(key=server_seed, msg=f"{client_seed}:{nonce}:{cursor}") for cursor 0, 1, 2, ..., read as
big-endian uint32s. Each reel stop is drawn with rejection sampling so
every stop is exactly equally likely (plain modulo would favour the low stops).
"""

import hashlib
import hmac
import secrets
from collections.abc import Iterator

_UINT32_RANGE = 2**32


def new_server_seed() -> str:
    return secrets.token_hex(32)


def seed_hash(server_seed: str) -> str:
    return hashlib.sha256(server_seed.encode()).hexdigest()


def uint32s(server_seed: str, client_seed: str, nonce: int) -> Iterator[int]:
    """An endless stream of uint32s: 8 per digest, then the next cursor."""
    cursor = 0
    while True:
        message = f"{client_seed}:{nonce}:{cursor}".encode()
        digest = hmac.new(server_seed.encode(), message, hashlib.sha256).digest()
        for offset in range(0, len(digest), 4):
            yield int.from_bytes(digest[offset:offset + 4], "big")
        cursor += 1


def uniform(source: Iterator[int], n: int) -> int:
    """A uniform integer in [0, n): values at or above the largest multiple of n are discarded."""
    limit = _UINT32_RANGE - _UINT32_RANGE % n
    for value in source:
        if value < limit:
            return value % n
    raise ValueError("random source exhausted")


def reel_stops(server_seed: str, client_seed: str, nonce: int, reel_lengths: list[int]) -> list[int]:
    source = uint32s(server_seed, client_seed, nonce)
    return [uniform(source, length) for length in reel_lengths]
