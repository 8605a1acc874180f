"""two-phase withdrawals

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 19:51:22.064740
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('withdrawals',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('withdrawal_id', sa.String(length=36), nullable=False),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('hold_transaction_id', sa.String(length=36), nullable=False),
    sa.Column('decision_transaction_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('decided_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.PrimaryKeyConstraint('operator_id', 'withdrawal_id', name=op.f('pk_withdrawals'))
    )
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_withdrawals_operator_id_status_created_at'), ['operator_id', 'status', 'created_at'], unique=False)

    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.alter_column('kind',
               existing_type=sa.VARCHAR(length=16),
               type_=sa.String(length=24),
               existing_nullable=False)



def downgrade() -> None:
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.alter_column('kind',
               existing_type=sa.String(length=24),
               type_=sa.VARCHAR(length=16),
               existing_nullable=False)

    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_withdrawals_operator_id_status_created_at'))

    op.drop_table('withdrawals')
