"""operator limits: per-operator abuse limits set through AdminService; ids found across operators

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')
BYTE_FOR_BYTE = dict(mysql_charset='utf8mb4', mysql_collate='utf8mb4_nopad_bin',
                     mariadb_charset='utf8mb4', mariadb_collate='utf8mb4_nopad_bin')
# An id another operator names is looked up without its operator (hub.operators): these tables are keyed
# (operator_id, id), so the id alone needs an index of its own.
BY_ID = (('rounds', 'round_id'), ('withdrawals', 'withdrawal_id'), ('bonuses', 'bonus_id'))


def upgrade() -> None:
    op.create_table('operator_limits',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('rate_per_s', sa.Double(), nullable=True),
    sa.Column('burst', sa.Integer(), nullable=True),
    sa.Column('max_play_streams', sa.Integer(), nullable=True),
    sa.Column('session_cap', sa.Integer(), nullable=True),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('operator_id', name=op.f('pk_operator_limits')),
    **BYTE_FOR_BYTE,
    )
    for table, column in BY_ID:
        op.create_index(op.f(f'ix_{table}_{column}'), table, [column], unique=False)


def downgrade() -> None:
    for table, column in BY_ID:
        op.drop_index(op.f(f'ix_{table}_{column}'), table_name=table)
    op.drop_table('operator_limits')
