"""Celery tasks: thin wrappers that take ids; every decision lives in the modules they call.

The only module that knows Celery. The services announce what happened (imports.signals) and
the receivers here queue what follows: counting a manifest, its batches, the report.

A database or an S3 source that goes away is waited for: the task is retried with growing
delays. Any exception a task cannot handle, or a database or source still gone after the
retries, ends its import in `error` (with the exception's kind, never its text, which may hold
a path). If even that cannot be written, the import stops reporting and is shown stale, to be
resumed.

The report of an import that ended in error or was cancelled is written by a task of its own,
which waits for the storage as long as it takes (a full disk may wait hours for an operator)
and never ends its import in error: it is not part of the import's work.
"""

import logging
import sqlite3

from celery import Task, shared_task
from celery.signals import worker_ready
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.dispatch import receiver

from .batches import batch_run
from .errors import SourceUnavailable, storage_full
from .lifecycle import import_fail, import_finish
from .models import ImportPhase, ImportStatus
from .reports import ended_import_report, report_failed
from .selectors import batches_uncommitted, imports_without_report
from .signals import import_ended, import_work_ready
from .staging import import_split

logger = logging.getLogger(__name__)

DATABASE_GONE = (OperationalError, InterfaceError)
POSTGRESQL_DISK_FULL = "53100"  # SQLSTATE disk_full


class ImportTask(Task):
    """A task whose first argument is an import id; failure ends that import in `error`."""

    autoretry_for = (*DATABASE_GONE, SourceUnavailable)
    max_retries = 5
    retry_backoff = 2  # seconds: then 4, 8, 16, 32, each with jitter
    retry_backoff_max = 60

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        import_id = args[0]
        logger.error("task %s failed for import %s", self.name, import_id, exc_info=exc)
        _broken_connections_close()
        try:
            import_fail(import_id, failure_reason(self.description, exc))
        except DatabaseError:
            logger.exception("import %s could not be marked as failed", import_id)


def _broken_connections_close() -> None:
    """Close connections the database dropped, so the next query opens a fresh one."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.is_usable():
            connection.close()


def database_full(exc: BaseException) -> bool:
    """Whether `exc` is the database saying its disk is full (SQLite's SQLITE_FULL, PostgreSQL's
    disk_full), read from the driver's error that Django's wraps."""
    cause = exc.__cause__
    return isinstance(exc, DATABASE_GONE) and (
        getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        or getattr(cause, "sqlstate", None) == POSTGRESQL_DISK_FULL
    )


def failure_reason(description: str, exc: BaseException) -> str:
    """Why an import ended in error, in words for the operator; never the exception's text."""
    if storage_full(exc):
        return f"{description} failed: the storage is full. Free space, then resume the import."
    if database_full(exc):
        return (
            f"{description} failed: the database's disk is full. Free space for the database, "
            "then resume the import."
        )
    if isinstance(exc, DATABASE_GONE):
        return (
            f"{description} failed: the database could not be reached "
            f"({type(exc).__name__}). Resume the import once the database is back."
        )
    if isinstance(exc, SourceUnavailable):
        return (
            f"{description} failed: the import source could not be reached. "
            "Resume the import once it is back."
        )
    return f"{description} failed ({type(exc).__name__})."


@shared_task(base=ImportTask, description="counting the manifest's rows")
def import_split_task(import_id: str) -> None:
    import_split(import_id)


@shared_task(base=ImportTask, description="a batch of rows")
def batch_run_task(import_id: str, batch_id: int) -> None:
    batch_run(batch_id)


@shared_task(base=ImportTask, description="writing the report")
def import_finish_task(import_id: str) -> None:
    import_finish(import_id)


class ReportTask(Task):
    """The report task: its failure is said on the import, which it never ends in error."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        import_id = args[0]
        logger.error("the report of import %s could not be written", import_id, exc_info=exc)
        _broken_connections_close()
        try:
            report_failed(import_id, type(exc).__name__)
        except DatabaseError:
            logger.exception("import %s: the report's failure could not be recorded", import_id)


@shared_task(
    base=ReportTask,
    description="writing the report",
    # Storage errors (a full disk, S3 gone) and a database gone are waited for without end: the
    # report must come once they are fixed. Delays grow to ten minutes, each with jitter.
    autoretry_for=(OSError, *DATABASE_GONE),
    max_retries=None,
    retry_backoff=2,
    retry_backoff_max=600,
)
def import_report_task(import_id: str) -> None:
    """Write the report of an import that ended in error or was cancelled (and sweep it)."""
    ended_import_report(import_id)


@worker_ready.connect
def reports_missing_queue(**_) -> None:
    """At a worker's start, queue again the reports that ended imports still lack.

    A report task waiting for its next try lives in the worker that holds it: one killed (or a
    machine lost) on the embedded filesystem broker takes it along. Two tries at once are safe.
    """
    try:
        for import_id in imports_without_report():
            import_report_task.delay(str(import_id))
    except Exception:  # a worker starts even when the database or the broker does not answer
        logger.exception("the reports still missing could not be queued")


@receiver(import_work_ready)
def work_queue(sender, import_id, phase: str, **_) -> None:
    """Queue the counting of a manifest, or every batch not yet committed (the report once none
    is left)."""
    if phase == ImportPhase.COUNTING:
        import_split_task.delay(str(import_id))
        return
    queued = 0
    for batch_id in batches_uncommitted(import_id).values_list("pk", flat=True).iterator():
        batch_run_task.delay(str(import_id), batch_id)
        queued += 1
    if not queued:
        import_finish_task.delay(str(import_id))


@receiver(import_ended)
def report_queue(sender, import_id, status: str, **_) -> None:
    """Queue the report of an import that ended in error or was cancelled (a finished import's
    is written as it finishes)."""
    if status in (ImportStatus.ERROR, ImportStatus.CANCELLED):
        import_report_task.delay(str(import_id))
