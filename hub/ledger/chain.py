"""The hash chain over each account's entries: editing, inserting or deleting an entry breaks it.

Canonical encoding (fixed forever: changing it would invalidate every stored chain):

    entry_hash = lowercase hex of SHA-256( prev_hash  ||  json )

    prev_hash  the previous entry_hash of the same account as 64 ASCII hex characters; GENESIS (64 zeros)
               for an account's first entry
    json       compact JSON array, ASCII only, no spaces:
               [account_id, "transaction_id", "currency", amount, balance_after]
               integers in base 10 (minus sign for negatives), e.g. [7,"0b9c...","USD",-100,900]

So `printf '%s%s' "$prev" '[7,"0b9c...","USD",-100,900]' | sha256sum` reproduces an entry's hash.
"""

import hashlib
import json

GENESIS = "0" * 64


def entry_hash(prev_hash: str, account_id: int, transaction_id: str, currency: str, amount: int,
               balance_after: int) -> str:
    fields = [account_id, transaction_id, currency, amount, balance_after]
    encoded = json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((prev_hash + encoded).encode("ascii")).hexdigest()
