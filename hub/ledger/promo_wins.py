"""Promo wins: payouts a studio issues on its own, with no bet (free-spin campaigns, tournaments, jackpots).

The operator funds them: one ledger transaction (kind promo_win) moves the amount from the operator's
promotion shard to the player's cash. Idempotent by the studio's key; a blocked player is still paid
(money owed is always paid), an unknown one is PLAYER_NOT_FOUND.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from hub.clock import utcnow
from hub.ledger import idempotency, postings
from hub.ledger.book import Book, Need
from hub.ledger.rounds import Receipt, require_player
from hub.ledger.schema import idempotency_keys, players
from hub.money import positive_amount

KIND = "promo_win"


@dataclass(frozen=True)
class PromoWin:
    operator_id: str
    player_id: str
    currency: str
    promo_id: str  # the payout's idempotency key
    amount: int
    promo_kind: str  # free_spins | tournament | jackpot
    campaign_id: str

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.operator_id, self.player_id, self.currency),)

    @property
    def needs(self) -> tuple[Need, ...]:
        return (Need(idempotency_keys, (self.operator_id, self.promo_id)),
                Need(players, (self.player_id,), lock=False))


def pay(book: Book, cmd: PromoWin, house_shards: int, now: datetime | None = None) -> Receipt:
    now = now or utcnow()
    positive_amount(cmd.currency, cmd.amount)
    request_fp = idempotency.fingerprint(KIND, cmd.player_id, cmd.currency, cmd.amount, cmd.promo_kind,
                                         cmd.campaign_id)
    stored = idempotency.lookup(book, cmd.operator_id, idempotency.validate_key(cmd.promo_id), request_fp)
    if stored is not None:
        return Receipt.decode(stored)
    require_player(book, cmd.operator_id, cmd.player_id)
    transaction_id = str(uuid.uuid4())
    after = postings.post(
        book, operator_id=cmd.operator_id, transaction_id=transaction_id, kind=KIND, player_id=cmd.player_id,
        currency=cmd.currency, round_id=None, idempotency_key=cmd.promo_id, now=now,
        legs=[postings.Leg(postings.promotion(cmd.player_id, cmd.currency, house_shards), -cmd.amount),
              postings.Leg(postings.player_cash(cmd.player_id, cmd.currency), cmd.amount)])
    receipt = Receipt("", cmd.currency, after.cash, transaction_id, after.bonus)
    idempotency.record(book, cmd.operator_id, cmd.promo_id, request_fp, receipt.encode())
    return receipt
