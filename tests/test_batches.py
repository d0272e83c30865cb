"""The background pipeline run in-process: split, batches, finish, with real files and storage."""

import pytest

from imports.batches import batch_run
from imports.lifecycle import import_cancel
from imports.models import Batch, Document, Import, ImportStatus

from .background import report_task_run
from .conftest import stored_files as stored_files_under
from .factories import csv_bytes, import_run, import_staged, png_bytes, scans_in, sha256

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title,checksum,colour"


def stored_files(job: Import) -> set[str]:
    return stored_files_under(f"documents/{job.pk}")


def test_rows_become_documents_with_their_files_copied_byte_for_byte(source):
    # given
    files = scans_in(source, *(f"scans/{n}.png" for n in "abc"))
    manifest = csv_bytes(HEADER, *(f"{p[6]},{p},Title {p[6]},,red" for p in files))
    # when
    job = import_run(manifest, batch_size=2)
    # then
    assert (job.status, job.total_rows, job.imported_rows) == (ImportStatus.FINISHED, 3, 3)
    for path, data in files.items():
        document = Document.objects.get(identifier=path[6])
        with document.file.open("rb") as stored:
            assert stored.read() == data
        assert (document.sha256, document.size) == (sha256(data), len(data))
        assert document.content_type == "image/png"
        assert document.file_name == path.rsplit("/", 1)[1]
        assert document.file.name != document.file_name
        assert document.extra == {"colour": "red"}
        assert document.import_job_id == job.pk


def test_same_file_name_in_two_folders_gets_two_stored_files(source):
    for folder in ("x", "y"):
        (source / folder).mkdir()
        (source / folder / "scan.png").write_bytes(png_bytes(folder))
    job = import_run(csv_bytes(HEADER, "X,x/scan.png,X,,", "Y,y/scan.png,Y,,"), batch_size=2)
    names = {d.file.name for d in Document.objects.all()}
    assert len(names) == 2
    assert len(stored_files(job)) == 2


def test_a_redelivered_batch_changes_nothing(source):
    scans_in(source, "a.png")
    job = import_staged(csv_bytes(HEADER, "A,a.png,A,,"), batch_size=2)
    batch = Batch.objects.get(import_job=job)
    batch_run(batch.pk)
    batch_run(batch.pk)
    job.refresh_from_db()
    assert (job.processed_rows, Document.objects.count()) == (1, 1)
    assert len(stored_files(job)) == 1


def test_a_batch_of_a_cancelled_import_does_not_commit_and_leaves_no_file(source):
    scans_in(source, "a.png")
    job = import_staged(
        csv_bytes(HEADER, "A,a.png,A,,", "B,a.png,B,,", "C,a.png,C,,"), batch_size=1
    )
    first, second, _ = Batch.objects.filter(import_job=job)
    batch_run(first.pk)
    import_cancel(job)
    batch_run(second.pk)
    job = report_task_run(job)
    assert (job.status, job.processed_rows, Document.objects.count()) == ("cancelled", 1, 1)
    assert len(stored_files(job)) == 1
    with job.report.open("rb") as report:
        lines = report.read().decode().splitlines()
    assert [line.split(",")[-2] for line in lines[1:]] == [
        "imported",
        "not_processed",
        "not_processed",
    ]
