"""Schema migrations through alembic, configured in code so `hub migrate` needs no alembic.ini."""

import pathlib

from alembic import command
from alembic.config import Config

from hub.ledger.db import prepare_sqlite_folder

MIGRATIONS = pathlib.Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the database at url to the newest schema (idempotent)."""
    prepare_sqlite_folder(url)
    command.upgrade(alembic_config(url), "head")
