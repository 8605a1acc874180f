"""per-operator catalog settings: disabled studios, country blocks, RTP variants; a session's RTP variant

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')
BYTE_FOR_BYTE = dict(mysql_charset='utf8mb4', mysql_collate='utf8mb4_nopad_bin',
                     mariadb_charset='utf8mb4', mariadb_collate='utf8mb4_nopad_bin')


def upgrade() -> None:
    # Sessions launched before this revision play at their studio's default variant, as they did.
    with op.batch_alter_table('game_sessions') as batch:
        batch.add_column(sa.Column('rtp_variant', sa.String(length=32), nullable=False, server_default=''))
    op.create_table('operator_disabled_studios',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('studio', sa.String(length=64), nullable=False),
    sa.Column('disabled_at', TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('operator_id', 'studio', name=op.f('pk_operator_disabled_studios')),
    **BYTE_FOR_BYTE,
    )
    op.create_table('operator_country_blocks',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=128), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.PrimaryKeyConstraint('operator_id', 'target', 'country', name=op.f('pk_operator_country_blocks')),
    **BYTE_FOR_BYTE,
    )
    op.create_table('operator_rtp_variants',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('game_id', sa.String(length=128), nullable=False),
    sa.Column('variant', sa.String(length=32), nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('operator_id', 'game_id', name=op.f('pk_operator_rtp_variants')),
    **BYTE_FOR_BYTE,
    )


def downgrade() -> None:
    op.drop_table('operator_rtp_variants')
    op.drop_table('operator_country_blocks')
    op.drop_table('operator_disabled_studios')
    with op.batch_alter_table('game_sessions') as batch:
        batch.drop_column('rtp_variant')
