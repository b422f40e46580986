"""Alembic environment: runs on the connection that healthcode.db.migrate passes."""

from alembic import context

import healthcode.models  # noqa: F401  (fills the metadata)
from healthcode.db import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
