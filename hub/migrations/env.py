"""Alembic environment: the hub's metadata, run against the URL the hub passes in."""

from alembic import context
from sqlalchemy import create_engine

from hub.ledger.schema import metadata

engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
