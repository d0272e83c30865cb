"""Running a manifest twice, and rows whose identifier is already a document (on_conflict)."""

import pytest
from django.core.files.storage import default_storage

from imports import batches
from imports.models import Document, Import, ImportPhase, ImportStatus

from .conftest import stored_files
from .factories import csv_bytes, import_run, png_bytes, scans_in, sha256

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title,author,checksum,colour"
SHORT_HEADER = "identifier,file_path,title,checksum,colour"


def imported(manifest: bytes, *, on_conflict: str = "fail", batch_size: int = 50) -> Import:
    return import_run(manifest, on_conflict=on_conflict, batch_size=batch_size)


def results(job: Import) -> list[tuple[str, str]]:
    return list(job.rows.order_by("number").values_list("status", "comment"))


@pytest.fixture
def archive(source) -> bytes:
    """A manifest of 300 rows in nested folders, with checksums, and its files."""
    lines = [HEADER]
    for n in range(300):
        folder = source / f"box {n // 100}" / f"folder {n // 10}"
        folder.mkdir(parents=True, exist_ok=True)
        data = png_bytes(f"scan {n}")
        (folder / f"scan {n}.png").write_bytes(data)
        path = f"box {n // 100}/folder {n // 10}/scan {n}.png"
        lines.append(f"DOC-{n},{path},Scan {n},Clerk,{sha256(data)},blue")
    return csv_bytes(*lines)


@pytest.mark.parametrize("on_conflict", ["fail", "skip", "update"])
def test_the_same_manifest_again_skips_every_row_and_writes_nothing(archive, on_conflict):
    # given
    first = imported(archive)
    assert (first.status, first.imported_rows) == (ImportStatus.FINISHED, 300)
    files_before = stored_files()
    documents_before = set(Document.objects.values_list("uuid", "updated_at", "import_job"))
    # when
    second = imported(archive, on_conflict=on_conflict)
    # then
    assert (second.status, second.total_rows, second.skipped_rows) == ("finished", 300, 300)
    assert {status for status, _ in results(second)} == {"skipped"}
    assert all("is already imported" in comment for _, comment in results(second))
    assert set(Document.objects.values_list("uuid", "updated_at", "import_job")) == (
        documents_before
    )
    assert stored_files() == files_before
    assert len(files_before) == 300


@pytest.fixture
def existing(source) -> Document:
    scans_in(source, "old.png")
    imported(csv_bytes(HEADER, "D1,old.png,Old title,Clerk,,blue"))
    return Document.objects.get(identifier="D1")


def test_fail_names_the_document_whose_file_differs(source, existing):
    (source / "new.png").write_bytes(png_bytes("new"))
    job = imported(csv_bytes(HEADER, "D1,new.png,Old title,Clerk,,blue"))
    assert results(job) == [
        (
            "failed",
            f"identifier 'D1' is already used by document {existing.uuid} (its file differs); "
            "on_conflict=update would replace it",
        )
    ]
    assert Document.objects.get() == existing
    assert Document.objects.get().sha256 == existing.sha256


def test_fail_names_the_document_whose_metadata_differs(source, existing):
    job = imported(csv_bytes(HEADER, "D1,old.png,New title,Clerk,,blue"))
    [(status, comment)] = results(job)
    assert status == "failed"
    assert f"document {existing.uuid} (its metadata differs)" in comment
    assert Document.objects.get().title == "Old title"


def test_skip_keeps_the_document_as_it_is(source, existing):
    (source / "new.png").write_bytes(png_bytes("new"))
    job = imported(csv_bytes(HEADER, "D1,new.png,New title,Clerk,,blue"), on_conflict="skip")
    [(status, comment)] = results(job)
    assert status == "skipped"
    assert f"document {existing.uuid} (its file differs); kept as it is" in comment
    document = Document.objects.get()
    assert (document.title, document.sha256, document.file.name) == (
        "Old title",
        existing.sha256,
        existing.file.name,
    )
    assert (job.skipped_rows, job.failed_rows) == (1, 0)


def test_update_of_metadata_alone_keeps_the_stored_file(source, existing):
    files_before = stored_files()
    job = imported(csv_bytes(HEADER, "D1,old.png,New title,Archivist,,green"), on_conflict="update")
    assert results(job) == [("imported", str(existing.uuid))]
    document = Document.objects.get()
    assert (document.title, document.author, document.extra) == (
        "New title",
        "Archivist",
        {"colour": "green"},
    )
    assert document.file.name == existing.file.name
    assert document.import_job_id == job.pk
    assert document.updated_at > existing.updated_at
    assert stored_files() == files_before


def imported_with_update(manifest: bytes) -> Import:
    return imported(manifest, on_conflict="update")


def test_update_with_a_new_file_replaces_it_and_removes_the_old_one(
    source, existing, django_capture_on_commit_callbacks
):
    new = png_bytes("new")
    (source / "new.png").write_bytes(new)
    manifest = csv_bytes(HEADER, f"D1,new.png,Old title,Clerk,{sha256(new)},blue")
    with django_capture_on_commit_callbacks(execute=True):
        job = imported_with_update(manifest)
    assert results(job) == [("imported", str(existing.uuid))]
    document = Document.objects.get()
    assert (document.uuid, document.sha256, document.size) == (existing.uuid, sha256(new), len(new))
    assert document.file_name == "new.png"
    with document.file.open("rb") as stored:
        assert stored.read() == new
    assert stored_files() == {document.file.name}
    assert not default_storage.exists(existing.file.name)


def test_an_update_whose_batch_does_not_commit_keeps_the_old_file(source, existing, monkeypatch):
    # given: the import is cancelled after the new file was copied, before the batch commits
    (source / "new.png").write_bytes(png_bytes("new"))
    commit = batches._commit

    def cancelled_first(batch, rows, outcomes):
        Import.objects.filter(pk=batch.import_job_id).update(
            status=ImportStatus.CANCELLED, phase=ImportPhase.NONE
        )
        return commit(batch, rows, outcomes)

    monkeypatch.setattr(batches, "_commit", cancelled_first)
    # when
    job = imported_with_update(csv_bytes(HEADER, "D1,new.png,New title,Clerk,,blue"))
    # then
    assert results(job) == [("", "")]
    document = Document.objects.get()
    assert (document.title, document.sha256) == ("Old title", existing.sha256)
    assert stored_files() == {existing.file.name}


def test_a_conflict_still_reports_the_rows_own_problems_first(source, existing):
    job = imported(
        csv_bytes(HEADER, f"D1,old.png,Old title,Clerk,{'0' * 64},blue"), on_conflict="update"
    )
    [(status, comment)] = results(job)
    assert status == "failed"
    assert comment.startswith("checksum mismatch")
    assert Document.objects.get().title == "Old title"


def test_identical_document_is_skipped_and_a_different_one_fails(source):
    scans_in(source, "a.png")
    import_run(csv_bytes(SHORT_HEADER, "A,a.png,A,,"), batch_size=2)
    scans_in(source, "b.png")
    second = import_run(csv_bytes(SHORT_HEADER, "A,a.png,A,,", "A2,b.png,B,,"), batch_size=2)
    third = import_run(csv_bytes(SHORT_HEADER, "A,b.png,A but other file,,"), batch_size=2)
    assert (second.skipped_rows, second.imported_rows) == (1, 1)
    assert third.failed_rows == 1
    assert "already used by document" in third.rows.get().comment
    assert Document.objects.count() == 2
    assert stored_files(f"documents/{third.pk}") == set()
