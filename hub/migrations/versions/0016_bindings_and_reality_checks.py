"""client certificates bound to operators, studio key IP allowlists, player:read for keys made before it

Keys made before the player:read scope existed (0013) hold player:write, which then covered every player
RPC, but not player:read, so ListSessions and GetPlayerLimits refuse them. Each active key holding
player:write without player:read gets it; a key never given player:write (a wallet-only key, say) is left as
its operator made it. Each grant is recorded with the key's scopes before it (api_key_scope_grants), so the
downgrade restores exactly those keys' scopes and nothing else. Reality-check intervals need no schema: they
are player_limits rows of kind reality_check.

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')
BYTE_FOR_BYTE = dict(mysql_charset='utf8mb4', mysql_collate='utf8mb4_nopad_bin',
                     mariadb_charset='utf8mb4', mariadb_collate='utf8mb4_nopad_bin')
GRANTED, IMPLIED_BY = 'player:read', 'player:write'

api_keys = sa.table('api_keys', sa.column('key_id', sa.String), sa.column('scopes', sa.String),
                    sa.column('revoked_at', TIMESTAMP))
grants = sa.table('api_key_scope_grants', sa.column('key_id', sa.String), sa.column('scope', sa.String),
                  sa.column('scopes_before', sa.String))


def with_grant(scopes: str) -> str:
    """player:read placed just before player:write, the order a key made today lists its scopes in."""
    words = scopes.split()
    words.insert(words.index(IMPLIED_BY), GRANTED)
    return ' '.join(words)


def upgrade() -> None:
    op.create_table('client_certificates',
    sa.Column('operator_id', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=256), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('operator_id', 'fingerprint', name=op.f('pk_client_certificates')),
    **BYTE_FOR_BYTE,
    )
    with op.batch_alter_table('studio_keys') as batch:
        batch.add_column(sa.Column('ip_allowlist', sa.String(length=4000), nullable=False, server_default=''))
    op.create_table('api_key_scope_grants',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('scopes_before', sa.String(length=400), nullable=False),
    sa.PrimaryKeyConstraint('key_id', 'scope', name=op.f('pk_api_key_scope_grants')),
    **BYTE_FOR_BYTE,
    )
    conn = op.get_bind()
    keys = conn.execute(sa.select(api_keys.c.key_id, api_keys.c.scopes).where(api_keys.c.revoked_at.is_(None))).all()
    for key_id, scopes in keys:
        held = scopes.split()
        if IMPLIED_BY in held and GRANTED not in held:
            conn.execute(grants.insert().values(key_id=key_id, scope=GRANTED, scopes_before=scopes))
            conn.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(scopes=with_grant(scopes)))


def downgrade() -> None:
    conn = op.get_bind()
    for key_id, scopes_before in conn.execute(sa.select(grants.c.key_id, grants.c.scopes_before)
                                              .where(grants.c.scope == GRANTED)).all():
        conn.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(scopes=scopes_before))
    op.drop_table('api_key_scope_grants')
    with op.batch_alter_table('studio_keys') as batch:
        batch.drop_column('ip_allowlist')
    op.drop_table('client_certificates')
