"""The money of rounds: bets, wins, rollbacks and closing, with the semantics of DESIGN.md's table.

A round opens with its first bet and holds any number of bets and wins until it is closed:
OPEN -> SETTLED (some bet stood) | ROLLED_BACK (every bet was rolled back) | VOIDED.
Each operation is idempotent by its own key (bet id, win id, rollback id): the stored receipt of the
first attempt is returned for a replay, byte for byte. Everything runs in the caller's unit of work.

| case                                | answer                                                      |
| rollback of an unknown bet          | OK with the balance; the bet id is tombstoned               |
| bet whose id was tombstoned         | TRANSACTION_ROLLED_BACK                                     |
| win on a rolled-back bet            | TRANSACTION_ROLLED_BACK                                     |
| win for an unknown bet or round     | BET_NOT_FOUND                                               |
| bet or win on a closed round        | ROUND_CLOSED                                                |
| rollback after the round settled    | ROUND_ALREADY_SETTLED                                       |
| blocked player / expired session    | bets refused; wins and rollbacks still paid                 |
| self-excluded player, loss limit    | bets refused (hub.ledger.limits); wins and rollbacks paid   |
| rollback naming another player/currency | INVALID_ARGUMENT, nothing refunded                      |

Money: a bet is paid from a free round (Play only), else from cash and the active bonus in the configured
order (hub.ledger.bonuses); a win is split between cash and bonus in proportion to what its bets spent;
a rollback returns each part where it came from. When a round settles, its standing stakes count toward
the wagering of the bonus they were placed under.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from hub.clock import utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger import bonuses, free_rounds, idempotency, limits, postings
from hub.ledger.book import Book, Need, Row
from hub.ledger.schema import (
    bets,
    bonuses as bonus_rows,
    free_round_grants,
    game_sessions,
    idempotency_keys,
    ledger_transactions,
    players,
    rounds,
)
from hub.money import INT64_MAX, positive_amount

ACTIVE, ROLLED_BACK, TOMBSTONE = "ACTIVE", "ROLLED_BACK", "TOMBSTONE"
ROUND = ("operator_id", "round_id")  # a round's bets, transactions and events (Book.group)
OPEN, SETTLED, VOIDED = "OPEN", "SETTLED", "VOIDED"


@dataclass(frozen=True)
class Receipt:
    """What a round operation answers; stored as the idempotent response (the format is listed with
    every other stored one in hub.records, which this layer cannot import)."""

    round_id: str
    currency: str
    balance: int  # the player's cash right after the operation
    transaction_id: str = ""  # empty when no money moved (a tombstone, a repeated rollback)
    bonus_balance: int = 0
    free_round: bool = False  # the bet used a free round
    replayed: bool = False  # set on replays only; never stored

    def encode(self) -> bytes:
        return json.dumps({"round_id": self.round_id, "currency": self.currency, "balance": self.balance,
                           "transaction_id": self.transaction_id, "bonus_balance": self.bonus_balance,
                           "free_round": self.free_round}, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "Receipt":
        return cls(**json.loads(raw), replayed=True)


@dataclass(frozen=True)
class Bet:
    operator_id: str
    player_id: str
    currency: str
    round_id: str
    game_id: str
    bet_id: str  # the bet's idempotency key (a provider's transaction id)
    amount: int
    game_session_id: str | None = None  # checked for expiry when given
    free_rounds: bool = False  # use one of the player's free rounds in this game, if any (Play does)
    layout: str = ""  # where the stake goes (Play's BetAction.layout): part of what the key stands for

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.operator_id, self.player_id, self.currency),)

    @property
    def needs(self) -> tuple[Need, ...]:
        op, wallet = self.operator_id, (self.operator_id, self.player_id, self.currency)
        return (Need(idempotency_keys, (op, self.bet_id)), Need(bets, (op, self.bet_id)),
                Need(players, (self.player_id,), lock=False), Need(rounds, (op, self.round_id)),
                Need(bonus_rows, wallet, bonuses.WALLET),
                *limits.needs(op, self.player_id),
                *([Need(free_round_grants, wallet, free_rounds.WALLET)] if self.free_rounds else []),
                *([Need(game_sessions, (self.game_session_id,), lock=False)] if self.game_session_id else []))


@dataclass(frozen=True)
class Win:
    operator_id: str
    round_id: str
    win_id: str
    amount: int
    bet_id: str = ""  # the bet this win pays, when the provider says

    @property
    def needs(self) -> tuple[Need, ...]:
        op = self.operator_id
        return (Need(idempotency_keys, (op, self.win_id)), Need(rounds, (op, self.round_id)),
                Need(bets, (op, self.round_id), ROUND), *([Need(bets, (op, self.bet_id))] if self.bet_id else []))


@dataclass(frozen=True)
class Rollback:
    operator_id: str
    player_id: str
    currency: str
    bet_id: str
    rollback_id: str

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.operator_id, self.player_id, self.currency),)

    @property
    def needs(self) -> tuple[Need, ...]:
        op = self.operator_id
        return (Need(idempotency_keys, (op, self.rollback_id)), Need(bets, (op, self.bet_id)))


def win_key(round_id: str) -> str:
    """The key of the win that settles a round the hub asked a provider about (Play and the
    reconciler use the same one, so whichever comes second is a replay, never a second payment)."""
    return f"{round_id}:win"


def rollback_key(bet_id: str) -> str:
    """The key of the refund of a bet the hub cancels itself (after a provider failure, or reconciling)."""
    return f"{bet_id}:rollback"


def active_bets(book: Book, operator_id: str, round_id: str) -> list[Row]:
    """The round's standing bets, oldest first."""
    found = book.group(bets, ROUND, (operator_id, round_id), lambda r: r["status"] == ACTIVE)
    return sorted(found, key=lambda r: r["created_at"])


def standing_stakes(book: Book, operator_id: str, round_id: str) -> list[bonuses.Stake]:
    return [bonuses.Stake(r["amount"], r["bonus_amount"], r["bonus_id"]) for r in active_bets(book, operator_id, round_id)]


def transaction_ids(book: Book, operator_id: str, round_id: str) -> list[str]:
    """The round's ledger transactions in ledger order (this batch's are numbered at flush: last)."""
    rows = book.group(ledger_transactions, ROUND, (operator_id, round_id), lock=False)
    stored = sorted((r for r in rows if r.get("seq") is not None), key=lambda r: r["seq"])
    return [r["transaction_id"] for r in stored] + [r["transaction_id"] for r in rows if r.get("seq") is None]


def require_player(book: Book, operator_id: str, player_id: str) -> str:
    """The player's status (active | blocked); PLAYER_NOT_FOUND if the operator has no such player."""
    row = book.get(players, (player_id,), lock=False)
    if row is None or row["operator_id"] != operator_id:
        raise DomainError(Reason.PLAYER_NOT_FOUND, f"no player {quote(player_id)}")
    status: str = row["status"]
    return status


class RoundLedger:
    """Round commands, each applied by the settlement engine in a batch's Book."""

    def __init__(self, house_shards: int, bonus_spending: str = bonuses.CASH_FIRST):
        if bonus_spending not in bonuses.SPENDING_ORDERS:
            raise ValueError(f"bonus_spending must be one of {bonuses.SPENDING_ORDERS}")
        self._shards = house_shards
        self._spending = bonus_spending

    def bet(self, book: Book, cmd: Bet, now: datetime | None = None) -> Receipt:
        now = now or utcnow()
        positive_amount(cmd.currency, cmd.amount)
        # A layout joins the fingerprint only when given, so bets stored before layouts keep theirs.
        request_fp = idempotency.fingerprint("bet", cmd.player_id, cmd.currency, cmd.round_id, cmd.amount,
                                             cmd.game_session_id or "", *([cmd.layout] if cmd.layout else []))
        stored = self._stored(book, cmd.operator_id, idempotency.validate_key(cmd.bet_id), request_fp)
        if stored:
            return stored
        if self._bet_row(book, cmd.operator_id, cmd.bet_id) is not None:  # only a tombstone has no receipt
            raise DomainError(Reason.TRANSACTION_ROLLED_BACK, f"bet {quote(cmd.bet_id)} was rolled back before it arrived")
        self._check_may_bet(book, cmd, now)
        round_ = self._round(book, cmd.operator_id, cmd.round_id)
        if round_ is None:
            round_ = book.insert(rounds, {
                "round_id": cmd.round_id, "operator_id": cmd.operator_id, "game_session_id": cmd.game_session_id,
                "player_id": cmd.player_id, "game_id": cmd.game_id, "currency": cmd.currency, "status": OPEN,
                "bet_amount": 0, "win_amount": 0, "opened_at": now})
        elif round_["status"] != OPEN:
            raise DomainError(Reason.ROUND_CLOSED, f"round {quote(cmd.round_id)} is {round_['status']}")
        elif (round_["player_id"], round_["currency"]) != (cmd.player_id, cmd.currency):
            raise DomainError(Reason.INVALID_ARGUMENT, f"round {quote(cmd.round_id)} belongs to another player or currency")
        elif round_["bet_amount"] + cmd.amount > INT64_MAX:
            raise DomainError(Reason.INVALID_AMOUNT, f"round {quote(cmd.round_id)} would total more than int64 in bets")
        cash, bonus, house = self._lock_wallet(book, cmd.operator_id, cmd.player_id, cmd.currency)
        free_round_id = (free_rounds.take(book, cmd.operator_id, cmd.player_id, cmd.game_id, cmd.currency,
                                          cmd.amount, now) if cmd.free_rounds else None)
        bonus_id, cash_part, bonus_part = None, 0, 0
        if free_round_id:
            payer = [postings.Leg(postings.promotion(cmd.player_id, cmd.currency, self._shards), -cmd.amount)]
        else:
            active = bonuses.active(book, cmd.operator_id, cmd.player_id, cmd.currency, now, self._shards)
            bonus_id = active["bonus_id"] if active else None
            cash_part, bonus_part = bonuses.split_stake(
                cmd.amount, book.balance(cmd.operator_id, cash),
                book.balance(cmd.operator_id, bonus) if active else 0, self._spending)
            payer = [postings.Leg(cash, -cash_part), postings.Leg(bonus, -bonus_part)]
        transaction_id = str(uuid.uuid4())
        after = self._post(book, cmd.operator_id, cmd.player_id, cmd.currency, "bet", transaction_id,
                           cmd.round_id, cmd.bet_id, [*payer, postings.Leg(house, cmd.amount)], now)
        limits.check_losses(book, cmd.operator_id, cmd.player_id, cmd.currency, now)  # posted, cash locked
        book.insert(bets, {
            "operator_id": cmd.operator_id, "bet_id": cmd.bet_id, "round_id": cmd.round_id,
            "player_id": cmd.player_id, "currency": cmd.currency, "amount": cmd.amount, "cash_amount": cash_part,
            "bonus_amount": bonus_part, "bonus_id": bonus_id, "free_round_id": free_round_id, "status": ACTIVE,
            "transaction_id": transaction_id, "created_at": now})
        book.update(rounds, round_, bet_amount=round_["bet_amount"] + cmd.amount)
        return self._record(book, cmd.operator_id, cmd.bet_id, request_fp, Receipt(
            cmd.round_id, cmd.currency, after.cash, transaction_id, after.bonus, free_round=bool(free_round_id)))

    def win(self, book: Book, cmd: Win, now: datetime | None = None) -> Receipt:
        now = now or utcnow()
        request_fp = idempotency.fingerprint("win", cmd.round_id, cmd.amount, cmd.bet_id)
        stored = self._stored(book, cmd.operator_id, idempotency.validate_key(cmd.win_id), request_fp)
        if stored:
            return stored
        round_ = self._round(book, cmd.operator_id, cmd.round_id)
        if round_ is None:
            raise DomainError(Reason.BET_NOT_FOUND, f"no round {quote(cmd.round_id)} to pay a win on")
        if cmd.amount <= 0:  # no upper bound: a win is money owed (game limits bound it, in Play)
            raise DomainError(Reason.INVALID_AMOUNT, "a win must be positive")
        if cmd.bet_id:
            bet = self._bet_row(book, cmd.operator_id, cmd.bet_id)
            if bet is None or bet["status"] == TOMBSTONE or bet["round_id"] != cmd.round_id:
                raise DomainError(Reason.BET_NOT_FOUND, f"no bet {quote(cmd.bet_id)} in round {quote(cmd.round_id)}")
            if bet["status"] == ROLLED_BACK:
                raise DomainError(Reason.TRANSACTION_ROLLED_BACK, f"bet {quote(cmd.bet_id)} was rolled back")
            stakes = [bonuses.Stake(bet["amount"], bet["bonus_amount"], bet["bonus_id"])]
        elif not (stakes := standing_stakes(book, cmd.operator_id, cmd.round_id)):
            raise DomainError(Reason.TRANSACTION_ROLLED_BACK, f"every bet of round {quote(cmd.round_id)} was rolled back")
        if round_["status"] != OPEN:
            raise DomainError(Reason.ROUND_CLOSED, f"round {quote(cmd.round_id)} is {round_['status']}")
        if round_["win_amount"] + cmd.amount > INT64_MAX:
            raise DomainError(Reason.INVALID_AMOUNT, f"round {quote(cmd.round_id)} would total more than int64 in wins")
        player_id, currency = round_["player_id"], round_["currency"]
        cash, _, house = self._lock_wallet(book, cmd.operator_id, player_id, currency)
        cash_part, bonus_parts = bonuses.split_win(cmd.amount, stakes)
        legs = [postings.Leg(house, -cmd.amount), postings.Leg(cash, cash_part)]
        for bonus_id, part in bonus_parts.items():
            legs.append(postings.Leg(bonuses.destination(book, cmd.operator_id, bonus_id, player_id,
                                                         currency, now, self._shards), part))
        transaction_id = str(uuid.uuid4())
        after = self._post(book, cmd.operator_id, player_id, currency, "win", transaction_id,
                           cmd.round_id, cmd.win_id, legs, now)
        book.update(rounds, round_, win_amount=round_["win_amount"] + cmd.amount)
        return self._record(book, cmd.operator_id, cmd.win_id, request_fp,
                            Receipt(cmd.round_id, currency, after.cash, transaction_id, after.bonus))

    def rollback(self, book: Book, cmd: Rollback, now: datetime | None = None) -> Receipt:
        now = now or utcnow()
        request_fp = idempotency.fingerprint("rollback", cmd.bet_id, cmd.player_id, cmd.currency)
        stored = self._stored(book, cmd.operator_id, idempotency.validate_key(cmd.rollback_id), request_fp)
        if stored:
            return stored
        bet = self._bet_row(book, cmd.operator_id, cmd.bet_id)
        if bet is None:
            # The rollback overtook its bet (e.g. the bet timed out at the provider): remember the id so
            # the bet, if it ever arrives, is refused instead of charged.
            require_player(book, cmd.operator_id, cmd.player_id)
            book.insert(bets, {
                "operator_id": cmd.operator_id, "bet_id": cmd.bet_id, "round_id": None, "player_id": cmd.player_id,
                "currency": cmd.currency, "amount": 0, "cash_amount": 0, "bonus_amount": 0, "status": TOMBSTONE,
                "created_at": now})
            receipt = self._receipt_now(book, cmd.operator_id, "", cmd.player_id, cmd.currency)
        elif (bet["player_id"], bet["currency"]) != (cmd.player_id, cmd.currency):
            raise DomainError(Reason.INVALID_ARGUMENT,
                              f"bet {quote(cmd.bet_id)} belongs to another player or currency")
        elif bet["status"] != ACTIVE:  # already rolled back or tombstoned under another rollback id
            receipt = self._receipt_now(book, cmd.operator_id, bet["round_id"] or "", bet["player_id"], bet["currency"])
        else:
            round_ = self._round(book, cmd.operator_id, bet["round_id"])
            if round_ is not None and round_["status"] == SETTLED:
                raise DomainError(Reason.ROUND_ALREADY_SETTLED, f"round {quote(bet['round_id'])} is settled")
            receipt = self._refund(book, bet, cmd.rollback_id, now)
        return self._record(book, cmd.operator_id, cmd.rollback_id, request_fp, receipt)

    def close(self, book: Book, operator_id: str, round_id: str, now: datetime | None = None,
              void: bool = False) -> str:
        """Close an open round (idempotent): SETTLED if a bet stood, else ROLLED_BACK; returns the status."""
        now = now or utcnow()
        round_ = self._round(book, operator_id, round_id)
        if round_ is None:
            raise DomainError(Reason.ROUND_NOT_FOUND, f"no round {quote(round_id)}")
        if round_["status"] != OPEN:
            status: str = round_["status"]
            return status
        stakes = standing_stakes(book, operator_id, round_id)
        status = VOIDED if void else SETTLED if stakes else ROLLED_BACK
        book.update(rounds, round_, status=status, closed_at=now)
        if status == SETTLED:
            wagered: dict[str, int] = {}
            for stake in stakes:
                if stake.bonus_id:
                    wagered[stake.bonus_id] = wagered.get(stake.bonus_id, 0) + stake.amount
            for bonus_id, amount in wagered.items():
                bonuses.wager(book, operator_id, bonus_id, amount, now, self._shards)
        return status

    # -- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def _stored(book: Book, operator_id: str, key: str, request_fp: str) -> Receipt | None:
        stored = idempotency.lookup(book, operator_id, key, request_fp)
        return Receipt.decode(stored) if stored is not None else None

    @staticmethod
    def _record(book: Book, operator_id: str, key: str, request_fp: str, receipt: Receipt) -> Receipt:
        idempotency.record(book, operator_id, key, request_fp, receipt.encode())
        return receipt

    @staticmethod
    def _round(book: Book, operator_id: str, round_id: str) -> Row | None:
        return book.get(rounds, (operator_id, round_id))

    @staticmethod
    def _bet_row(book: Book, operator_id: str, bet_id: str) -> Row | None:
        return book.get(bets, (operator_id, bet_id))

    def _check_may_bet(self, book: Book, cmd: Bet, now: datetime) -> None:
        if require_player(book, cmd.operator_id, cmd.player_id) != "active":
            raise DomainError(Reason.PLAYER_BLOCKED, "the player is blocked from betting")
        limits.check_not_excluded(book, cmd.operator_id, cmd.player_id, now)
        if cmd.game_session_id is not None:
            session = book.get(game_sessions, (cmd.game_session_id,), lock=False)
            if session is None or session["operator_id"] != cmd.operator_id or session["expires_at"] <= now:
                raise DomainError(Reason.GAME_SESSION_CLOSED, "game session expired; launch the game again")

    def _receipt_now(self, book: Book, operator_id: str, round_id: str, player_id: str,
                     currency: str) -> Receipt:
        """The answer when no money moves: the wallet as it stands."""
        wallet = postings.wallet(book, operator_id, player_id, currency)
        return Receipt(round_id, currency, wallet.cash, bonus_balance=wallet.bonus)

    def _lock_wallet(self, book: Book, operator_id: str, player_id: str,
                     currency: str) -> tuple[postings.AccountRef, postings.AccountRef, postings.AccountRef]:
        """Lock the player's cash and bonus (the house shard is written at flush), before any bonus or
        grant row."""
        refs = (postings.player_cash(player_id, currency), postings.player_bonus(player_id, currency),
                postings.house(player_id, currency, self._shards))
        book.lock_accounts(operator_id, refs)
        return refs

    def _refund(self, book: Book, bet: Row, key: str, now: datetime) -> Receipt:
        """Return each part of a bet's stake where it came from; the bet becomes ROLLED_BACK."""
        operator_id, player_id, currency = bet["operator_id"], bet["player_id"], bet["currency"]
        cash, _, house = self._lock_wallet(book, operator_id, player_id, currency)
        legs = [postings.Leg(house, -bet["amount"]), postings.Leg(cash, bet["cash_amount"])]
        if bet["bonus_amount"]:
            legs.append(postings.Leg(bonuses.destination(book, operator_id, bet["bonus_id"], player_id,
                                                         currency, now, self._shards), bet["bonus_amount"]))
        free = bet["amount"] - bet["cash_amount"] - bet["bonus_amount"]
        if free:
            legs.append(postings.Leg(postings.promotion(player_id, currency, self._shards), free))
        if bet["free_round_id"]:
            free_rounds.give_back(book, operator_id, bet["free_round_id"])
        transaction_id = str(uuid.uuid4())
        after = self._post(book, operator_id, player_id, currency, "rollback", transaction_id,
                           bet["round_id"], key, legs, now)
        book.update(bets, bet, status=ROLLED_BACK)
        return Receipt(bet["round_id"], currency, after.cash, transaction_id, after.bonus)

    @staticmethod
    def _post(book: Book, operator_id: str, player_id: str, currency: str, kind: str, transaction_id: str,
              round_id: str, key: str, legs: list[postings.Leg], now: datetime) -> postings.Balances:
        return postings.post(
            book, operator_id=operator_id, transaction_id=transaction_id, kind=kind, player_id=player_id,
            currency=currency, round_id=round_id, idempotency_key=key,
            legs=[leg for leg in legs if leg.amount], now=now)
