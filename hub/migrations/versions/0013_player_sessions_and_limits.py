"""player sessions with refresh-token families, self-exclusion and responsible-gaming limits

Sessions issued before this revision end (players log in again): the old rows hold a bare token hash
with no family, refresh token or idle clock to carry over.

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')
BYTE_FOR_BYTE = dict(mysql_charset='utf8mb4', mysql_collate='utf8mb4_nopad_bin',
                     mariadb_charset='utf8mb4', mariadb_collate='utf8mb4_nopad_bin')


def upgrade() -> None:
    op.drop_table('player_sessions')
    op.create_table('player_sessions',
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('last_used_at', TIMESTAMP, nullable=False),
    sa.Column('expires_at', TIMESTAMP, nullable=False),
    sa.Column('ended_at', TIMESTAMP, nullable=True),
    sa.Column('end_reason', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_player_sessions')),
    **BYTE_FOR_BYTE,
    )
    op.create_index(op.f('ix_player_sessions_operator_id_player_id_ended_at_created_at'), 'player_sessions',
                    ['operator_id', 'player_id', 'ended_at', 'created_at'], unique=False)
    op.create_table('player_session_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('expires_at', TIMESTAMP, nullable=False),
    sa.Column('rotated_at', TIMESTAMP, nullable=True),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_player_session_tokens')),
    **BYTE_FOR_BYTE,
    )
    op.create_index(op.f('ix_player_session_tokens_session_id'), 'player_session_tokens', ['session_id'],
                    unique=False)
    op.create_table('self_exclusions',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('started_at', TIMESTAMP, nullable=False),
    sa.Column('ends_at', TIMESTAMP, nullable=True),
    sa.PrimaryKeyConstraint('operator_id', 'player_id', name=op.f('pk_self_exclusions')),
    **BYTE_FOR_BYTE,
    )
    op.create_table('player_limits',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('pending_amount', sa.BigInteger(), nullable=True),
    sa.Column('pending_from', TIMESTAMP, nullable=True),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('operator_id', 'player_id', 'kind', 'period', 'currency', name=op.f('pk_player_limits')),
    **BYTE_FOR_BYTE,
    )


def downgrade() -> None:
    op.drop_table('player_limits')
    op.drop_table('self_exclusions')
    op.drop_index(op.f('ix_player_session_tokens_session_id'), table_name='player_session_tokens')
    op.drop_table('player_session_tokens')
    op.drop_index(op.f('ix_player_sessions_operator_id_player_id_ended_at_created_at'), table_name='player_sessions')
    op.drop_table('player_sessions')
    op.create_table('player_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('player_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('expires_at', TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_player_sessions')),
    **BYTE_FOR_BYTE,
    )
