"""hub keys: secrets the hub generates once and every process shares (page-token signing)

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('hub_keys',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('secret', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_hub_keys')),
    mysql_charset='utf8mb4', mysql_collate='utf8mb4_nopad_bin',
    mariadb_charset='utf8mb4', mariadb_collate='utf8mb4_nopad_bin',
    )


def downgrade() -> None:
    op.drop_table('hub_keys')
