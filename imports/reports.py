"""The report: the manifest as uploaded, row for row, with `import_status` and `import_comment`.

It is written once, when an import ends, by streaming the stored manifest beside the row
results ordered by row number: linear in the manifest, never re-read per batch.
"""

import tempfile
from collections.abc import Iterator
from itertools import chain

from django.core.files import File
from django.core.files.storage import default_storage

from .manifest import ManifestFormat, read_rows, without_padding
from .models import Import, ImportStatus, RowStatus

REPORT_COLUMNS = ("import_status", "import_comment")
FAILED_STATUSES = (RowStatus.FAILED, RowStatus.NOT_PROCESSED)
NOT_PROCESSED_BECAUSE = {
    ImportStatus.CANCELLED: "not processed: the import was cancelled before this row's batch",
    ImportStatus.ERROR: "not processed: the import ended in error before this row's batch",
}
FLUSH_ROWS = 1000


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


def report_write(job: Import) -> None:
    """Write the whole report into storage and record its name on the import.

    In the manifest's own encoding, byte-order mark and dialect, so that whatever opened the
    manifest opens its report alike.
    """
    manifest_format = ManifestFormat.from_json(job.manifest_format)
    width = len(manifest_format.columns)
    header = [*manifest_format.columns, *REPORT_COLUMNS]
    # Extra cells of a too-long row follow the two report columns, which stay aligned.
    rows = (
        [*cells[:width], status, comment, *cells[width:]]
        for cells, status, comment in report_rows(job)
    )
    with tempfile.TemporaryFile() as out:
        out.write(manifest_format.byte_order_mark)
        for cells in chain([header], rows):
            out.write(manifest_format.encode(manifest_format.line(cells)))
        out.seek(0)
        name = default_storage.save(f"reports/{job.uuid}.csv", File(out, name="report.csv"))
    Import.objects.filter(pk=job.pk).update(report=name)


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
