"""Play's events: what a Play stream sends and a game session's log stores (stored as hub.records).

Every event carries the seq the game session's log gave it. A replayed bet appends copies of its round's
original events with new seqs, each naming the original in replay_of_seq (0 on an original). Money is in
the game session's currency.
"""

from dataclasses import dataclass, field

from adapters.base import Proof
from hub.errors import Reason, State
from hub.money import Money


@dataclass(frozen=True)
class PlayEvent:
    seq: int
    replay_of_seq: int = field(default=0, kw_only=True)


@dataclass(frozen=True)
class SessionOpened(PlayEvent):
    """A stream attached (Open, or Resume after its backlog): the wallet as it stands."""

    game_session_id: str
    game_id: str
    balance: Money
    bonus_balance: Money
    free_rounds_left: int


@dataclass(frozen=True)
class RoundOpened(PlayEvent):
    round_id: str
    idempotency_key: str


@dataclass(frozen=True)
class BetAccepted(PlayEvent):
    round_id: str
    transaction_id: str
    amount: Money
    balance: Money
    bonus_balance: Money
    free_round: bool  # a free round paid the stake
    free_rounds_left: int  # in this game; 0 unless free_round


@dataclass(frozen=True)
class Outcome(PlayEvent):
    round_id: str
    result: str
    win: Money
    proof: Proof


@dataclass(frozen=True)
class Settled(PlayEvent):
    """The round stood: its win, its ledger transactions and the wallet after it."""

    round_id: str
    transaction_ids: tuple[str, ...]
    win: Money
    balance: Money
    bonus_balance: Money


@dataclass(frozen=True)
class PlayError(PlayEvent):
    """A bet refused (round_id empty), or a round whose bet was refunded: the stream goes on."""

    idempotency_key: str
    round_id: str
    reason: Reason
    message: str
    state: State
    balance: Money


@dataclass(frozen=True)
class SessionClosed(PlayEvent):
    game_session_id: str


@dataclass(frozen=True)
class ActionChoice:
    action: str  # hit | stand | double | split
    extra_stake: int  # minor units of the round's currency the action adds to the stake (debited first)


@dataclass(frozen=True)
class ActionRequired(PlayEvent):
    """A multi-step round waits for the player's next action (step 0: after the deal)."""

    round_id: str
    step: int
    actions: tuple[ActionChoice, ...]
    hand: str  # the table as the studio shows it, at most 256 characters
    stake: Money  # the round's whole stake so far
    idempotency_key: str  # the bet's (step 0) or the action's that led here
    balance: Money


@dataclass(frozen=True)
class RealityCheck(PlayEvent):
    """A reminder of time and money (hub.reality): not a round event, never stored, seq always 0."""

    elapsed_seconds: int  # since the login started
    net_result: Money  # the player's cash won (+) or lost (-) in the stream's currency since the login
    bet_count: int
    interval_minutes: int
