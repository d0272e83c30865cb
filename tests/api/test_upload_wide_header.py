"""Uploading a manifest whose header is longer than the sample the dialect is detected on."""

import csv
import io

from imports.manifest import MAX_COLUMNS, SAMPLE_BYTES
from imports.models import Document
from tests.factories import run_inline

from .conftest import assert_error, job_of, streamed, upload, url

REQUIRED = ["identifier", "file_path", "title"]


def wide_manifest(columns: int) -> tuple[list[str], bytes]:
    """A header of `columns` columns, the required ones first, and one row for scans/a.png."""
    header = REQUIRED + [f"extra_column_{i}" for i in range(columns - len(REQUIRED))]
    row = ["W-1", "scans/a.png", "Wide"] + [f"v{i}" for i in range(len(REQUIRED), columns)]
    text = ",".join(header) + "\n" + ",".join(row) + "\n"
    return header, text.encode()


def test_an_8000_column_manifest_is_uploaded_imported_and_reported_whole(api, pending, scans):
    # given: a header line longer than the sample (it was once cut at 3,705 columns)
    header, data = wide_manifest(8000)
    assert data.index(b"\n") > SAMPLE_BYTES

    # when
    response = upload(api, pending["uuid"], data)
    job = run_inline(job_of(pending["uuid"]))

    # then: every column is kept, the row imports with all of its values, the report is whole
    assert response.status_code == 202, response.content[:500]
    assert job.manifest_format["columns"] == header
    assert (job.status, job.imported_rows, job.failed_rows) == ("finished", 1, 0)
    extra = Document.objects.get(identifier="W-1").extra
    assert extra == {name: f"v{i}" for i, name in enumerate(header) if i >= len(REQUIRED)}
    report = list(
        csv.reader(io.StringIO(streamed(api.get(url("imports", job.uuid, "report"))).decode()))
    )
    assert report[0] == [*header, "import_status", "import_comment"]
    assert report[1][: len(header) + 1] == [
        "W-1",
        "scans/a.png",
        "Wide",
        *(f"v{i}" for i in range(len(REQUIRED), 8000)),
        "imported",
    ]


def test_a_100000_column_manifest_is_refused_with_the_limit(api, pending, source):
    # given: 100,000 columns, once read as a cut header with a column "named more than once"
    _, data = wide_manifest(100_000)

    # when
    response = upload(api, pending["uuid"], data)

    # then
    error = assert_error(response, 400, "manifest_header_too_long")
    assert f"{MAX_COLUMNS:,}" in error["detail"] and "100,000 columns" in error["detail"]
    job = job_of(pending["uuid"])
    assert (job.status, job.manifest.name) == ("pending", "")
