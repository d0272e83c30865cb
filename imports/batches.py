"""Running one batch: load what its rows are checked against, their outcomes, the commit.

A batch copies and hashes its files, then commits its documents, row results and counters in
one transaction that first checks the import is still active and the batch not yet committed.
A redelivered batch (worker killed, message sent twice) therefore changes nothing twice, and
its copies are named per (attempt, row), so a retry writes its own files and no other's.
"""

import logging
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from .copies import files_delete
from .errors import BatchLostTooOften
from .heartbeats import Heartbeat
from .inserts import rows_insert
from .logs import event_on_commit
from .models import (
    ROW_COLUMNS,
    Batch,
    Document,
    EventKind,
    Import,
    ImportEvent,
    ImportPhase,
    ImportStatus,
    Row,
    RowStatus,
)
from .outcomes import STAGED_ROW_FIELDS, BatchContext, Outcome, StagedRow, row_outcome
from .rows import COMPARED_FIELDS
from .signals import work_ready_on_commit

logger = logging.getLogger(__name__)

DOCUMENT_WRITTEN_FIELDS = [*COMPARED_FIELDS, "import_job", "content_type", "size", "sha256", "file"]
# A new document's columns: its values from the row (Outcome.created), then its two times.
CREATED_COLUMNS = [
    field.attname
    for field in Document._meta.concrete_fields
    if field.name not in ("created_at", "updated_at")
]
DOCUMENT_COLUMNS = [*CREATED_COLUMNS, "created_at", "updated_at"]
NO_CELLS = ()  # one object for every row, so that it is encoded once (inserts._prepared)


def batch_run(batch_id: int, worker: str = "") -> None:
    """Import one batch's rows and commit them at once; a repeat of a committed batch is a no-op.

    `worker` names the Celery worker running it, for the import's events if it is lost.
    """
    batch = Batch.objects.select_related("import_job").get(pk=batch_id)
    job = batch.import_job
    if batch.committed_at or not _importing(job):
        return
    batch = _attempt_start(batch, worker)
    if batch is None:
        return
    outcomes: list[Outcome] = []
    committed = False
    try:
        with Heartbeat(job.pk, batch.pk, batch.attempts):
            rows = _staged_rows(batch)
            context = BatchContext.load(job, batch, rows)
            outcomes = list(_outcomes(rows, context))
            committed = _commit(batch, rows, outcomes)
    finally:
        if not committed:
            _attempt_end(batch)
    # Only a commit known not to have happened discards the copies here. After an exception,
    # even in the commit, the database may hold the commit: attempts_sweep removes the copies
    # of whatever attempt did not commit, once the import ends.
    if not committed:
        _discard(outcomes)


def _staged_rows(batch: Batch) -> list[StagedRow]:
    rows = Row.objects.filter(
        import_job_id=batch.import_job_id, number__gte=batch.first_row, number__lte=batch.last_row
    )
    return [
        StagedRow(*values) for values in rows.order_by("number").values_list(*STAGED_ROW_FIELDS)
    ]


def _importing(job: Import) -> bool:
    """Whether the import runs its batches: active and importing (an import that ended, or that
    is active again only to be rolled back, commits none)."""
    return job.status == ImportStatus.ACTIVE and job.phase == ImportPhase.IMPORTING


def _attempt_start(batch: Batch, worker: str = "") -> Batch | None:
    """Number this attempt under a row lock, so concurrent attempts get different numbers; None
    when another attempt beat within IMPORT_BATCH_LOST_AFTER: this delivery is a duplicate (the
    batch was queued again while its message was still in the broker), and a lost attempt is
    found by its silence alone (imports.recovery).

    An attempt before it that stopped beating longer ago is lost: it is counted here as the
    recovery task would, and a batch lost too often is not run again.
    """
    now = timezone.now()
    with transaction.atomic():
        # Only the batch's row: locking the import's too made a batch wait on every commit.
        locked = (
            Batch.objects.select_for_update(of=("self",))
            .select_related("import_job")
            .get(pk=batch.pk)
        )
        if locked.heartbeat_at and locked.heartbeat_at >= silent_since(now):
            return None
        given_up = locked.heartbeat_at is not None and not attempt_lost(
            locked, now, "delivered again"
        )
        if not given_up:
            locked.attempts += 1
            locked.heartbeat_at = now
            locked.worker = worker
            locked.save(update_fields=["attempts", "heartbeat_at", "worker"])
            Import.objects.filter(pk=locked.import_job_id).update(heartbeat_at=now)
    if given_up:
        raise lost_too_often(locked)
    return locked


def lost_too_often(batch: Batch) -> BatchLostTooOften:
    """The error that ends a batch's import once it was lost too often, naming its rows."""
    return BatchLostTooOften(batch.number, batch.first_row, batch.last_row, batch.requeues)


def silent_since(now: datetime) -> datetime:
    """Work that has not beaten since then is lost."""
    return now - timedelta(seconds=settings.IMPORT_BATCH_LOST_AFTER)


def attempt_lost(batch: Batch, now: datetime, again_how: str, how: str = "") -> bool:
    """Count the last attempt at `batch` (locked by the caller) as lost, and say so in the
    import's events; whether the batch may run again (False: lost too often).

    `how` it was lost: by default, its silence."""
    batch.requeues += 1
    batch.heartbeat_at = None
    batch.save(update_fields=["requeues", "heartbeat_at"])
    limit = settings.IMPORT_BATCH_MAX_REQUEUES
    again = batch.requeues <= limit
    rows = f"batch {batch.number} (rows {batch.first_row} to {batch.last_row})"
    if again:
        how = how or f"stopped reporting for {int(settings.IMPORT_BATCH_LOST_AFTER)} s"
        detail = (
            f"{rows} {how} on {batch.worker or 'a worker'}; "
            f"{again_how} ({batch.requeues} of at most {limit} times)"
        )
        Import.objects.filter(pk=batch.import_job_id).update(
            recovered_batches=F("recovered_batches") + 1
        )
    else:
        detail = f"{rows} was lost {batch.requeues} times; the import ends in error"
    ImportEvent.objects.create(
        import_job_id=batch.import_job_id,
        at=now,
        kind=EventKind.BATCH_LOST if again else EventKind.GAVE_UP,
        detail=detail,
    )
    batch_lost_log(batch, how or "stopped reporting", again)
    return again


def batch_lost_log(batch: Batch, how: str, requeued: bool) -> None:
    """Log, once committed, that the batch's last attempt was lost `how`, and whether it is
    queued again (False: lost too often, its import ends in error)."""
    event_on_commit(
        logger,
        "batch lost",
        batch.import_job_id,
        batch=batch.number,
        first_row=batch.first_row,
        last_row=batch.last_row,
        worker=batch.worker,
        how=how,
        requeues=batch.requeues,
        max_requeues=settings.IMPORT_BATCH_MAX_REQUEUES,
        requeued=requeued,
    )


def _attempt_end(batch: Batch) -> None:
    """Say this attempt stopped without committing, so that it is not taken for a lost one."""
    try:
        Batch.objects.filter(pk=batch.pk, attempts=batch.attempts).update(heartbeat_at=None)
    except DatabaseError:  # the database is gone: the batch is taken for lost once it is silent
        logger.warning("batch %s: the end of an attempt could not be recorded", batch.pk)


def _outcomes(rows: list[StagedRow], context: BatchContext) -> Iterator[Outcome]:
    """Each row's outcome, in row order; with IMPORT_COPY_THREADS > 1, files overlap.

    Rows are independent once the context is loaded, and row_outcome touches no database.
    Threads pay off where each file waits on a network (S3); on local disks the GIL makes
    them slower, hence one by default.
    """
    outcome_of = partial(row_outcome, context=context)
    if settings.IMPORT_COPY_THREADS <= 1:
        yield from map(outcome_of, rows)
        return
    with ThreadPoolExecutor(max_workers=settings.IMPORT_COPY_THREADS) as pool:
        yield from pool.map(outcome_of, rows)


def _commit(batch: Batch, rows: list[StagedRow], outcomes: list[Outcome]) -> bool:
    """Commit documents, row results and counters together, if the batch is still wanted."""
    with transaction.atomic():
        job = Import.objects.select_for_update().get(pk=batch.import_job_id)
        if not _importing(job):
            return False
        if Batch.objects.select_for_update().get(pk=batch.pk).committed_at:
            return False
        now = timezone.now()
        _documents_write(outcomes, now)
        _results_write(batch, rows, outcomes)
        counts = _counters_add(job, outcomes, now)
        # The batch in hand still holds the heartbeat its attempt started with.
        duration = (
            max((now - batch.heartbeat_at).total_seconds(), 0) if batch.heartbeat_at else None
        )
        Batch.objects.filter(pk=batch.pk).update(
            committed_at=now,
            committed_attempt=batch.attempts,
            heartbeat_at=None,
            duration_seconds=duration,
        )
        event_on_commit(
            logger,
            "batch committed",
            job.pk,
            batch=batch.number,
            first_row=batch.first_row,
            last_row=batch.last_row,
            rows=len(outcomes),
            # As the import's counters: in a dry run, `imported` counts the valid rows.
            imported_rows=counts[RowStatus.IMPORTED] + counts[RowStatus.VALID],
            skipped_rows=counts[RowStatus.SKIPPED],
            failed_rows=counts[RowStatus.FAILED],
            duration_seconds=duration,
            attempt=batch.attempts,
            worker=batch.worker,
        )
        replaced = [outcome.replaced_file for outcome in outcomes if outcome.replaced_file]
        # An updated document's old file goes only once its new one is committed.
        transaction.on_commit(partial(files_delete, replaced))
        if not Batch.objects.filter(import_job=job, committed_at__isnull=True).exists():
            work_ready_on_commit(job.pk, ImportPhase.IMPORTING)
    return True


def _counters_add(job: Import, outcomes: list[Outcome], now) -> Counter:
    """Add the batch's rows to the import's counters; the rows by outcome."""
    counts = Counter(outcome.status for outcome in outcomes)
    Import.objects.filter(pk=job.pk).update(
        processed_rows=F("processed_rows") + len(outcomes),
        # In a dry run, `imported_rows` counts the rows that would be imported.
        imported_rows=F("imported_rows") + counts[RowStatus.IMPORTED] + counts[RowStatus.VALID],
        skipped_rows=F("skipped_rows") + counts[RowStatus.SKIPPED],
        failed_rows=F("failed_rows") + counts[RowStatus.FAILED],
        heartbeat_at=now,
        stalls=0,
    )
    return counts


def _results_write(batch: Batch, rows: list[StagedRow], outcomes: list[Outcome]) -> None:
    """Record each row's outcome by writing the batch's rows anew, without their cells: once
    judged, a row is never read again (the report streams the manifest itself).

    One DELETE and one INSERT: bulk_update's CASE per row took 40% of a batch's time, and an
    UPDATE per row cost PostgreSQL a statement each.
    """
    Row.objects.filter(
        import_job_id=batch.import_job_id, number__gte=batch.first_row, number__lte=batch.last_row
    ).delete()
    rows_insert(
        Row,
        ROW_COLUMNS,
        (
            (
                batch.import_job_id,
                row.number,
                row.identifier,
                NO_CELLS,
                outcome.status,
                outcome.comment,
            )
            for row, outcome in zip(rows, outcomes, strict=True)
        ),
    )


def _documents_write(outcomes: list[Outcome], now) -> None:
    created = [outcome.created for outcome in outcomes if outcome.created]
    rows_insert(
        Document,
        DOCUMENT_COLUMNS,
        ([*(values[name] for name in CREATED_COLUMNS), now, now] for values in created),
    )
    updated = [outcome.updated for outcome in outcomes if outcome.updated]
    for document in updated:
        document.updated_at = now  # bulk_update skips auto_now
    Document.objects.bulk_update(updated, [*DOCUMENT_WRITTEN_FIELDS, "updated_at"])


def _discard(outcomes: list[Outcome]) -> None:
    """Remove the copies of a batch that did not commit."""
    files_delete([outcome.stored_file for outcome in outcomes if outcome.stored_file])
