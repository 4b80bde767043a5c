"""The console application's state: its database, Rasa client and session store.

It also resumes the assistant after a case is closed: now, or later from the
background retries (`retry_resumes`), for the cases the database says still wait.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from aiohttp import web

from bot.console.rasa_api import RasaClient, RasaError
from bot.console.sessions import SessionStore
from bot.store import resume
from bot.store.cases import CaseView
from bot.store.engine import Database

logger = logging.getLogger(__name__)

#: A resumption is retried for this long before the console gives up on it.
RESUME_GIVE_UP_SECONDS = 24 * 60 * 60


@dataclass
class Console:
    """The application's state."""

    db: Database
    rasa: RasaClient
    sessions: SessionStore
    resume_retry_seconds: float

    async def resume(self, case: CaseView) -> bool:
        """Tell Rasa to resume the case's conversation; False if that failed (retried later).

        Another console may be resuming it at the same moment (its close, or its
        retries): one at a time, and whoever comes second finds it done.
        """
        async with resume.resuming(self.db, case.conversation_id):
            if not await resume.needs_resume(self.db, case.conversation_id):
                return True
            try:
                await self.rasa.resume(case.conversation_id)
            except RasaError as error:
                logger.warning("resuming %s failed, will retry: %s", case.reference, error)
                return False
            await resume.mark_resumed(self.db, case.conversation_id)
            return True

    async def retry_resumes(self) -> None:
        """Ask Rasa again to resume every recently closed case it has not resumed.

        Which cases still wait is in the database (`handoff_cases.resumed_at`,
        set once Rasa has run the resume action and delivered its reply), so a
        restart forgets nothing.
        """
        since = datetime.now(timezone.utc) - timedelta(seconds=RESUME_GIVE_UP_SECONDS)
        for case in await resume.awaiting_resume(self.db, since):
            if await self.resume(case):
                logger.info("resumed %s", case.reference)


CONSOLE = web.AppKey("console", Console)
RETRY_TASK = web.AppKey("resume_retry_task", asyncio.Task)


def console_of(request: web.Request) -> Console:
    """The state of the request's application."""
    return request.app[CONSOLE]
