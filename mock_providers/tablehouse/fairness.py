"""Provably fair draws: anyone holding the revealed server seed can recompute every round.

The studio commits to a server seed by publishing sha256(seed) at launch; the player supplies a client seed;
each round has a nonce. Random bytes are HMAC-SHA256(key=server_seed, msg=f"{client_seed}:{nonce}:{cursor}")
for cursor 0, 1, 2, ..., read as big-endian uint32s; each draw uses rejection sampling so every value is
exactly equally likely. Roulette's pocket is the round's first draw in [0, 37); blackjack's cards are its
successive draws in [0, 52), in the order they are dealt (README, "Provably fair").
"""

import hashlib
import hmac
import secrets
from collections.abc import Iterator

_UINT32_RANGE = 2**32
POCKETS = 37
DECK = 52


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


def draws(server_seed: str, client_seed: str, nonce: int, n: int) -> Iterator[int]:
    """Uniform integers in [0, n): values at or above the largest multiple of n are discarded."""
    limit = _UINT32_RANGE - _UINT32_RANGE % n
    return (value % n for value in uint32s(server_seed, client_seed, nonce) if value < limit)


def pocket(server_seed: str, client_seed: str, nonce: int) -> int:
    return next(draws(server_seed, client_seed, nonce, POCKETS))


def cards(server_seed: str, client_seed: str, nonce: int) -> Iterator[int]:
    """The round's cards in dealing order, each 0..51 (blackjack.card_name names them)."""
    return draws(server_seed, client_seed, nonce, DECK)
