"""Facts about the running installation: schema revision and job queues."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from app.extensions import db

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """The revision ids the migration scripts end at (read once per process)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def current_revisions() -> frozenset[str]:
    """The revisions the database says it is at (empty when it was never migrated).

    :raises sqlalchemy.exc.SQLAlchemyError: when the database cannot be reached.
    """
    with db.engine.connect() as connection:
        has_table = inspect(connection).has_table("alembic_version")
        if not has_table:
            return frozenset()
        rows = connection.execute(text("SELECT version_num FROM alembic_version"))
        return frozenset(row[0] for row in rows)


def migration_state() -> str:
    """``head`` when the database schema is at the latest migration, else ``behind``."""
    return "head" if current_revisions() == head_revisions() else "behind"
