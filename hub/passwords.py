"""argon2id hashing of what the hub keeps only a hash of: players' passwords and API-key secrets.

Its cost is configurable (Config.password_hash_time_cost, password_hash_memory_kib) only so that a test suite
which registers hundreds of players need not pay a production hash for each; the defaults are argon2-cffi's
own (RFC 9106 low-memory profile: t=3, 64 MiB, 4 lanes). A hash records its parameters, so a hub verifies
hashes made at any cost."""

import functools
from dataclasses import dataclass

from argon2 import PasswordHasher

TIME_COST = 3
MEMORY_KIB = 65_536


@dataclass(frozen=True)
class Hashing:
    hasher: PasswordHasher
    # Verified against when there is no stored hash: "no such user/key" as slow as "wrong password/secret".
    dummy_hash: str


@functools.cache  # one per cost: making the dummy hash costs as much as a login
def hashing(time_cost: int, memory_kib: int) -> Hashing:
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
    return Hashing(hasher, hasher.hash("not-a-real-password"))


DEFAULT = hashing(TIME_COST, MEMORY_KIB)
