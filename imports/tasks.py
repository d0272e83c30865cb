"""Celery tasks: thin wrappers that take ids; every decision lives in batches and lifecycle.

A database or an S3 source that goes away is waited for: the task is retried with growing
delays. Any exception a task cannot handle, or a database or source still gone after the
retries, ends its import in `error` (with the exception's kind, never its text, which may hold
a path). If even that cannot be written, the import stops reporting and is shown stale, to be
resumed.
"""

import logging

from celery import Task, shared_task
from django.db import DatabaseError, InterfaceError, OperationalError, connections

from .sources import SourceUnavailable

logger = logging.getLogger(__name__)

DATABASE_GONE = (OperationalError, InterfaceError)


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


def failure_reason(description: str, exc: BaseException) -> str:
    """Why an import ended in error, in words for the operator; never the exception's text."""
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
