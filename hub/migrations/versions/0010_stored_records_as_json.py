"""stored records as JSON: Play events and idempotent responses leave protobuf (hub.records)

Revision ID: 0010
Revises: 0009

Rows stored in protobuf encodings are rewritten as the JSON records of hub.records (version 1), so
Resume, replays of old keys and GetRound read them as they read new rows:
  play_events.payload           a serialized casinohub.v1.PlayResponse
  idempotency_keys.response     a serialized DepositResponse, WithdrawResponse, GrantBonusResponse or
                                GrantFreeRoundsResponse (which one: the ledger transaction made under the
                                same key says; a key that made none is a free-round grant's)
  rounds.proof                  a JSON object without version or type
Round receipts (bets, wins, rollbacks) were JSON already and stay as they are. The conversion is written
out here rather than imported from hub.records: a migration is history, and what it writes must not
change when the formats later do. Rows already converted are skipped, so a run cut short is finished
by the next one. Every row is read and rewritten: on a large database, run `hub migrate` in a
maintenance window, with every older hub stopped (it would write protobuf rows again).
"""
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from casinohub.v1 import common_pb2, game_service_pb2 as game_pb, wallet_service_pb2 as wallet_pb
from hub.errors import Reason  # an error event's code and retryability follow from its reason

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

PAGE = 1000
VERSION = 1
Fields = dict[str, Any]


def _json(fields: Fields) -> bytes:
    return json.dumps(fields, separators=(',', ':'), sort_keys=True).encode()


def _rows(table: str, keys: tuple[str, str], column: str) -> Iterator[list[Any]]:
    """The table's rows with column set, in pages, in primary-key order."""
    conn = op.get_bind()
    a, b = keys
    where = f'{column} IS NOT NULL'
    after: tuple[Any, Any] | None = None
    while True:
        cursor = f' AND ({a} > :a OR ({a} = :a AND {b} > :b))' if after else ''
        page = conn.execute(sa.text(f'SELECT {a}, {b}, {column} FROM {table} WHERE {where}{cursor} '
                                    f'ORDER BY {a}, {b} LIMIT {PAGE}'),
                            {'a': after[0], 'b': after[1]} if after else {}).all()
        if not page:
            return
        yield page
        after = page[-1][0], page[-1][1]


def _rewrite(table: str, keys: tuple[str, str], column: str, convert: Callable[[Any, Any, Any], Any]) -> None:
    """Set column to convert(key a, key b, value) on every row where that is not None."""
    a, b = keys
    update = sa.text(f'UPDATE {table} SET {column} = :value WHERE {a} = :a AND {b} = :b')
    for page in _rows(table, keys, column):
        changed = [{'a': ka, 'b': kb, 'value': new} for ka, kb, value in page
                   if (new := convert(ka, kb, value)) is not None]
        if changed:
            op.get_bind().execute(update, changed)


def _is_json(value: bytes | str) -> bool:
    """JSON, not protobuf: every protobuf message stored here starts with a field tag, never "{"."""
    return (value.encode() if isinstance(value, str) else bytes(value)).startswith(b'{')


def _is_record(value: bytes | str) -> bool:
    """A record of hub.records (round receipts and old proofs are JSON without a version)."""
    return _is_json(value) and 'v' in json.loads(value)


# -- protobuf -> records ----------------------------------------------------------------------------------

def _money(message: Message, *names: str) -> Fields:
    """The amounts named, and their one currency."""
    fields: Fields = {}
    currencies = set()
    for name in names:
        money: common_pb2.Money = getattr(message, name)
        fields[name] = money.amount_minor
        if money.currency:
            currencies.add(money.currency)
        elif money.amount_minor:
            raise ValueError(f'{name}: an amount of no currency in {message}')
    if len(currencies) != 1:
        raise ValueError(f'not one currency in {message}')
    fields['currency'] = currencies.pop()
    return fields


def _time(message: Message, name: str) -> str | None:
    if not message.HasField(name):
        return None
    return getattr(message, name).ToDatetime().isoformat(timespec='microseconds') + 'Z'


def _proof(p: game_pb.ProvablyFairProof) -> Fields:
    return {'server_seed_hash': p.server_seed_hash, 'client_seed': p.client_seed, 'nonce': p.nonce,
            'server_seed': p.server_seed}


def event_record(raw: bytes) -> bytes:
    message = game_pb.PlayResponse.FromString(raw)
    kind = message.WhichOneof('event')
    e = getattr(message, kind)
    fields: Fields = {'v': VERSION, 'type': kind, 'seq': message.seq, 'replay_of_seq': message.replay_of_seq}
    if kind == 'session_opened':
        fields |= {'game_session_id': e.game_session_id, 'game_id': e.game_id,
                   'free_rounds_left': e.free_rounds_left, **_money(e, 'balance', 'bonus_balance')}
    elif kind == 'round_opened':
        fields |= {'round_id': e.round_id, 'idempotency_key': e.idempotency_key}
    elif kind == 'bet_accepted':
        fields |= {'round_id': e.round_id, 'transaction_id': e.transaction_id, 'free_round': e.free_round,
                   'free_rounds_left': e.free_rounds_left, **_money(e, 'amount', 'balance', 'bonus_balance')}
    elif kind == 'outcome':
        fields |= {'round_id': e.round_id, 'result': e.result, 'proof': _proof(e.proof), **_money(e, 'win')}
    elif kind == 'settled':
        fields |= {'round_id': e.round_id, 'transaction_ids': list(e.transaction_ids),
                   **_money(e, 'win', 'balance', 'bonus_balance')}
    elif kind == 'error':
        fields |= {'idempotency_key': e.idempotency_key, 'round_id': e.round_id, 'reason': e.error.reason,
                   'message': e.error.message,
                   'state': common_pb2.ApplyState.Name(e.error.state).removeprefix('APPLY_STATE_'),
                   **_money(e, 'balance')}
    elif kind == 'session_closed':
        fields |= {'game_session_id': e.game_session_id}
    else:
        raise ValueError(f'a Play event of no known kind: {message}')
    return _json(fields)


def _bonus(b: wallet_pb.Bonus) -> Fields:
    return {'bonus_id': b.bonus_id, 'player_id': b.player_id,
            'status': wallet_pb.BonusStatus.Name(b.status).removeprefix('BONUS_STATUS_'),
            'expires_at': _time(b, 'expires_at'), 'created_at': _time(b, 'created_at'),
            'closed_at': _time(b, 'closed_at'), 'closing_transaction_id': b.closing_transaction_id,
            **_money(b, 'amount', 'balance', 'wagering_requirement', 'wagered')}


def response_record(raw: bytes, ledger_kind: str | None, ledger_transaction_id: str | None) -> bytes:
    """ledger_kind, ledger_transaction_id: of the ledger transaction made under the same key, if any."""
    fields: Fields
    if ledger_kind == 'deposit':
        d = wallet_pb.DepositResponse.FromString(raw)
        fields = {'type': 'deposit', 'transaction_id': d.transaction_id, **_money(d, 'balance')}
    elif ledger_kind == 'withdrawal':
        w = wallet_pb.WithdrawResponse.FromString(raw)
        fields = {'type': 'withdrawal', 'transaction_id': w.transaction_id, 'withdrawal_id': w.withdrawal_id,
                  'status': wallet_pb.WithdrawalStatus.Name(w.status).removeprefix('WITHDRAWAL_STATUS_'),
                  **_money(w, 'balance')}
    elif ledger_kind == 'bonus_granted':
        g = wallet_pb.GrantBonusResponse.FromString(raw)
        fields = {'type': 'bonus_grant', 'transaction_id': g.transaction_id, 'bonus': _bonus(g.bonus)}
    else:
        grant = game_pb.GrantFreeRoundsResponse.FromString(raw).grant
        if not grant.grant_id:
            raise ValueError(f'a stored response of no known kind: {raw!r}')
        return _json({'v': VERSION, 'type': 'free_round_grant', 'grant_id': grant.grant_id,
                      'player_id': grant.player_id, 'game_id': grant.game_id, 'rounds': grant.rounds,
                      'rounds_left': grant.rounds_left, 'expires_at': _time(grant, 'expires_at'),
                      'created_at': _time(grant, 'created_at'), **_money(grant, 'bet')})
    if fields['transaction_id'] != ledger_transaction_id:
        raise ValueError(f'stored {fields["type"]} names transaction {fields["transaction_id"]!r}, '
                         f'its key made {ledger_transaction_id!r}')
    return _json({'v': VERSION, **fields})


def proof_record(text: str) -> str:
    return _json({'v': VERSION, 'type': 'proof', **json.loads(text)}).decode()


# -- records -> protobuf (downgrade) ----------------------------------------------------------------------

def _pb_money(f: Fields, name: str) -> common_pb2.Money:
    return common_pb2.Money(currency=f['currency'], amount_minor=f[name])


def _pb_time(text: str | None) -> Timestamp | None:
    if text is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(text.removesuffix('Z')).replace(tzinfo=UTC))
    return stamp


def event_message(raw: bytes) -> bytes:
    f = json.loads(raw)
    kind = f['type']
    if kind == 'session_opened':
        event: Message = game_pb.SessionOpened(
            game_session_id=f['game_session_id'], game_id=f['game_id'], balance=_pb_money(f, 'balance'),
            bonus_balance=_pb_money(f, 'bonus_balance'), free_rounds_left=f['free_rounds_left'])
    elif kind == 'round_opened':
        event = game_pb.RoundOpened(round_id=f['round_id'], idempotency_key=f['idempotency_key'])
    elif kind == 'bet_accepted':
        event = game_pb.BetAccepted(
            round_id=f['round_id'], transaction_id=f['transaction_id'], amount=_pb_money(f, 'amount'),
            balance=_pb_money(f, 'balance'), bonus_balance=_pb_money(f, 'bonus_balance'),
            free_round=f['free_round'], free_rounds_left=f['free_rounds_left'])
    elif kind == 'outcome':
        event = game_pb.Outcome(round_id=f['round_id'], result=f['result'], win=_pb_money(f, 'win'),
                                proof=game_pb.ProvablyFairProof(**f['proof']))
    elif kind == 'settled':
        event = game_pb.Settled(round_id=f['round_id'], transaction_ids=f['transaction_ids'],
                                win=_pb_money(f, 'win'), balance=_pb_money(f, 'balance'),
                                bonus_balance=_pb_money(f, 'bonus_balance'))
    elif kind == 'error':
        reason = Reason[f['reason']]
        event = game_pb.PlayError(
            idempotency_key=f['idempotency_key'], round_id=f['round_id'], balance=_pb_money(f, 'balance'),
            error=common_pb2.ErrorDetail(code=reason.code.value[0], reason=reason.name, message=f['message'],
                                         retryable=reason.retryable,
                                         state=common_pb2.ApplyState.Value(f'APPLY_STATE_{f["state"]}')))
    else:
        event = game_pb.SessionClosed(game_session_id=f['game_session_id'])
    message = game_pb.PlayResponse(seq=f['seq'], replay_of_seq=f['replay_of_seq'])
    getattr(message, kind).CopyFrom(event)
    return message.SerializeToString(deterministic=True)


def response_message(raw: bytes) -> bytes:
    f = json.loads(raw)
    kind = f['type']
    if kind == 'deposit':
        message: Message = wallet_pb.DepositResponse(transaction_id=f['transaction_id'], balance=_pb_money(f, 'balance'))
    elif kind == 'withdrawal':
        message = wallet_pb.WithdrawResponse(
            transaction_id=f['transaction_id'], balance=_pb_money(f, 'balance'), withdrawal_id=f['withdrawal_id'],
            status=wallet_pb.WithdrawalStatus.Value(f'WITHDRAWAL_STATUS_{f["status"]}'))
    elif kind == 'bonus_grant':
        b = f['bonus']
        message = wallet_pb.GrantBonusResponse(transaction_id=f['transaction_id'], bonus=wallet_pb.Bonus(
            bonus_id=b['bonus_id'], player_id=b['player_id'], amount=_pb_money(b, 'amount'),
            balance=_pb_money(b, 'balance'), wagering_requirement=_pb_money(b, 'wagering_requirement'),
            wagered=_pb_money(b, 'wagered'), status=wallet_pb.BonusStatus.Value(f'BONUS_STATUS_{b["status"]}'),
            expires_at=_pb_time(b['expires_at']), created_at=_pb_time(b['created_at']),
            closed_at=_pb_time(b['closed_at']), closing_transaction_id=b['closing_transaction_id']))
    else:
        message = game_pb.GrantFreeRoundsResponse(grant=common_pb2.FreeRoundGrant(
            grant_id=f['grant_id'], player_id=f['player_id'], game_id=f['game_id'], bet=_pb_money(f, 'bet'),
            rounds=f['rounds'], rounds_left=f['rounds_left'], expires_at=_pb_time(f['expires_at']),
            created_at=_pb_time(f['created_at'])))
    return message.SerializeToString(deterministic=True)


def proof_text(text: str) -> str:
    f = json.loads(text)
    return json.dumps({'server_seed_hash': f['server_seed_hash'], 'client_seed': f['client_seed'],
                       'nonce': f['nonce'], 'server_seed': f['server_seed']})


# -- the migration ----------------------------------------------------------------------------------------

def _ledger_transaction(operator_id: str, key: str) -> tuple[str | None, str | None]:
    found = op.get_bind().execute(sa.text(
        "SELECT kind, transaction_id FROM ledger_transactions WHERE operator_id = :operator AND idempotency_key = :key"
        " AND kind IN ('deposit', 'withdrawal', 'bonus_granted')"), {'operator': operator_id, 'key': key}).first()
    return (found[0], found[1]) if found else (None, None)


def upgrade() -> None:
    _rewrite('play_events', ('game_session_id', 'seq'), 'payload',
             lambda _s, _q, payload: None if _is_json(payload) else event_record(bytes(payload)))
    # Round receipts are JSON already: left alone.
    _rewrite('idempotency_keys', ('operator_id', 'idempotency_key'), 'response',
             lambda operator_id, key, response: None if _is_json(response) else response_record(
                 bytes(response), *_ledger_transaction(operator_id, key)))
    _rewrite('rounds', ('operator_id', 'round_id'), 'proof',
             lambda _o, _r, proof: None if _is_record(proof) else proof_record(proof))


def downgrade() -> None:
    _rewrite('play_events', ('game_session_id', 'seq'), 'payload',
             lambda _s, _q, payload: event_message(bytes(payload)) if _is_record(payload) else None)
    _rewrite('idempotency_keys', ('operator_id', 'idempotency_key'), 'response',
             lambda _o, _k, response: response_message(bytes(response)) if _is_record(response) else None)
    _rewrite('rounds', ('operator_id', 'round_id'), 'proof',
             lambda _o, _r, proof: proof_text(proof) if _is_record(proof) else None)
