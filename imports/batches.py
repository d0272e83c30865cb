"""Background work of an import: split the manifest into batches, then run each batch.

A batch copies and hashes its files, then commits its documents, row results and counters in
one transaction that first checks the import is still active and the batch not yet committed.
A redelivered batch (worker killed, message sent twice) therefore changes nothing twice, and
its copies are named per (import, row), so a retry rewrites its own files and no other.
"""

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import islice

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone

from . import tasks
from .files import FileFacts, content_type_problems, file_copy, file_read, stored_name
from .manifest import ManifestFormat, read_rows
from .models import (
    Batch,
    Document,
    Import,
    ImportPhase,
    ImportStatus,
    OnConflict,
    Row,
    RowStatus,
)
from .rows import RowValues, checksum_problem, repeated_identifier_problem, row_read
from .sources import (
    UNREADABLE,
    Source,
    SourceFile,
    SourceProblem,
    SourceUnreadable,
    source_from_settings,
)

STAGE_ROWS = 5000
HEARTBEAT_SECONDS = 30
METADATA_FIELDS = (
    "title",
    "description",
    "author",
    "created_date",
    "language",
    "confidentiality",
    "extra",
    "file_name",
)


def import_split(import_id: str) -> None:
    """Count the manifest's rows, stage them in batches, then queue every batch.

    Safe to run again: an earlier, interrupted try's staging is replaced. Stops at the next
    group of STAGE_ROWS once the import is no longer counting (cancelled, failed), so a cancel
    stops it within a group's time; what was staged is not used.
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
            # Outside the group's transaction, so that a cancel on PostgreSQL never waits for it.
            if not _counting_heartbeat(job.pk):
                return
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
            transaction.on_commit(partial(batches_dispatch, job.pk))


def _identifier(cells: list[str], at: int) -> str:
    """The identifier as staged for finding repeats: trimmed, and cut to the column's width."""
    return cells[at].strip()[:255] if at < len(cells) else ""


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def batches_dispatch(import_id) -> None:
    """Queue every batch not yet committed; with none left, queue the report."""
    uncommitted = Batch.objects.filter(import_job_id=import_id, committed_at__isnull=True)
    queued = 0
    for batch_id in uncommitted.values_list("pk", flat=True).iterator():
        tasks.batch_run_task.delay(str(import_id), batch_id)
        queued += 1
    if not queued:
        tasks.import_finish_task.delay(str(import_id))


def _counting_heartbeat(import_id) -> bool:
    """Record a heartbeat if the import is still counting; say whether it is (one UPDATE)."""
    return bool(
        Import.objects.filter(
            pk=import_id, status=ImportStatus.ACTIVE, phase=ImportPhase.COUNTING
        ).update(heartbeat_at=timezone.now())
    )


def _heartbeat(import_id) -> None:
    """Tell stale-import detection that this import's work is alive."""
    Import.objects.filter(pk=import_id).update(heartbeat_at=timezone.now())


@dataclass(frozen=True)
class Outcome:
    """What one row comes to; the documents and files it brings are written only at commit."""

    status: RowStatus
    comment: str = ""
    document: Document | None = None
    updates: bool = False  # `document` is an existing one, changed in memory
    stored_file: str = ""  # this row's copy in storage: removed if the batch does not commit
    replaced_file: str = ""  # the updated document's old file: removed once the batch commits


@dataclass
class BatchContext:
    """What every row of a batch is checked against, loaded with one query each."""

    job: Import
    folder: str
    columns: tuple[str, ...]
    source: Source
    first_rows: dict[str, int]
    existing: dict[str, Document]
    beaten_at: float = field(default_factory=time.monotonic)

    @classmethod
    def load(cls, job: Import, batch: Batch, rows: list[Row]) -> "BatchContext":
        identifiers = {row.identifier for row in rows if row.identifier}
        first_rows = (
            Row.objects.filter(import_job=job, identifier__in=identifiers)
            .values("identifier")
            .annotate(first=Min("number"))
            .values_list("identifier", "first")
        )
        return cls(
            job=job,
            folder=attempt_folder(batch),
            columns=tuple(ManifestFormat.from_json(job.manifest_format).columns),
            source=source_from_settings(),
            first_rows=dict(first_rows),
            existing=Document.objects.in_bulk(identifiers, field_name="identifier"),
        )

    def stored_name(self, row: Row, path: SourceFile) -> str:
        return stored_name(self.folder, row.number, path.name)

    def beat(self) -> None:
        """Record a heartbeat now and then, so a long batch is not taken for a lost one."""
        if time.monotonic() - self.beaten_at > HEARTBEAT_SECONDS:
            _heartbeat(self.job.pk)
            self.beaten_at = time.monotonic()


def attempt_folder(batch: Batch, attempt: int | None = None) -> str:
    """Where one attempt at a batch stores its copies: two attempts never share a file."""
    return f"{batch.import_job_id}/{batch.number:06d}-{attempt or batch.attempts}"


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


def _outcomes(rows: list[Row], context: "BatchContext") -> Iterator[Outcome]:
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
    _heartbeat(locked.import_job_id)
    return locked


def attempts_sweep(import_id) -> None:
    """Remove what attempts that never committed left in storage (a worker killed mid-batch)."""
    retried = Batch.objects.filter(import_job_id=import_id).exclude(attempts=0)
    retried = retried.exclude(attempts=1, committed_attempt=1)
    for batch in retried.iterator():
        for attempt in range(1, batch.attempts + 1):
            if attempt != batch.committed_attempt:
                _folder_delete(f"documents/{attempt_folder(batch, attempt)}")


def _folder_delete(folder: str) -> None:
    # Not exists(folder): S3 has no folders, and says False for every prefix.
    try:
        names = default_storage.listdir(folder)[1]
    except FileNotFoundError:  # a local folder never made
        return
    _files_delete([f"{folder}/{name}" for name in names])


def row_outcome(row: Row, context: BatchContext) -> Outcome:
    """Check one staged row completely and, when it is to be imported, store its file.

    A dry run makes every check a real run makes, reading each file, but stores nothing.
    """
    values, problems = row_read(context.columns, row.cells)
    first_row = context.first_rows.get(row.identifier, row.number)
    if values.identifier and first_row < row.number:
        problems.append(repeated_identifier_problem(values.identifier, first_row))
    path = _source_file(values.file_path, context.source, problems)
    if path is None:
        return Outcome(RowStatus.FAILED, "; ".join(problems))
    existing = context.existing.get(values.identifier)
    # A new document's file is copied while it is hashed; any other row's is only read.
    store = not (problems or existing or context.job.dry_run)
    try:
        if store:
            stored, facts = file_copy(context.source, path, context.stored_name(row, path))
        else:
            stored, facts = "", file_read(context.source, path)
    except SourceProblem as problem:
        return Outcome(RowStatus.FAILED, "; ".join([*problems, str(problem)]))
    except SourceUnreadable:
        return Outcome(RowStatus.FAILED, "; ".join([*problems, _unreadable(values.file_path)]))
    problems += _file_problems(values, facts)
    if problems:
        if stored:
            default_storage.delete(stored)
        return Outcome(RowStatus.FAILED, "; ".join(problems))
    if existing:
        return _conflict(row, values, existing, facts, path, context)
    if context.job.dry_run:
        return Outcome(RowStatus.VALID)
    document = Document(identifier=values.identifier)
    _fill(document, context.job, values, facts, stored)
    return Outcome(RowStatus.IMPORTED, str(document.uuid), document, stored_file=stored)


def _source_file(file_path: str, source: Source, problems: list[str]) -> SourceFile | None:
    """The row's file, if it can be read; what stands in the way is added to `problems`."""
    if not file_path:
        return None
    try:
        path = source.resolve(file_path)
    except SourceProblem as problem:
        problems.append(str(problem))
        return None
    try:
        size = source.size(path)
    except SourceUnreadable:
        problems.append(_unreadable(file_path))
        return None
    if size > settings.IMPORT_MAX_FILE_BYTES:
        problems.append(
            f"file_path {file_path!r}: the file has {size} bytes, more than the "
            f"{settings.IMPORT_MAX_FILE_BYTES} allowed"
        )
        return None
    return path


def _unreadable(file_path: str) -> str:
    return str(SourceProblem.about(file_path, UNREADABLE))


def _file_problems(values: RowValues, facts: FileFacts) -> list[str]:
    problems = content_type_problems(
        facts.content_type, values.content_type, settings.IMPORT_ALLOWED_CONTENT_TYPES
    )
    if values.checksum and values.checksum != facts.sha256:
        problems.insert(0, checksum_problem(values.checksum, facts.sha256))
    return problems


def _conflict(
    row: Row,
    values: RowValues,
    existing: Document,
    facts: FileFacts,
    path: SourceFile,
    context: BatchContext,
) -> Outcome:
    """A row whose identifier is already a document: skipped, failed or updated, per policy."""
    same_file = existing.sha256 == facts.sha256
    if same_file and _metadata(values) == _metadata_of(existing):
        return Outcome(RowStatus.SKIPPED, f"identical document {existing.uuid} is already imported")
    policy = context.job.on_conflict
    differs = "its file differs" if not same_file else "its metadata differs"
    if policy == OnConflict.FAIL:
        return Outcome(
            RowStatus.FAILED,
            f"identifier {values.identifier!r} is already used by document {existing.uuid} "
            f"({differs}); on_conflict=update would replace it",
        )
    if policy == OnConflict.SKIP:
        return Outcome(
            RowStatus.SKIPPED,
            f"identifier {values.identifier!r} is already used by document {existing.uuid} "
            f"({differs}); kept as it is (on_conflict=skip)",
        )
    if context.job.dry_run:
        return Outcome(RowStatus.VALID, f"would update document {existing.uuid} ({differs})")
    if same_file:
        _fill(existing, context.job, values, facts, existing.file.name)
        return Outcome(RowStatus.IMPORTED, str(existing.uuid), existing, updates=True)
    changed = f"file_path {values.file_path!r}: the file changed while being read"
    try:
        stored, copied = file_copy(context.source, path, context.stored_name(row, path))
    except SourceProblem:
        return Outcome(RowStatus.FAILED, changed)
    except SourceUnreadable:
        return Outcome(RowStatus.FAILED, _unreadable(values.file_path))
    if copied.sha256 != facts.sha256:
        default_storage.delete(stored)
        return Outcome(RowStatus.FAILED, changed)
    replaced = existing.file.name
    _fill(existing, context.job, values, facts, stored)
    return Outcome(
        RowStatus.IMPORTED,
        str(existing.uuid),
        existing,
        updates=True,
        stored_file=stored,
        replaced_file=replaced,
    )


def _metadata(values: RowValues) -> dict:
    """What a row says of its document, besides identifier and file (METADATA_FIELDS)."""
    return {
        "title": values.title,
        "description": values.description,
        "author": values.author,
        "created_date": values.created_date,
        "language": values.language,
        "confidentiality": values.confidentiality,
        "extra": values.extra,
        "file_name": values.file_name,
    }


def _metadata_of(document: Document) -> dict:
    return {name: getattr(document, name) for name in METADATA_FIELDS}


def _fill(
    document: Document, job: Import, values: RowValues, facts: FileFacts, stored: str
) -> None:
    """Write a row's metadata and file facts onto a document, new or existing."""
    for name, value in _metadata(values).items():
        setattr(document, name, value)
    document.import_job = job
    document.content_type = facts.content_type
    document.size = facts.size
    document.sha256 = facts.sha256
    document.file = stored


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
        counts = Counter(outcome.status for outcome in outcomes)
        Import.objects.filter(pk=job.pk).update(
            processed_rows=F("processed_rows") + len(outcomes),
            # In a dry run, `imported_rows` counts the rows that would be imported.
            imported_rows=F("imported_rows") + counts[RowStatus.IMPORTED] + counts[RowStatus.VALID],
            skipped_rows=F("skipped_rows") + counts[RowStatus.SKIPPED],
            failed_rows=F("failed_rows") + counts[RowStatus.FAILED],
            heartbeat_at=now,
        )
        Batch.objects.filter(pk=batch.pk).update(committed_at=now, committed_attempt=batch.attempts)
        replaced = [outcome.replaced_file for outcome in outcomes if outcome.replaced_file]
        # An updated document's old file goes only once its new one is committed.
        transaction.on_commit(partial(_files_delete, replaced))
        if not Batch.objects.filter(import_job=job, committed_at__isnull=True).exists():
            transaction.on_commit(partial(tasks.import_finish_task.delay, str(job.pk)))
    return True


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
    Document.objects.bulk_update(
        updated,
        [*METADATA_FIELDS, "import_job", "content_type", "size", "sha256", "file", "updated_at"],
    )


def _discard(outcomes: list[Outcome]) -> None:
    """Remove the copies of a batch that did not commit."""
    _files_delete([outcome.stored_file for outcome in outcomes if outcome.stored_file])


def _files_delete(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)
