"""identifiers compare byte for byte on MariaDB

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 19:30:00.000000

Tables created by 0001-0006 took the database's default collation, on MariaDB case-insensitive and
blind to trailing spaces: 'Key', 'key' and 'key ' were one idempotency key (and one username, bet id,
operator id...). utf8mb4_nopad_bin compares bytes, trailing spaces included (utf8mb4_bin does not).
Converting only makes more values distinct, so no unique key can break; each table is rebuilt.
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# Every table as of 0006, and alembic's own.
TABLES = ('operators', 'players', 'player_sessions', 'accounts', 'ledger_transactions', 'postings',
          'idempotency_keys', 'game_sessions', 'rounds', 'withdrawals', 'bets', 'play_events', 'bonuses',
          'free_round_grants', 'alembic_version')


def _convert(charset: str) -> None:
    if op.get_bind().dialect.name not in ('mysql', 'mariadb'):
        return  # SQLite compares text byte for byte already
    op.execute(f'ALTER DATABASE CHARACTER SET {charset}')  # what tables created later default to
    for table in TABLES:
        op.execute(f'ALTER TABLE {table} CONVERT TO CHARACTER SET {charset}')


def upgrade() -> None:
    _convert('utf8mb4 COLLATE utf8mb4_nopad_bin')


def downgrade() -> None:
    # The charset's default collation; fails on a duplicate key once rows exist that differ only in case
    # or trailing spaces, rather than merge them.
    _convert('utf8mb4')
