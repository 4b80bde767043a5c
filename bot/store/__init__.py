"""The bank data: debtors, accounts, identity verification and the audit log.

Nothing connects at import time: a `Database` opens its engine on first use.
"""

from bot.store.engine import Database, async_url, database_url, sync_url

__all__ = ["Database", "async_url", "database_url", "sync_url"]
