"""Rollback of an ended import: the documents it created deleted, one batch per transaction.

lifecycle.import_rollback makes the import active again, at the phase `rolling_back`, so that it
holds the one-open-import lock; the tasks then roll back each of its committed batches here. A
batch is claimed by a conditional UPDATE in the transaction that deletes its documents, so a
batch delivered twice (a worker killed, the recovery queueing it again) deletes nothing twice.

A document is deleted only if this import created it and was the last to write it: one a later
import changed, or one this import only updated, is kept and said so in the rollback report.
Files go before the rows that name them, inside the transaction: a crash between the two leaves
documents without files only in a batch never counted done, which the rollback goes on with
when it is started again; it never leaves a file that no document names.
"""

import csv
import io
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from .copies import attempts_sweep
from .errors import RollbackNotStarted
from .heartbeats import Heartbeat
from .logs import event_on_commit
from .models import (
    Batch,
    Document,
    Import,
    ImportPhase,
    ImportStatus,
    KeptBecause,
    RollbackAction,
    RollbackOutcome,
    Row,
    RowStatus,
)
from .signals import ended_on_commit

REPORT_HEADER = ("row", "identifier", "document_uuid", "action", "kept_because")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    action: str
    kept_because: str = KeptBecause.NOT_KEPT


def rollback_verdict(import_id, last_written_by, created_by) -> Verdict:
    """What the rollback of `import_id` does with a document last written by `last_written_by`
    and created by `created_by` (import ids, or None once that import is gone)."""
    import_id = _as_uuid(import_id)
    if _as_uuid(last_written_by) != import_id:
        return Verdict(RollbackAction.KEPT, KeptBecause.CHANGED_SINCE)
    if _as_uuid(created_by) != import_id:
        return Verdict(RollbackAction.KEPT, KeptBecause.ONLY_UPDATED)
    return Verdict(RollbackAction.DELETED)


def _as_uuid(value) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def batch_rollback(batch_id: int) -> None:
    """Roll back the documents of one committed batch's imported rows, in one transaction.

    A batch already rolled back, or one whose import is not rolling back, is left alone. The
    last batch ends the rollback.
    """
    import_id = Batch.objects.filter(pk=batch_id).values_list("import_job_id", flat=True).first()
    if import_id is None:
        return
    with Heartbeat(import_id):  # the recovery sees it alive while its files are deleted
        _batch_rollback(batch_id, import_id)


def _batch_rollback(batch_id: int, import_id) -> None:
    if not _rolling_back(import_id).exists():
        return
    now = timezone.now()
    with transaction.atomic():
        claimed = Batch.objects.filter(
            pk=batch_id, committed_at__isnull=False, rolled_back_at__isnull=True
        ).update(rolled_back_at=now)
        if not claimed:
            return  # a duplicate delivery: another took it
        batch = Batch.objects.get(pk=batch_id)
        rows = list(
            Row.objects.filter(
                import_job_id=import_id,
                number__gte=batch.first_row,
                number__lte=batch.last_row,
                status=RowStatus.IMPORTED,
            )
            .order_by("number")
            .values_list("number", "identifier")
        )
        documents = _documents_locked(identifier for _, identifier in rows)
        outcomes = list(_outcomes(import_id, rows, documents))
        deleted = [o.document_uuid for o in outcomes if o.action == RollbackAction.DELETED]
        # Before the rows: a crash now leaves this batch unclaimed, to be gone through again.
        for document_uuid in deleted:
            _file_delete(documents[document_uuid].file.name)
        RollbackOutcome.objects.bulk_create(outcomes)
        Document.objects.filter(pk__in=deleted).delete()
        # Counted under the import's row lock, which the check for the last batch then holds.
        Import.objects.filter(pk=import_id).update(
            rollback_rows=F("rollback_rows") + len(rows),
            documents_deleted=F("documents_deleted") + len(deleted),
            documents_kept=F("documents_kept") + len(outcomes) - len(deleted),
            heartbeat_at=now,
            stalls=0,
        )
        event_on_commit(
            logger,
            "batch rolled back",
            import_id,
            batch=batch.number,
            rows=len(rows),
            documents_deleted=len(deleted),
            documents_kept=len(outcomes) - len(deleted),
        )
        ended = _end_if_done(import_id)
    if ended:
        attempts_sweep(import_id)


def _rolling_back(import_id):
    return Import.objects.filter(
        pk=import_id, status=ImportStatus.ACTIVE, phase=ImportPhase.ROLLING_BACK
    )


def _documents_locked(identifiers: Iterable[str]) -> dict[uuid.UUID, Document]:
    """The documents with these identifiers, by uuid, locked where the database can."""
    documents = Document.objects.filter(identifier__in=set(identifiers)).only(
        "uuid", "identifier", "file", "import_job_id", "created_by_import_id"
    )
    if connection.features.has_select_for_update:
        documents = documents.select_for_update()
    return {document.uuid: document for document in documents}


def _outcomes(
    import_id, rows: list[tuple[int, str]], documents: dict[uuid.UUID, Document]
) -> Iterator[RollbackOutcome]:
    """One outcome per row whose document is still there; a row whose identifier a row before
    it in this import already wrote has none (its document is that row's)."""
    by_identifier = {document.identifier: document for document in documents.values()}
    seen: set[str] = set()
    for number, identifier in rows:
        document = by_identifier.get(identifier)
        if document is None or identifier in seen:
            continue
        seen.add(identifier)
        verdict = rollback_verdict(import_id, document.import_job_id, document.created_by_import_id)
        yield RollbackOutcome(
            import_job_id=import_id,
            row_number=number,
            identifier=identifier,
            document_uuid=document.uuid,
            action=verdict.action,
            kept_because=verdict.kept_because,
        )


def _file_delete(name: str) -> None:
    """Remove a document's file; one already gone (a rollback that went on) is fine."""
    if name:
        default_storage.delete(name)


def _batches_left(import_id) -> QuerySet[Batch]:
    """The import's committed batches its rollback has not gone through yet."""
    return Batch.objects.filter(
        import_job_id=import_id, committed_at__isnull=False, rolled_back_at__isnull=True
    )


def batches_to_roll_back(import_id) -> list[int]:
    """The ids of the batches the rollback has left, in order, for the tasks to queue."""
    return list(_batches_left(import_id).order_by("number").values_list("pk", flat=True))


def _end_if_done(import_id) -> bool:
    """End the rollback if none of the import's committed batches is left to go through."""
    if _batches_left(import_id).exists():
        return False
    ended = _rolling_back(import_id).update(
        status=ImportStatus.ROLLED_BACK,
        phase=ImportPhase.NONE,
        rollback_finished_at=timezone.now(),
    )
    if ended:
        ended_on_commit(import_id, ImportStatus.ROLLED_BACK)
    return bool(ended)


def rollback_finish(import_id) -> None:
    """End a rollback none of whose batches is left: the import is rolled back. A no-op while
    a batch is left, or once the import is no longer rolling back."""
    with transaction.atomic():
        ended = _end_if_done(import_id)
    if ended:
        attempts_sweep(import_id)


def rollback_report_lines(job: Import) -> Iterator[str]:
    """The rollback report, as CSV lines: one per imported row whose document the rollback
    went through, in row order. While it runs, what is done so far."""
    if job.rollback_started_at is None:
        raise RollbackNotStarted()
    return _report_lines(job)


def _report_lines(job: Import) -> Iterator[str]:
    yield _csv_line(REPORT_HEADER)
    outcomes = (
        RollbackOutcome.objects.filter(import_job=job)
        .order_by("row_number")
        .values_list("row_number", "identifier", "document_uuid", "action", "kept_because")
        .iterator(chunk_size=2000)
    )
    for number, identifier, document_uuid, action, kept_because in outcomes:
        yield _csv_line((number, identifier, document_uuid, action, kept_because))


def _csv_line(cells) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()
