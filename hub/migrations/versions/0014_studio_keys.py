"""studio keys: the Ed25519 keys studios sign their ProviderWalletService calls with

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')
BYTE_FOR_BYTE = dict(mysql_charset='utf8mb4', mysql_collate='utf8mb4_nopad_bin',
                     mariadb_charset='utf8mb4', mariadb_collate='utf8mb4_nopad_bin')


def upgrade() -> None:
    op.create_table('studio_keys',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('studio_id', sa.String(length=32), nullable=False),
    sa.Column('public_key', sa.String(length=64), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('revoked_at', TIMESTAMP, nullable=True),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_studio_keys')),
    **BYTE_FOR_BYTE,
    )
    op.create_index(op.f('ix_studio_keys_studio_id'), 'studio_keys', ['studio_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_studio_keys_studio_id'), table_name='studio_keys')
    op.drop_table('studio_keys')
