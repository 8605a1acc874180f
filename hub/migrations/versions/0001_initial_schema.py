"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 18:49:14.893321
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=36), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('operator_id', 'kind', 'owner', 'currency', name=op.f('uq_accounts_operator_id_kind_owner_currency'))
    )
    op.create_table('game_sessions',
    sa.Column('game_session_id', sa.String(length=36), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('game_id', sa.String(length=128), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('client_seed', sa.String(length=128), nullable=False),
    sa.Column('server_seed_hash', sa.String(length=64), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('expires_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('game_session_id', name=op.f('pk_game_sessions'))
    )
    op.create_table('idempotency_keys',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('response', sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), 'mariadb').with_variant(mysql.MEDIUMBLOB(), 'mysql'), nullable=True),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('operator_id', 'idempotency_key', name=op.f('pk_idempotency_keys'))
    )
    op.create_table('ledger_transactions',
    sa.Column('transaction_id', sa.String(length=36), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.Column('round_id', sa.String(length=36), nullable=True),
    sa.Column('idempotency_key', sa.String(length=160), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('transaction_id', name=op.f('pk_ledger_transactions')),
    sa.UniqueConstraint('operator_id', 'idempotency_key', name=op.f('uq_ledger_transactions_operator_id_idempotency_key'))
    )
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_transactions_operator_id_player_id_created_at'), ['operator_id', 'player_id', 'created_at'], unique=False)

    op.create_table('operators',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('operator_id', name=op.f('pk_operators'))
    )
    op.create_table('play_events',
    sa.Column('game_session_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('round_id', sa.String(length=36), nullable=True),
    sa.Column('payload', sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), 'mariadb').with_variant(mysql.MEDIUMBLOB(), 'mysql'), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('game_session_id', 'seq', name=op.f('pk_play_events'))
    )
    with op.batch_alter_table('play_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_play_events_round_id'), ['round_id'], unique=False)

    op.create_table('player_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('expires_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_player_sessions'))
    )
    op.create_table('players',
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('player_id', name=op.f('pk_players')),
    sa.UniqueConstraint('operator_id', 'username', name=op.f('uq_players_operator_id_username'))
    )
    op.create_table('postings',
    sa.Column('posting_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('transaction_id', sa.String(length=36), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('posting_id', name=op.f('pk_postings'))
    )
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_postings_account_id_posting_id'), ['account_id', 'posting_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_postings_transaction_id'), ['transaction_id'], unique=False)

    op.create_table('rounds',
    sa.Column('round_id', sa.String(length=36), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('game_session_id', sa.String(length=36), nullable=False),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('game_id', sa.String(length=128), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('bet_amount', sa.BigInteger(), nullable=False),
    sa.Column('win_amount', sa.BigInteger(), nullable=False),
    sa.Column('bet_idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('provider_round_id', sa.String(length=128), nullable=True),
    sa.Column('result', sa.String(length=256), nullable=True),
    sa.Column('proof', sa.Text(), nullable=True),
    sa.Column('opened_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('closed_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.PrimaryKeyConstraint('round_id', name=op.f('pk_rounds')),
    sa.UniqueConstraint('operator_id', 'bet_idempotency_key', name=op.f('uq_rounds_operator_id_bet_idempotency_key'))
    )
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rounds_operator_id_status_opened_at'), ['operator_id', 'status', 'opened_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rounds_operator_id_status_opened_at'))

    op.drop_table('rounds')
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_postings_transaction_id'))
        batch_op.drop_index(batch_op.f('ix_postings_account_id_posting_id'))

    op.drop_table('postings')
    op.drop_table('players')
    op.drop_table('player_sessions')
    with op.batch_alter_table('play_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_play_events_round_id'))

    op.drop_table('play_events')
    op.drop_table('operators')
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_transactions_operator_id_player_id_created_at'))

    op.drop_table('ledger_transactions')
    op.drop_table('idempotency_keys')
    op.drop_table('game_sessions')
    op.drop_table('accounts')
