"""bonus money and free rounds

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 20:30:54.951057
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bonuses',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('bonus_id', sa.String(length=36), nullable=False),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('wagering_required', sa.BigInteger(), nullable=False),
    sa.Column('wagered', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('grant_transaction_id', sa.String(length=36), nullable=False),
    sa.Column('closing_transaction_id', sa.String(length=36), nullable=True),
    sa.Column('expires_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('closed_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.PrimaryKeyConstraint('operator_id', 'bonus_id', name=op.f('pk_bonuses'))
    )
    with op.batch_alter_table('bonuses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bonuses_operator_id_player_id_currency_status'), ['operator_id', 'player_id', 'currency', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_bonuses_status_expires_at'), ['status', 'expires_at'], unique=False)

    op.create_table('free_round_grants',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('grant_id', sa.String(length=36), nullable=False),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('game_id', sa.String(length=128), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('bet_amount', sa.BigInteger(), nullable=False),
    sa.Column('rounds', sa.Integer(), nullable=False),
    sa.Column('rounds_left', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('operator_id', 'grant_id', name=op.f('pk_free_round_grants'))
    )
    with op.batch_alter_table('free_round_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_free_round_grants_operator_id_player_id_game_id_currency'), ['operator_id', 'player_id', 'game_id', 'currency'], unique=False)

    with op.batch_alter_table('bets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cash_amount', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('bonus_amount', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('bonus_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('free_round_id', sa.String(length=36), nullable=True))
    # Every bet placed before bonus money existed was paid in cash.
    op.execute("UPDATE bets SET cash_amount = amount")

    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bonus_amount', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('bonus_balance_after', sa.BigInteger(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.drop_column('bonus_balance_after')
        batch_op.drop_column('bonus_amount')

    with op.batch_alter_table('bets', schema=None) as batch_op:
        batch_op.drop_column('free_round_id')
        batch_op.drop_column('bonus_id')
        batch_op.drop_column('bonus_amount')
        batch_op.drop_column('cash_amount')

    with op.batch_alter_table('free_round_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_free_round_grants_operator_id_player_id_game_id_currency'))

    op.drop_table('free_round_grants')
    with op.batch_alter_table('bonuses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bonuses_status_expires_at'))
        batch_op.drop_index(batch_op.f('ix_bonuses_operator_id_player_id_currency_status'))

    op.drop_table('bonuses')
