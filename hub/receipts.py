"""What the cashier and promotions answer for a call made with an idempotency key: stored with its
effect (as hub.records) and given again, equal, when the key is replayed. Bonus and FreeRoundGrant are
also what GetBonus, ForfeitBonus and GetBalance show."""

from dataclasses import dataclass
from datetime import datetime

from hub.money import Money


@dataclass(frozen=True)
class DepositReceipt:
    transaction_id: str
    balance: Money  # the player's cash after it


@dataclass(frozen=True)
class WithdrawalReceipt:
    transaction_id: str  # cash -> the player's hold
    balance: Money
    withdrawal_id: str
    status: str  # PENDING: the operator approves or rejects it later (hub.wallet)


@dataclass(frozen=True)
class Bonus:
    bonus_id: str
    player_id: str
    amount: Money  # granted
    balance: Money  # what is left while ACTIVE, else zero
    wagering_requirement: Money
    wagered: Money
    status: str  # ACTIVE | CONVERTED | EXPIRED | FORFEITED (hub.ledger.bonuses)
    expires_at: datetime  # naive UTC, as everywhere in the hub
    created_at: datetime
    closed_at: datetime | None
    closing_transaction_id: str  # empty while ACTIVE


@dataclass(frozen=True)
class BonusGrant:
    transaction_id: str
    bonus: Bonus


@dataclass(frozen=True)
class FreeRoundGrant:
    grant_id: str
    player_id: str
    game_id: str
    bet: Money  # the stake of each round, paid by the operator
    rounds: int
    rounds_left: int
    expires_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class ActionReceipt:
    """Stored under a Play action's idempotency key when its step is claimed: a replay finds the step."""

    round_id: str
    step: int
    action: str
