"""Celery tasks: thin wrappers that take ids; every decision lives in batches and lifecycle.

A database or an S3 source that goes away is waited for: the task is retried with growing
delays. Any exception a task cannot handle, or a database or source still gone after the
retries, ends its import in `error` (with the exception's kind, never its text, which may hold
a path). If even that cannot be written, the import stops reporting and is shown stale, to be
resumed.

The report of an import that ended in error or was cancelled is written by a task of its own,
which waits for the storage as long as it takes (a full disk may wait hours for an operator)
and never ends its import in error: it is not part of the import's work.
"""

import errno
import logging
import sqlite3

from celery import Task, shared_task
from celery.signals import worker_ready
from django.db import DatabaseError, InterfaceError, OperationalError, connections

from .sources import SourceUnavailable

logger = logging.getLogger(__name__)

DATABASE_GONE = (OperationalError, InterfaceError)
STORAGE_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
POSTGRESQL_DISK_FULL = "53100"  # SQLSTATE disk_full


class ImportTask(Task):
    """A task whose first argument is an import id; failure ends that import in `error`."""

    autoretry_for = (*DATABASE_GONE, SourceUnavailable)
    max_retries = 5
    retry_backoff = 2  # seconds: then 4, 8, 16, 32, each with jitter
    retry_backoff_max = 60

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        from .lifecycle import import_fail

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


def storage_full(exc: BaseException) -> bool:
    """Whether `exc` says the storage has no space left (a full disk, or a quota reached)."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_FULL_ERRNOS


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
    from .batches import import_split

    import_split(import_id)


@shared_task(base=ImportTask, description="a batch of rows")
def batch_run_task(import_id: str, batch_id: int) -> None:
    from .batches import batch_run

    batch_run(batch_id)


@shared_task(base=ImportTask, description="writing the report")
def import_finish_task(import_id: str) -> None:
    from .lifecycle import import_finish

    import_finish(import_id)


class ReportTask(Task):
    """The report task: its failure is said on the import, which it never ends in error."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        from .reports import report_failed

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
    from .lifecycle import import_report

    import_report(import_id)


@worker_ready.connect
def reports_missing_queue(**_) -> None:
    """At a worker's start, queue again the reports that ended imports still lack.

    A report task waiting for its next try lives in the worker that holds it: one killed (or a
    machine lost) on the embedded filesystem broker takes it along. Two tries at once are safe.
    """
    from .models import Import, ImportStatus

    try:
        missing = list(
            Import.objects.filter(status__in=(ImportStatus.ERROR, ImportStatus.CANCELLED))
            .filter(report="")
            .exclude(manifest="")
            .values_list("pk", flat=True)
        )
        for import_id in missing:
            import_report_task.delay(str(import_id))
    except Exception:  # a worker starts even when the database or the broker does not answer
        logger.exception("the reports still missing could not be queued")
