"""operator credentials: API keys, seen request nonces, each operator's environment and IP allowlist

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')
BYTE_FOR_BYTE = dict(mysql_charset='utf8mb4', mysql_collate='utf8mb4_nopad_bin',
                     mariadb_charset='utf8mb4', mariadb_collate='utf8mb4_nopad_bin')


def upgrade() -> None:
    # Existing operators (the sandbox one) stay sandbox operators reachable from anywhere.
    with op.batch_alter_table('operators') as batch:
        batch.add_column(sa.Column('environment', sa.String(length=16), nullable=False, server_default='sandbox'))
        batch.add_column(sa.Column('ip_allowlist', sa.String(length=4000), nullable=False, server_default=''))
    op.create_table('api_keys',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('secret_hash', sa.String(length=200), nullable=True),
    sa.Column('public_key', sa.String(length=64), nullable=True),
    sa.Column('scopes', sa.String(length=400), nullable=False),
    sa.Column('environment', sa.String(length=16), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('revoked_at', TIMESTAMP, nullable=True),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_api_keys')),
    **BYTE_FOR_BYTE,
    )
    op.create_index(op.f('ix_api_keys_operator_id'), 'api_keys', ['operator_id'], unique=False)
    op.create_table('auth_nonces',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('expires_at', TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('key_id', 'nonce', name=op.f('pk_auth_nonces')),
    **BYTE_FOR_BYTE,
    )
    op.create_index(op.f('ix_auth_nonces_expires_at'), 'auth_nonces', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_auth_nonces_expires_at'), table_name='auth_nonces')
    op.drop_table('auth_nonces')
    op.drop_index(op.f('ix_api_keys_operator_id'), table_name='api_keys')
    op.drop_table('api_keys')
    with op.batch_alter_table('operators') as batch:
        batch.drop_column('ip_allowlist')
        batch.drop_column('environment')
