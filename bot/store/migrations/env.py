"""Alembic environment: runs the migrations with the sync driver of the given URL.

Configured by `bot.store.migrate`, which puts the URL in `config.attributes["url"]`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from bot.store.engine import database_url, sync_url
from bot.store.models import Base
from bot.store.payment_models import Payment  # noqa: F401 (registers its tables)
from bot.store.reminder_models import Reminder  # noqa: F401 (registers its tables)
from bot.store.staff_offers import StaffOfferRecord  # noqa: F401 (registers its table)

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return sync_url(config.attributes.get("url") or database_url())


def run_migrations_offline() -> None:
    """Write the SQL instead of running it."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a fresh connection, then close it."""
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool, future=True)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
