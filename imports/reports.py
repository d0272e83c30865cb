"""The report: the manifest as uploaded, row for row, with `import_status` and `import_comment`.

It is written once, when an import ends, by streaming the stored manifest beside the row
results ordered by row number: linear in the manifest, never re-read per batch.

Each write has a name of its own in the import's folder under reports/, recorded on the import
only if the import still ended as it had when the write began: two writes never share a file, a
write that lost (the import was resumed, or deleted) removes its own, and a write that failed
half-way (a full disk) removes what it wrote. Deleting an import empties its folder.
"""

import logging
import secrets
import tempfile
from collections.abc import Iterator
from itertools import chain

from django.core.files import File
from django.core.files.storage import default_storage

from .copies import attempts_sweep, folder_files
from .errors import ImportStillOpen, ReportMissing, ReportNotReady, storage_full
from .manifest import ManifestFormat, read_rows, without_padding
from .models import OPEN_STATUSES, Import, ImportStatus, RowStatus

logger = logging.getLogger(__name__)

REPORT_COLUMNS = ("import_status", "import_comment")
FAILED_STATUSES = (RowStatus.FAILED, RowStatus.NOT_PROCESSED)
NOT_PROCESSED_BECAUSE = {
    ImportStatus.CANCELLED: "not processed: the import was cancelled before this row's batch",
    ImportStatus.ERROR: "not processed: the import ended in error before this row's batch",
}
FLUSH_ROWS = 1000
# The import's `report_error` while its report waits for space, and `report`'s 409 then.
REPORT_WAITS_FOR_SPACE = (
    "The report is not written yet: the storage is full. It is tried again every few minutes "
    "and written once space is freed."
)


def ended_import_report(import_id: str) -> None:
    """Write the report of an import that ended in error or was cancelled (the report task).

    A cancelled import's uncommitted copies are swept first. Nothing is done for an import
    deleted, resumed or already reported meanwhile. A storage with no space left is said in the
    import's `report_error`; the upkeep's schedule tries again (imports.tasks).
    """
    job = Import.objects.filter(pk=import_id).first()
    if job is None or job.is_open or job.report or not job.manifest:
        return
    if job.status == ImportStatus.FINISHED:
        return  # import_finish writes its own report
    if job.status == ImportStatus.CANCELLED:
        attempts_sweep(job.pk)
    try:
        name = report_write(job)
    except OSError as error:
        if not storage_full(error):
            raise
        report_waits_for_space(job)
        return
    report_record(job, name)


def report_rows(job: Import) -> Iterator[tuple[list[str], str, str]]:
    """Yield (cells, status, comment) for every manifest row, in manifest order."""
    manifest_format = ManifestFormat.from_json(job.manifest_format)
    width = len(manifest_format.columns)
    results = (
        job.rows.exclude(status="")
        .order_by("number")
        .values_list("number", "status", "comment")
        .iterator(chunk_size=2000)
    )
    result = next(results, None)
    not_processed = NOT_PROCESSED_BECAUSE.get(job.status, "not processed")
    with job.manifest.open("rb") as raw:
        for number, cells in read_rows(raw, manifest_format):
            while result is not None and result[0] < number:
                result = next(results, None)
            if result is not None and result[0] == number:
                yield _aligned(cells, width), result[1], result[2]
            else:
                yield _aligned(cells, width), RowStatus.NOT_PROCESSED, not_processed


def _aligned(cells: list[str], width: int) -> list[str]:
    """Pad short rows so the appended columns line up; drop empty padding past the header."""
    cells = list(without_padding(cells, width))
    return cells + [""] * (width - len(cells))


def report_write(job: Import) -> str:
    """Write the whole report into storage under a name of its own, and return the name.

    In the manifest's own encoding, byte-order mark and dialect, so that whatever opened the
    manifest opens its report alike. A write that fails removes what it wrote, then raises.
    """
    manifest_format = ManifestFormat.from_json(job.manifest_format)
    width = len(manifest_format.columns)
    header = [*manifest_format.columns, *REPORT_COLUMNS]
    # Extra cells of a too-long row follow the two report columns, which stay aligned.
    rows = (
        [*cells[:width], status, comment, *cells[width:]]
        for cells, status, comment in report_rows(job)
    )
    name = f"{report_folder(job.pk)}/{secrets.token_hex(4)}.csv"
    try:
        with tempfile.TemporaryFile() as out:
            out.write(manifest_format.byte_order_mark)
            for cells in chain([header], rows):
                out.write(manifest_format.encode(manifest_format.line(cells)))
            out.seek(0)
            # The storage overwrites rather than renames, so the name stays the one to remove.
            return default_storage.save(name, File(out, name="report.csv"))
    except BaseException:
        report_delete(name)  # the part written before the disk filled up
        raise


def report_folder(import_id) -> str:
    return f"reports/{import_id}"


def report_delete(name: str) -> None:
    """Remove one report file, if there; a storage that cannot is logged, not raised."""
    try:
        default_storage.delete(name)
    except OSError:
        logger.exception("a report file could not be removed")


def reports_delete(import_id) -> None:
    """Remove every report file of an import, a write in flight's too, and then its folder."""
    folder = report_folder(import_id)
    for name in folder_files(folder):
        report_delete(name)
    report_delete(folder)  # the emptied folder, on local storage; S3 has none


def report_record(job: Import, name: str) -> None:
    """Record `name` as the report of an import that ended as `job` says, and still has none.

    Any other import (resumed, ended again, deleted, reported by another write) keeps what it
    has, and the file is removed.
    """
    if not _still_unreported(job).update(report=name, report_error=""):
        report_delete(name)


def report_waits_for_space(job: Import) -> None:
    """Say, in `report_error`, that the import's report waits for the storage to have space."""
    _still_unreported(job).update(report_error=REPORT_WAITS_FOR_SPACE)


def report_failed(import_id, kind: str) -> None:
    """Say, in `report_error`, that writing an ended import's report failed on something no
    retry fixes (its exception's kind, never its text)."""
    Import.objects.filter(pk=import_id, report="").exclude(status__in=OPEN_STATUSES).update(
        report_error=f"The report could not be written ({kind}); it is tried again every few "
        "minutes."
    )


def _still_unreported(job: Import):
    return Import.objects.filter(
        pk=job.pk, status=job.status, finished_at=job.finished_at, report=""
    )


def report_content_type(job: Import) -> str:
    """The report's media type, in the manifest's charset, once the report can be downloaded;
    otherwise why not, raised."""
    if job.is_open and job.rollback_started_at is None:  # one rolling back has ended once
        raise ImportStillOpen("The report exists once the import has ended.")
    if not job.manifest:
        raise ReportMissing()
    if not job.report:
        raise ReportNotReady(job.report_error or None)
    return f"text/csv; charset={ManifestFormat.from_json(job.manifest_format).charset}"


def failed_rows_manifest(job: Import) -> Iterator[bytes]:
    """The failed and not-processed rows as a manifest to fix and upload again, streamed."""
    manifest_format = ManifestFormat.from_json(job.manifest_format)
    header = manifest_format.line(manifest_format.columns)
    yield manifest_format.byte_order_mark + manifest_format.encode(header)
    lines = []
    for count, (cells, status, _comment) in enumerate(report_rows(job), start=1):
        if status in FAILED_STATUSES:
            lines.append(manifest_format.line(cells))
        if count % FLUSH_ROWS == 0:
            yield manifest_format.encode("".join(lines))
            lines.clear()
    yield manifest_format.encode("".join(lines))
