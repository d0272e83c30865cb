"""Celery tasks: thin wrappers that take ids; every decision lives in the modules they call.

The only module that knows Celery. The services announce what happened (imports.signals) and
the receivers here queue what follows: counting a manifest, its batches, the report.

A database or an S3 source that goes away is waited for: the task is retried with growing
delays. Any exception a task cannot handle, or a database or source still gone after the
retries, ends its import in `error` (with the exception's kind, never its text, which may hold
a path). If even that cannot be written, the import stops reporting, and the recovery task
queues its work again.

Two tasks run on Celery beat's schedule (CELERY_BEAT_SCHEDULE in settings), on a queue of their
own so that they never wait behind an import's batches: the recovery of lost work
(imports.recovery) and the upkeep (imports.upkeep), which also queues again every report still
missing. The report of an import that ended in error or was cancelled is written by a task of
its own, tried once each time: a full disk may wait hours for an operator, and the upkeep's
schedule tries it again; it never ends its import in error, not being part of its work.
"""

import logging
import sqlite3
import uuid
from collections.abc import Iterable

from billiard.exceptions import WorkerLostError
from celery import Task, current_app, shared_task
from celery.signals import task_failure
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.dispatch import receiver
from django.utils import timezone

from .batches import batch_run
from .callbacks import callback_delay, callback_deliver, callbacks_stuck
from .errors import BatchLostTooOften, SourceUnavailable, storage_full
from .lifecycle import import_ended_log, import_fail, import_finish
from .logs import event, exception_said
from .models import ImportPhase, ImportStatus
from .recovery import batch_process_lost, imports_recover
from .reports import ended_import_report, report_failed
from .rollbacks import batch_rollback, batches_to_roll_back, rollback_finish
from .selectors import batches_uncommitted, import_callback_url, imports_without_report
from .signals import batch_ready, import_ended, import_work_ready
from .staging import import_split
from .upkeep import upkeep

logger = logging.getLogger(__name__)

DATABASE_GONE = (OperationalError, InterfaceError)
POSTGRESQL_DISK_FULL = "53100"  # SQLSTATE disk_full
RESUME = "resume the import"  # what a failure's words tell the operator to do, by default


class ImportTask(Task):
    """A task whose first argument is an import id; failure ends that import in `error`."""

    autoretry_for = (*DATABASE_GONE, SourceUnavailable)
    max_retries = 5
    retry_backoff = 2  # seconds: then 4, 8, 16, 32, each with jitter
    retry_backoff_max = 60
    again = RESUME  # what the operator does once the cause is gone

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        import_id = args[0]
        reason = failure_reason(self.description, exc, self.again)
        # The exception's class, never its text or traceback: an OSError's names its file.
        # (Celery's own line for the failure says where it was raised: imports.logs.)
        event(
            logger,
            "task failed",
            import_id,
            level=logging.ERROR,
            task=self.name,
            error=exception_said(exc),
            reason=reason,
        )
        _broken_connections_close()
        try:
            import_fail(import_id, reason)
        except DatabaseError as error:
            logger.error(
                "import %s could not be marked as failed (%s)", import_id, exception_said(error)
            )


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


def failure_reason(description: str, exc: BaseException, again: str = RESUME) -> str:
    """Why an import ended in error, in words for the operator; never the exception's text
    (but for our own, whose words are written for the operator). `again` says what the operator
    does once the cause is gone: resume the import, or roll it back again."""
    if isinstance(exc, BatchLostTooOften):
        return str(exc)
    if storage_full(exc):
        return f"{description} failed: the storage is full. Free space, then {again}."
    if database_full(exc):
        return (
            f"{description} failed: the database's disk is full. Free space for the database, "
            f"then {again}."
        )
    if isinstance(exc, DATABASE_GONE):
        return (
            f"{description} failed: the database could not be reached "
            f"({type(exc).__name__}). {again.capitalize()} once the database is back."
        )
    if isinstance(exc, SourceUnavailable):
        return (
            f"{description} failed: the import source could not be reached. "
            f"{again.capitalize()} once it is back."
        )
    return f"{description} failed ({type(exc).__name__})."


@shared_task(base=ImportTask, description="counting the manifest's rows")
def import_split_task(import_id: str) -> None:
    import_split(import_id)


@shared_task(base=ImportTask, bind=True, description="a batch of rows")
def batch_run_task(self, import_id: str, batch_id: int) -> None:
    batch_run(batch_id, worker=self.request.hostname or "")


@shared_task(base=ImportTask, description="writing the report")
def import_finish_task(import_id: str) -> None:
    import_finish(import_id)


@shared_task(
    base=ImportTask, description="rolling back a batch", again="roll the import back again"
)
def batch_rollback_task(import_id: str, batch_id: int) -> None:
    batch_rollback(batch_id)


@shared_task(base=ImportTask, description="ending the rollback", again="roll the import back again")
def rollback_finish_task(import_id: str) -> None:
    rollback_finish(import_id)


class ReportTask(Task):
    """The report task: its failure is said on the import, which it never ends in error."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        import_id = args[0]
        event(logger, "report failed", import_id, level=logging.ERROR, error=exception_said(exc))
        _broken_connections_close()
        try:
            report_failed(import_id, type(exc).__name__)
        except DatabaseError as error:
            logger.error(
                "import %s: the report's failure could not be recorded (%s)",
                import_id,
                exception_said(error),
            )


@shared_task(base=ReportTask, description="writing the report")
def import_report_task(import_id: str) -> None:
    """Write the report of an import that ended in error or was cancelled (and sweep it)."""
    ended_import_report(import_id)


@shared_task
def imports_recover_task() -> None:
    """Queue again the work that stopped beating (on Celery beat's schedule)."""
    imports_recover()


@shared_task
def imports_upkeep_task() -> None:
    """Expire, purge and sweep (on Celery beat's schedule), and queue again the reports that
    ended imports still lack (a full storage, or a try held by a worker that died) and the
    callback tries lost with a worker."""
    upkeep()
    for import_id in imports_without_report():
        import_report_task.delay(str(import_id))
    for import_id, status, delivery_id, attempt in callbacks_stuck(timezone.now()):
        callback_deliver_task.delay(import_id, status, delivery_id, attempt)


@shared_task(bind=True, max_retries=None)
def callback_deliver_task(
    self, import_id: str, status: str, delivery_id: str, attempt: int = 1
) -> None:
    """Post the import's end to its callback_url; tried again with doubling delays until
    delivered or IMPORT_CALLBACK_ATTEMPTS tries failed (imports.callbacks decides). The try's
    number travels with the task, so that the upkeep can queue a lost try again."""
    if callback_deliver(import_id, status, delivery_id, attempt):
        raise self.retry(
            args=(import_id, status, delivery_id, attempt + 1), countdown=callback_delay(attempt)
        )


def workers_running(timeout: float = 1.0, tries: int = 3) -> list[str]:
    """The names of the Celery workers that take from this service's queue (on a shared Redis,
    another service's workers answer too), asked up to `tries` times, `timeout` seconds each.

    Asked again because a broadcast is not queued: on Redis it is a publication, which a worker
    that has just started may not be subscribed to yet (one missed it, seen in CI)."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    for _ in range(tries):
        replies = current_app.control.inspect(timeout=timeout).active_queues() or {}
        names = [
            name for name, queues in replies.items() if any(q["name"] == queue for q in queues)
        ]
        if names:
            return sorted(names)
    return []


@task_failure.connect
def batch_process_lost_queue(sender=None, exception=None, args=(), **_) -> None:
    """A pool process died while it held a batch (the OOM killer, a crash): the worker's main
    process says so at once, so the batch is queued again now rather than after its silence."""
    if isinstance(exception, WorkerLostError) and sender.name == batch_run_task.name:
        batch_process_lost(args[1])


@receiver(import_work_ready)
def work_queue(sender, import_id, phase: str, **_) -> None:
    """Queue the counting of a manifest, every batch not yet committed (the report once none is
    left), or every batch a rollback has left (its end once none is)."""
    if phase == ImportPhase.COUNTING:
        import_split_task.delay(str(import_id))
    elif phase == ImportPhase.ROLLING_BACK:
        left = batches_to_roll_back(import_id)
        _batches_queue(import_id, left, batch_rollback_task, rollback_finish_task)
    else:
        uncommitted = batches_uncommitted(import_id).values_list("pk", flat=True).iterator()
        _batches_queue(import_id, uncommitted, batch_run_task, import_finish_task)


def _batches_queue(import_id, batch_ids: Iterable[int], batch_task: Task, end_task: Task) -> None:
    """Queue `batch_task` for each batch, or `end_task` when none is left."""
    queued = 0
    for batch_id in batch_ids:
        batch_task.delay(str(import_id), batch_id)
        queued += 1
    if not queued:
        end_task.delay(str(import_id))


@receiver(batch_ready)
def batch_queue(sender, import_id, batch_id: int, **_) -> None:
    batch_run_task.delay(str(import_id), batch_id)


@receiver(import_ended)
def report_queue(sender, import_id, status: str, **_) -> None:
    """Queue the report of an import that ended in error or was cancelled (a finished import's
    is written as it finishes)."""
    if status in (ImportStatus.ERROR, ImportStatus.CANCELLED):
        import_report_task.delay(str(import_id))


@receiver(import_ended)
def callback_queue(sender, import_id, status: str, **_) -> None:
    """Queue the delivery of the import's end to its callback_url, if it has one; the delivery's
    id stays the same through its retries, so that a receiver can tell a repeat."""
    if import_callback_url(import_id):
        callback_deliver_task.delay(str(import_id), status, f"{import_id}-{uuid.uuid4().hex}")


@receiver(import_ended)
def end_log(sender, import_id, status: str, **_) -> None:
    """Log the import's end with its figures (last: a failure here stops no other receiver)."""
    import_ended_log(import_id, status)
