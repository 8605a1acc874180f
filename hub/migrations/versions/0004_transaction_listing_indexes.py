"""transaction listing indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 19:39:34.490589
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_transactions_operator_id_created_at'), ['operator_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_transactions_operator_id_round_id'), ['operator_id', 'round_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_transactions_operator_id_round_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_transactions_operator_id_created_at'))

