"""Running one batch: load what its rows are checked against, their outcomes, the commit.

A batch copies and hashes its files, then commits its documents, row results and counters in
one transaction that first checks the import is still active and the batch not yet committed.
A redelivered batch (worker killed, message sent twice) therefore changes nothing twice, and
its copies are named per (attempt, row), so a retry writes its own files and no other's.
"""

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .copies import files_delete
from .models import Batch, Document, Import, ImportPhase, ImportStatus, Row, RowStatus
from .outcomes import BatchContext, Outcome, heartbeat, row_outcome
from .rows import COMPARED_FIELDS
from .signals import work_ready_on_commit

DOCUMENT_WRITTEN_FIELDS = [*COMPARED_FIELDS, "import_job", "content_type", "size", "sha256", "file"]


def batch_run(batch_id: int) -> None:
    """Import one batch's rows and commit them at once; a repeat of a committed batch is a no-op."""
    batch = Batch.objects.select_related("import_job").get(pk=batch_id)
    job = batch.import_job
    if batch.committed_at or job.status != ImportStatus.ACTIVE:
        return
    batch = _attempt_start(batch)
    rows = list(
        job.rows.filter(number__gte=batch.first_row, number__lte=batch.last_row).order_by("number")
    )
    context = BatchContext.load(job, batch, rows)
    outcomes = []
    for outcome in _outcomes(rows, context):
        outcomes.append(outcome)
        context.beat()
    # Only a commit known not to have happened discards the copies here. After an exception,
    # even in the commit, the database may hold the commit: attempts_sweep removes the copies
    # of whatever attempt did not commit, once the import ends.
    if not _commit(batch, rows, outcomes):
        _discard(outcomes)


def _attempt_start(batch: Batch) -> Batch:
    """Number this attempt under a row lock, so concurrent attempts get different numbers."""
    with transaction.atomic():
        # Only the batch's row: locking the import's too made a batch wait on every commit.
        locked = (
            Batch.objects.select_for_update(of=("self",))
            .select_related("import_job")
            .get(pk=batch.pk)
        )
        locked.attempts += 1
        locked.save(update_fields=["attempts"])
    heartbeat(locked.import_job_id)
    return locked


def _outcomes(rows: list[Row], context: BatchContext) -> Iterator[Outcome]:
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


def _commit(batch: Batch, rows: list[Row], outcomes: list[Outcome]) -> bool:
    """Commit documents, row results and counters together, if the batch is still wanted."""
    with transaction.atomic():
        job = Import.objects.select_for_update().get(pk=batch.import_job_id)
        if job.status != ImportStatus.ACTIVE:
            return False
        if Batch.objects.select_for_update().get(pk=batch.pk).committed_at:
            return False
        now = timezone.now()
        _documents_write(outcomes, now)
        _results_write(batch, rows, outcomes)
        _counters_add(job, outcomes, now)
        Batch.objects.filter(pk=batch.pk).update(committed_at=now, committed_attempt=batch.attempts)
        replaced = [outcome.replaced_file for outcome in outcomes if outcome.replaced_file]
        # An updated document's old file goes only once its new one is committed.
        transaction.on_commit(partial(files_delete, replaced))
        if not Batch.objects.filter(import_job=job, committed_at__isnull=True).exists():
            work_ready_on_commit(job.pk, ImportPhase.IMPORTING)
    return True


def _counters_add(job: Import, outcomes: list[Outcome], now) -> None:
    counts = Counter(outcome.status for outcome in outcomes)
    Import.objects.filter(pk=job.pk).update(
        processed_rows=F("processed_rows") + len(outcomes),
        # In a dry run, `imported_rows` counts the rows that would be imported.
        imported_rows=F("imported_rows") + counts[RowStatus.IMPORTED] + counts[RowStatus.VALID],
        skipped_rows=F("skipped_rows") + counts[RowStatus.SKIPPED],
        failed_rows=F("failed_rows") + counts[RowStatus.FAILED],
        heartbeat_at=now,
    )


def _results_write(batch: Batch, rows: list[Row], outcomes: list[Outcome]) -> None:
    """Record each row's outcome by writing the batch's rows anew.

    One DELETE and one multi-row INSERT: bulk_update's CASE per row took 40% of a batch's time.
    """
    Row.objects.filter(
        import_job_id=batch.import_job_id, number__gte=batch.first_row, number__lte=batch.last_row
    ).delete()
    Row.objects.bulk_create(
        Row(
            import_job_id=row.import_job_id,
            number=row.number,
            identifier=row.identifier,
            cells=row.cells,
            status=outcome.status,
            comment=outcome.comment,
        )
        for row, outcome in zip(rows, outcomes, strict=True)
    )


def _documents_write(outcomes: list[Outcome], now) -> None:
    Document.objects.bulk_create([o.document for o in outcomes if o.document and not o.updates])
    updated = [o.document for o in outcomes if o.document and o.updates]
    for document in updated:
        document.updated_at = now  # bulk_update skips auto_now
    Document.objects.bulk_update(updated, [*DOCUMENT_WRITTEN_FIELDS, "updated_at"])


def _discard(outcomes: list[Outcome]) -> None:
    """Remove the copies of a batch that did not commit."""
    files_delete([outcome.stored_file for outcome in outcomes if outcome.stored_file])
