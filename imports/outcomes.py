"""One row's outcome: every check made, its file copied into storage when it is to be imported,
its document filled in memory. Nothing is written to the database here: the batch commits all
its outcomes at once (imports.batches).
"""

from dataclasses import dataclass
from typing import NamedTuple
from uuid import uuid4

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Min

from . import problems
from .copies import attempt_folder, file_copy, file_read, stored_name
from .errors import SourceProblem, SourceUnreadable
from .facts import FileFacts
from .manifest import ManifestFormat
from .models import Batch, Document, Import, Row, RowStatus
from .rows import RowValues, conflict_verdict, file_problems, metadata, row_read
from .sources import Source, source_from_settings
from .sources.base import SourceFile


class StagedRow(NamedTuple):
    """A staged row as its batch reads it: a tuple, not a model instance, for the speed."""

    number: int
    identifier: str
    cells: list[str]


STAGED_ROW_FIELDS = StagedRow._fields


@dataclass(frozen=True)
class Outcome:
    """What one row comes to; the documents and files it brings are written only at commit."""

    status: RowStatus
    comment: str = ""
    # A new document's column values by attribute name: a dict, as building a model instance
    # for each row cost a sixth of a batch's time.
    created: dict | None = None
    updated: Document | None = None  # an existing document, changed in memory
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
    # Settings read once per batch, not once per row: each read of a lazy setting costs.
    max_file_bytes: int
    allowed_content_types: list[str]

    @classmethod
    def load(cls, job: Import, batch: Batch, rows: list[StagedRow]) -> "BatchContext":
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
            max_file_bytes=settings.IMPORT_MAX_FILE_BYTES,
            allowed_content_types=settings.IMPORT_ALLOWED_CONTENT_TYPES,
        )

    def stored_name(self, row: StagedRow, path: SourceFile) -> str:
        return stored_name(self.folder, row.number, path.name)


def row_outcome(row: StagedRow, context: BatchContext) -> Outcome:
    """Check one staged row completely and, when it is to be imported, store its file.

    A dry run makes every check a real run makes, reading each file, but stores nothing.
    """
    values, found = row_read(context.columns, row.cells)
    first_row = context.first_rows.get(row.identifier, row.number)
    if values.identifier and first_row < row.number:
        found.append(problems.repeated_identifier(values.identifier, first_row))
    path = _source_file(values.file_path, context, found)
    if path is None:
        return _failed(found)
    existing = context.existing.get(values.identifier)
    # A new document's file is copied while it is hashed; any other row's is only read.
    store = not (found or existing or context.job.dry_run)
    try:
        if store:
            stored, facts = file_copy(context.source, path, context.stored_name(row, path))
        else:
            stored, facts = "", file_read(context.source, path)
    except SourceProblem as problem:
        return _failed([*found, str(problem)])
    except SourceUnreadable:
        return _failed([*found, _unreadable(values.file_path)])
    found += file_problems(values, facts, context.allowed_content_types)
    if found:
        if stored:
            default_storage.delete(stored)
        return _failed(found)
    if existing:
        return _conflict(row, values, existing, facts, path, context)
    if context.job.dry_run:
        return Outcome(RowStatus.VALID)
    created = _created(context.job, values, facts, stored)
    return Outcome(RowStatus.IMPORTED, str(created["uuid"]), created, stored_file=stored)


def _failed(found: list[str]) -> Outcome:
    return Outcome(RowStatus.FAILED, "; ".join(found))


def _unreadable(file_path: str) -> str:
    return problems.about_file(file_path, problems.UNREADABLE)


def _source_file(file_path: str, context: BatchContext, found: list[str]) -> SourceFile | None:
    """The row's file, if it can be read; what stands in the way is added to `found`."""
    if not file_path:
        return None
    source = context.source
    try:
        path = source.resolve(file_path)
    except SourceProblem as problem:
        found.append(str(problem))
        return None
    try:
        size = source.size(path)
    except SourceUnreadable:
        found.append(_unreadable(file_path))
        return None
    if size > context.max_file_bytes:
        found.append(problems.file_too_large(file_path, size, context.max_file_bytes))
        return None
    return path


def _conflict(
    row: StagedRow,
    values: RowValues,
    existing: Document,
    facts: FileFacts,
    path: SourceFile,
    context: BatchContext,
) -> Outcome:
    """A row whose identifier is already a document: what on_conflict makes of it, carried out."""
    job = context.job
    verdict = conflict_verdict(values, existing, facts.sha256, job.on_conflict, job.dry_run)
    if not verdict.update:
        return Outcome(verdict.status, verdict.comment)
    if not verdict.copy:
        _fill(existing, job, values, facts, existing.file.name)
        return Outcome(verdict.status, verdict.comment, updated=existing)
    changed = problems.about_file(values.file_path, problems.CHANGED_WHILE_READ)
    try:
        stored, copied = file_copy(context.source, path, context.stored_name(row, path))
    except SourceProblem:
        return _failed([changed])
    except SourceUnreadable:
        return _failed([_unreadable(values.file_path)])
    if copied.sha256 != facts.sha256:
        default_storage.delete(stored)
        return _failed([changed])
    replaced = existing.file.name
    _fill(existing, job, values, facts, stored)
    return Outcome(
        verdict.status,
        verdict.comment,
        updated=existing,
        stored_file=stored,
        replaced_file=replaced,
    )


def _created(job: Import, values: RowValues, facts: FileFacts, stored: str) -> dict:
    """A new document's column values but its times, which its batch's commit sets."""
    return {
        **_written(job, values, facts, stored),
        "uuid": uuid4(),
        "identifier": values.identifier,
        # Only the import that created a document may delete it, by its rollback.
        "created_by_import_id": job.pk,
    }


def _written(job: Import, values: RowValues, facts: FileFacts, stored: str) -> dict:
    """What a row writes onto a document, new or existing: its metadata and its file's facts."""
    return {
        **metadata(values),
        "import_job_id": job.pk,
        "content_type": facts.content_type,
        "size": facts.size,
        "sha256": facts.sha256,
        "file": stored,
    }


def _fill(
    document: Document, job: Import, values: RowValues, facts: FileFacts, stored: str
) -> None:
    """Write a row's metadata and file facts onto an existing document."""
    for name, value in _written(job, values, facts, stored).items():
        setattr(document, name, value)
