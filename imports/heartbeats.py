"""Heartbeats: work on an import says it is alive, from a thread of its own, while it runs.

A thread rather than a beat per row: one file can take minutes (a large scan on a slow mount),
and a batch that is slow is not lost. A process that dies takes its thread along, and the
silence that follows is what imports.recovery looks for.
"""

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from .models import Batch, Import

logger = logging.getLogger(__name__)


class Heartbeat:
    """Beat every IMPORT_HEARTBEAT_SECONDS for an import (and one attempt at a batch of it)
    until the `with` block ends."""

    def __init__(self, import_id, batch_id: int | None = None, attempt: int | None = None):
        self.import_id = import_id
        self.batch_id = batch_id
        self.attempt = attempt
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stopped.wait(settings.IMPORT_HEARTBEAT_SECONDS):
                try:
                    beat(self.import_id, self.batch_id, self.attempt)
                except DatabaseError:  # the next beat may pass; a long silence is a loss
                    logger.warning("import %s: a heartbeat could not be recorded", self.import_id)
        finally:
            connection.close()  # this thread's own


def beat(import_id, batch_id: int | None = None, attempt: int | None = None) -> None:
    """Record that the import's work, and this attempt at a batch of it, are alive now.

    Only the batch's latest attempt beats for it: an earlier one still running somewhere
    (taken for lost, then queued again) no longer speaks for the batch.
    """
    now = timezone.now()
    Import.objects.filter(pk=import_id).update(heartbeat_at=now)
    if batch_id is not None:
        Batch.objects.filter(pk=batch_id, attempts=attempt, committed_at__isnull=True).update(
            heartbeat_at=now
        )
