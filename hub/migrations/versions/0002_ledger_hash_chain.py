"""ledger hash chain: postings.entry_hash, accounts.last_entry_hash

Existing entries are chained here, in posting_id order per account, so `hub ledger check` verifies an
upgraded database like a new one (the chain then vouches for entries from the moment of this upgrade).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 19:08:46.011899
"""
from alembic import op
import sqlalchemy as sa

from hub.ledger.chain import GENESIS, entry_hash

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

BATCH = 10_000

accounts = sa.table('accounts', sa.column('account_id'), sa.column('last_entry_hash'))
postings = sa.table('postings', *(sa.column(name) for name in (
    'posting_id', 'account_id', 'transaction_id', 'currency', 'amount', 'balance_after', 'entry_hash')))


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_entry_hash', sa.String(length=64), nullable=True))
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entry_hash', sa.String(length=64), nullable=True))

    _chain_existing_entries(op.get_bind())

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.alter_column('last_entry_hash', existing_type=sa.String(length=64), nullable=False)
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.alter_column('entry_hash', existing_type=sa.String(length=64), nullable=False)


def _chain_existing_entries(conn: sa.Connection) -> None:
    """One keyset-paged pass over postings in (account_id, posting_id) order, BATCH rows at a time."""
    conn.execute(accounts.update().values(last_entry_hash=GENESIS))
    set_entry = postings.update().where(postings.c.posting_id == sa.bindparam('b_id')).values(
        entry_hash=sa.bindparam('b_hash'))
    set_head = accounts.update().where(accounts.c.account_id == sa.bindparam('b_id')).values(
        last_entry_hash=sa.bindparam('b_hash'))
    account_id, posting_id, prev = -1, -1, GENESIS
    while True:
        rows = conn.execute(
            sa.select(postings).where(sa.or_(
                postings.c.account_id > account_id,
                sa.and_(postings.c.account_id == account_id, postings.c.posting_id > posting_id)))
            .order_by(postings.c.account_id, postings.c.posting_id).limit(BATCH)).all()
        if not rows:
            break
        entries, heads = [], {}
        for row in rows:
            if row.account_id != account_id:
                prev = GENESIS
            prev = entry_hash(prev, row.account_id, row.transaction_id, row.currency, row.amount,
                              row.balance_after)
            entries.append({'b_id': row.posting_id, 'b_hash': prev})
            account_id, posting_id = row.account_id, row.posting_id
            heads[account_id] = prev
        conn.execute(set_entry, entries)
        conn.execute(set_head, [{'b_id': a, 'b_hash': h} for a, h in heads.items()])


def downgrade() -> None:
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_column('entry_hash')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('last_entry_hash')
