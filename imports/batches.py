"""Background work of an import: split the manifest into batches, then run each batch.

A batch copies and hashes its files, then commits its documents, row results and counters in
one transaction that first checks the import is still active and the batch not yet committed.
A redelivered batch (worker killed, message sent twice) therefore changes nothing twice, and
its copies are named per (import, row), so a retry rewrites its own files and no other.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone

from . import tasks
from .files import FileFacts, file_facts, file_store, stored_name
from .manifest import ManifestFormat, read_rows
from .models import Batch, Document, Import, ImportPhase, ImportStatus, Row, RowStatus
from .rows import checksum_problem, repeated_identifier_problem, row_read
from .sources import FilesystemSource, SourceProblem, source_from_settings

STAGE_ROWS = 5000


def import_split(import_id: str) -> None:
    """Count the manifest's rows, stage them in batches, then queue every batch.

    Safe to run again: an earlier, interrupted try's staging is replaced.
    """
    job = Import.objects.get(pk=import_id)
    if job.status != ImportStatus.ACTIVE or job.phase != ImportPhase.COUNTING:
        return
    Batch.objects.filter(import_job=job).delete()
    Row.objects.filter(import_job=job).delete()
    manifest_format = ManifestFormat.from_json(job.manifest_format)
    identifier_at = manifest_format.keys.index("identifier")
    total = 0
    with job.manifest.open("rb") as raw:
        staged = (
            Row(
                import_job=job,
                number=number,
                identifier=_identifier(cells, identifier_at),
                cells=cells,
            )
            for number, cells in read_rows(raw, manifest_format)
        )
        batches = enumerate(_chunks(staged, job.batch_size), start=1)
        for group in _chunks(batches, max(1, STAGE_ROWS // job.batch_size)):
            with transaction.atomic():
                Row.objects.bulk_create([row for _, rows in group for row in rows])
                Batch.objects.bulk_create(
                    Batch(
                        import_job=job,
                        number=number,
                        first_row=rows[0].number,
                        last_row=rows[-1].number,
                    )
                    for number, rows in group
                )
            total += sum(len(rows) for _, rows in group)
    with transaction.atomic():
        counted = Import.objects.filter(
            pk=job.pk, status=ImportStatus.ACTIVE, phase=ImportPhase.COUNTING
        ).update(total_rows=total, phase=ImportPhase.IMPORTING, heartbeat_at=timezone.now())
        if counted:
            transaction.on_commit(partial(_dispatch, job.pk, total))


def _identifier(cells: list[str], at: int) -> str:
    """The identifier as staged for finding repeats: trimmed, and cut to the column's width."""
    return cells[at].strip()[:255] if at < len(cells) else ""


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _dispatch(import_id, total: int) -> None:
    if total == 0:
        tasks.import_finish_task.delay(str(import_id))
        return
    batch_ids = Batch.objects.filter(import_job_id=import_id).values_list("pk", flat=True)
    for batch_id in batch_ids.iterator():
        tasks.batch_run_task.delay(str(import_id), batch_id)


@dataclass(frozen=True)
class Outcome:
    status: RowStatus
    comment: str
    document: Document | None = None


@dataclass
class BatchContext:
    """What every row of a batch is checked against, loaded with one query each."""

    job: Import
    columns: tuple[str, ...]
    source: FilesystemSource
    first_rows: dict[str, int]
    existing: dict[str, Document]

    @classmethod
    def load(cls, job: Import, rows: list[Row]) -> "BatchContext":
        identifiers = {row.identifier for row in rows if row.identifier}
        first_rows = (
            Row.objects.filter(import_job=job, identifier__in=identifiers)
            .values("identifier")
            .annotate(first=Min("number"))
            .values_list("identifier", "first")
        )
        return cls(
            job=job,
            columns=tuple(ManifestFormat.from_json(job.manifest_format).columns),
            source=source_from_settings(),
            first_rows=dict(first_rows),
            existing=Document.objects.in_bulk(identifiers, field_name="identifier"),
        )


def batch_run(batch_id: int) -> None:
    """Import one batch's rows and commit them at once; a repeat of a committed batch is a no-op."""
    batch = Batch.objects.select_related("import_job").get(pk=batch_id)
    job = batch.import_job
    if batch.committed_at or job.status != ImportStatus.ACTIVE:
        return
    rows = list(
        job.rows.filter(number__gte=batch.first_row, number__lte=batch.last_row).order_by("number")
    )
    context = BatchContext.load(job, rows)
    outcomes = [row_outcome(row, context) for row in rows]
    committed = False
    try:
        committed = _commit(batch, rows, outcomes)
    finally:
        if not committed:
            _discard(outcomes)


def row_outcome(row: Row, context: BatchContext) -> Outcome:
    """Check one staged row completely and, when nothing is wrong, store its file."""
    values, problems = row_read(context.columns, row.cells)
    first_row = context.first_rows.get(row.identifier, row.number)
    if values.identifier and first_row < row.number:
        problems.append(repeated_identifier_problem(values.identifier, first_row))
    path = None
    if values.file_path:
        try:
            path = context.source.resolve(values.file_path)
        except SourceProblem as problem:
            problems.append(str(problem))
    if path is not None and (size := context.source.size(path)) > settings.IMPORT_MAX_FILE_BYTES:
        problems.append(
            f"file_path {values.file_path!r}: the file has {size} bytes, more than the "
            f"{settings.IMPORT_MAX_FILE_BYTES} allowed"
        )
        path = None
    existing = context.existing.get(values.identifier)
    name, facts = "", None
    if path is not None:
        with context.source.open(path) as raw:
            if problems or existing:
                facts = file_facts(raw)
            else:
                name, facts = file_store(
                    raw, stored_name(str(context.job.pk), row.number, path.name)
                )
        if values.checksum and values.checksum != facts.sha256:
            problems.append(checksum_problem(values.checksum, facts.sha256))
    if problems:
        if name:
            default_storage.delete(name)
        return Outcome(RowStatus.FAILED, "; ".join(problems))
    if existing:
        return _conflict(values.identifier, existing, facts)
    return Outcome(RowStatus.IMPORTED, "", _document(context.job, values, name, facts))


def _conflict(identifier: str, existing: Document, facts: FileFacts) -> Outcome:
    if existing.sha256 == facts.sha256:
        return Outcome(RowStatus.SKIPPED, f"identical document {existing.uuid} is already imported")
    return Outcome(
        RowStatus.FAILED,
        f"identifier {identifier!r} is already used by document {existing.uuid}, "
        "whose file differs",
    )


def _document(job: Import, values, name: str, facts: FileFacts) -> Document:
    return Document(
        identifier=values.identifier,
        title=values.title,
        description=values.description,
        author=values.author,
        created_date=values.created_date,
        language=values.language,
        confidentiality=values.confidentiality,
        content_type=facts.content_type,
        size=facts.size,
        sha256=facts.sha256,
        file=name,
        file_name=PurePosixPath(values.file_path.replace("\\", "/")).name,
        extra=values.extra,
        import_job=job,
    )


def _commit(batch: Batch, rows: list[Row], outcomes: list[Outcome]) -> bool:
    """Commit documents, row results and counters together, if the batch is still wanted."""
    with transaction.atomic():
        job = Import.objects.select_for_update().get(pk=batch.import_job_id)
        if job.status != ImportStatus.ACTIVE:
            return False
        if Batch.objects.select_for_update().get(pk=batch.pk).committed_at:
            return False
        Document.objects.bulk_create([o.document for o in outcomes if o.document])
        for row, outcome in zip(rows, outcomes, strict=True):
            row.status = outcome.status
            row.comment = str(outcome.document.uuid) if outcome.document else outcome.comment
        Row.objects.bulk_update(rows, ["status", "comment"])
        counts = Counter(outcome.status for outcome in outcomes)
        now = timezone.now()
        Import.objects.filter(pk=job.pk).update(
            processed_rows=F("processed_rows") + len(outcomes),
            imported_rows=F("imported_rows") + counts[RowStatus.IMPORTED],
            skipped_rows=F("skipped_rows") + counts[RowStatus.SKIPPED],
            failed_rows=F("failed_rows") + counts[RowStatus.FAILED],
            heartbeat_at=now,
        )
        Batch.objects.filter(pk=batch.pk).update(committed_at=now)
        if not Batch.objects.filter(import_job=job, committed_at__isnull=True).exists():
            transaction.on_commit(partial(tasks.import_finish_task.delay, str(job.pk)))
    return True


def _discard(outcomes: list[Outcome]) -> None:
    """Remove the copies of a batch that did not commit."""
    for outcome in outcomes:
        if outcome.document:
            default_storage.delete(outcome.document.file.name)
