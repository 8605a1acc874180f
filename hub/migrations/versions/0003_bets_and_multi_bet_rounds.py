"""bets and multi-bet rounds

A round now holds any number of bets (the bets table, with tombstones for rollbacks that overtake
their bet) and may be opened by a push-style provider without a game session. Rounds written before
this revision are not converted: none exist outside development databases, as this ships together
with the Play stream it changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 19:31:21.416644
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bets',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('bet_id', sa.String(length=128), nullable=False),
    sa.Column('round_id', sa.String(length=36), nullable=True),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('transaction_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('operator_id', 'bet_id', name=op.f('pk_bets'))
    )
    with op.batch_alter_table('bets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bets_operator_id_round_id_status'), ['operator_id', 'round_id', 'status'], unique=False)

    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.alter_column('game_session_id',
               existing_type=sa.VARCHAR(length=36),
               nullable=True)
        batch_op.drop_constraint(batch_op.f('uq_rounds_operator_id_bet_idempotency_key'), type_='unique')
        batch_op.drop_column('bet_idempotency_key')
        # Round ids are unique per operator, not globally (push-style providers choose them).
        batch_op.drop_constraint('pk_rounds', type_='primary')
        batch_op.create_primary_key('pk_rounds', ['operator_id', 'round_id'])



def downgrade() -> None:
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_constraint('pk_rounds', type_='primary')
        batch_op.create_primary_key('pk_rounds', ['round_id'])
        batch_op.add_column(sa.Column('bet_idempotency_key', sa.VARCHAR(length=128), nullable=False))
        batch_op.create_unique_constraint(batch_op.f('uq_rounds_operator_id_bet_idempotency_key'), ['operator_id', 'bet_idempotency_key'])
        batch_op.alter_column('game_session_id',
               existing_type=sa.VARCHAR(length=36),
               nullable=False)

    with op.batch_alter_table('bets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bets_operator_id_round_id_status'))

    op.drop_table('bets')
