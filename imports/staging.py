"""The manifest to staged rows and batches: the first pass of an import, in the background.

Rows are staged with their cells, so that any worker on any machine can run any batch.
"""

import logging
from collections.abc import Iterable, Iterator
from itertools import islice

from django.db import transaction
from django.utils import timezone

from .heartbeats import Heartbeat
from .inserts import rows_insert
from .logs import event_on_commit
from .manifest import ManifestFormat, read_rows
from .models import ROW_COLUMNS, Batch, Import, ImportPhase, ImportStatus, Row
from .signals import work_ready_on_commit

STAGE_ROWS = 5000
IDENTIFIER_WIDTH = Row._meta.get_field("identifier").max_length

logger = logging.getLogger(__name__)


def import_split(import_id: str) -> None:
    """Count the manifest's rows, stage them in batches, then announce the batches are ready.

    Safe to run again: an earlier, interrupted try's staging is replaced. Stops at the next
    group of STAGE_ROWS once the import is no longer counting (cancelled, failed), so a cancel
    stops it within a group's time; what was staged is not used.
    """
    job = Import.objects.get(pk=import_id)
    if job.status != ImportStatus.ACTIVE or job.phase != ImportPhase.COUNTING:
        return
    Batch.objects.filter(import_job=job).delete()
    Row.objects.filter(import_job=job).delete()
    with Heartbeat(job.pk):  # a slow read between two groups is not taken for a lost split
        total = _stage(job)
    if total is None:
        return
    with transaction.atomic():
        counted = Import.objects.filter(
            pk=job.pk, status=ImportStatus.ACTIVE, phase=ImportPhase.COUNTING
        ).update(
            total_rows=total, phase=ImportPhase.IMPORTING, heartbeat_at=timezone.now(), stalls=0
        )
        if counted:
            work_ready_on_commit(job.pk, ImportPhase.IMPORTING)
            batches = -(-total // job.batch_size)  # every batch is full but the last
            event_on_commit(logger, "manifest counted", job.pk, total_rows=total, batches=batches)


def _stage(job: Import) -> int | None:
    """Stage every row in batches, a group of STAGE_ROWS rows per transaction; the rows staged,
    or None once the import is no longer counting."""
    manifest_format = ManifestFormat.from_json(job.manifest_format)
    identifier_at = manifest_format.keys.index("identifier")
    total = 0
    with job.manifest.open("rb") as raw:
        staged = (
            (job.pk, number, _identifier(cells, identifier_at), cells, "", "")
            for number, cells in read_rows(raw, manifest_format)
        )
        batches = enumerate(_chunks(staged, job.batch_size), start=1)
        for group in _chunks(batches, max(1, STAGE_ROWS // job.batch_size)):
            # Outside the group's transaction, so that a cancel on PostgreSQL never waits for it.
            if not _counting_heartbeat(job.pk):
                return None
            _group_write(job, group)
            total += sum(len(rows) for _, rows in group)
    return total


NUMBER_AT = ROW_COLUMNS.index("number")


def _group_write(job: Import, group: list[tuple[int, list[tuple]]]) -> None:
    """Stage a group of batches: their rows (as ROW_COLUMNS values, not yet judged) and the
    batches themselves, in one transaction."""
    with transaction.atomic():
        rows_insert(Row, ROW_COLUMNS, (row for _, rows in group for row in rows))
        Batch.objects.bulk_create(
            Batch(
                import_job=job,
                number=number,
                first_row=rows[0][NUMBER_AT],
                last_row=rows[-1][NUMBER_AT],
            )
            for number, rows in group
        )


def _identifier(cells: list[str], at: int) -> str:
    """The identifier as staged for finding repeats: trimmed, and cut to the column's width."""
    return cells[at].strip()[:IDENTIFIER_WIDTH] if at < len(cells) else ""


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _counting_heartbeat(import_id) -> bool:
    """Record a heartbeat if the import is still counting; say whether it is (one UPDATE)."""
    return bool(
        Import.objects.filter(
            pk=import_id, status=ImportStatus.ACTIVE, phase=ImportPhase.COUNTING
        ).update(heartbeat_at=timezone.now())
    )
