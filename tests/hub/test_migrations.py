"""The migrations build exactly the schema the models describe, on both databases, from one head."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import hub.models  # noqa: F401  (the tables)
from hub.db import alembic_config, make_engine, migrate


def test_one_head():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, f"migrations have several heads: {script.get_heads()}"


def test_migrations_match_the_models(database_url):
    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert differences == []
