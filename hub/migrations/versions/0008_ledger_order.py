"""ledger order: number ledger transactions in the order the ledger applied them

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 20:10:00.000000

ledger_transactions gets an auto-increment primary key, seq (transaction_id stays unique), and the
history is listed by it. Existing rows are numbered in the order of their first posting: posting ids are
also assigned while post() holds the accounts, so for one player they follow the order the ledger
applied its transactions, which created_at (taken before the locks) does not on MariaDB. The table is
copied into its new shape, on both databases.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

NEW = 'ledger_transactions_0008'
COLUMNS = ('transaction_id', 'operator_id', 'kind', 'player_id', 'currency', 'amount', 'balance_after',
           'bonus_amount', 'bonus_balance_after', 'round_id', 'idempotency_key', 'created_at')
TEXT = {f'{dialect}_{option}': value for dialect in ('mysql', 'mariadb')
        for option, value in (('charset', 'utf8mb4'), ('collate', 'utf8mb4_nopad_bin'))}


def _create(name: str, seq: list[sa.Column], *keys: sa.Constraint) -> None:
    timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb')
    op.create_table(
        name, *seq,
        sa.Column('transaction_id', sa.String(length=36), nullable=False),
        sa.Column('operator_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('player_id', sa.String(length=36), nullable=False),
        sa.Column('currency', sa.String(length=8), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('balance_after', sa.BigInteger(), nullable=False),
        sa.Column('bonus_amount', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('bonus_balance_after', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('round_id', sa.String(length=36), nullable=True),
        sa.Column('idempotency_key', sa.String(length=160), nullable=False),
        sa.Column('created_at', timestamp, nullable=False),
        *keys,
        sa.UniqueConstraint('operator_id', 'idempotency_key',
                            name='uq_ledger_transactions_operator_id_idempotency_key'),
        **TEXT)


def _replace_with(name: str, indexes: list[list[str]]) -> None:
    op.drop_table('ledger_transactions')  # and its indexes, so the new ones can take their names
    op.rename_table(name, 'ledger_transactions')
    for columns in indexes:
        op.create_index(f"ix_ledger_transactions_{'_'.join(columns)}", 'ledger_transactions', columns)


def upgrade() -> None:
    _create(NEW, [sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True)],
            sa.PrimaryKeyConstraint('seq', name='pk_ledger_transactions'),
            sa.UniqueConstraint('transaction_id', name='uq_ledger_transactions_transaction_id'))
    columns = ', '.join(COLUMNS)
    selected = ', '.join(f't.{c}' for c in COLUMNS)
    op.execute(f'INSERT INTO {NEW} (seq, {columns}) '
               f'SELECT ROW_NUMBER() OVER (ORDER BY p.first_posting, t.created_at, t.transaction_id), {selected} '
               'FROM ledger_transactions t LEFT JOIN (SELECT transaction_id, MIN(posting_id) AS first_posting '
               'FROM postings GROUP BY transaction_id) p ON p.transaction_id = t.transaction_id')
    _replace_with(NEW, [['operator_id', 'player_id', 'seq'], ['operator_id', 'seq'],
                        ['operator_id', 'player_id', 'created_at'], ['operator_id', 'created_at'],
                        ['operator_id', 'round_id']])


def downgrade() -> None:
    _create(NEW, [], sa.PrimaryKeyConstraint('transaction_id', name='pk_ledger_transactions'))
    columns = ', '.join(COLUMNS)
    op.execute(f'INSERT INTO {NEW} ({columns}) SELECT {columns} FROM ledger_transactions')
    _replace_with(NEW, [['operator_id', 'player_id', 'created_at'], ['operator_id', 'created_at'],
                        ['operator_id', 'round_id']])
