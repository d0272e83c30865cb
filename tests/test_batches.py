"""The background pipeline run in-process: split, batches, finish, with real files and storage."""

import io
import os
from pathlib import Path

import pytest

from imports.batches import batch_run
from imports.lifecycle import import_cancel, import_create
from imports.models import Batch, Document, Import, ImportStatus, Row
from imports.sources.filesystem import FilesystemSource
from imports.staging import import_split

from .background import report_task_run
from .conftest import csv_bytes, png_bytes, run_inline, sha256
from .conftest import stored_files as stored_files_under
from .factories import upload

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title,checksum,colour"


def uploaded(manifest: bytes, batch_size: int = 2) -> Import:
    job = import_create(batch_size=batch_size)
    return upload(job, io.BytesIO(manifest))


def stored_files(job: Import) -> set[str]:
    return stored_files_under(f"documents/{job.pk}")


def test_rows_become_documents_with_their_files_copied_byte_for_byte(source):
    # given
    (source / "scans").mkdir()
    files = {f"scans/{n}.png": png_bytes(n) for n in "abc"}
    for path, data in files.items():
        (source / path).write_bytes(data)
    manifest = csv_bytes(HEADER, *(f"{p[6]},{p},Title {p[6]},,red" for p in files))
    # when
    job = run_inline(uploaded(manifest))
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
    job = run_inline(uploaded(csv_bytes(HEADER, "X,x/scan.png,X,,", "Y,y/scan.png,Y,,")))
    names = {d.file.name for d in Document.objects.all()}
    assert len(names) == 2
    assert len(stored_files(job)) == 2


@pytest.mark.parametrize("threads", [1, 4])
def test_every_failing_row_is_reported_and_the_others_import(source, settings, threads):
    settings.IMPORT_COPY_THREADS = threads
    (source / "ok.png").write_bytes(png_bytes("ok"))
    (source / "folder").mkdir()
    manifest = csv_bytes(
        HEADER,
        "A,ok.png,Fine,,",
        f"B,ok.png,Bad sum,{'0' * 64},",
        "C,../outside.png,Climbs,,",
        "D,missing.png,,,",
        "E,folder,Dir,,",
        "A,ok.png,Repeat,,",
    )
    job = run_inline(uploaded(manifest))
    comments = dict(job.rows.values_list("identifier", "comment"))
    statuses = dict(job.rows.values_list("number", "status"))
    assert statuses == {
        1: "imported",
        2: "failed",
        3: "failed",
        4: "failed",
        5: "failed",
        6: "failed",
    }
    assert "checksum mismatch" in comments["B"]
    assert "path outside source" in comments["C"]
    assert "title is empty" in comments["D"] and "no such file" in comments["D"]
    assert "directory" in comments["E"]
    assert Row.objects.get(import_job=job, number=6).comment.startswith("identifier 'A' already")
    assert str(source) not in "".join(comments.values())
    assert (job.processed_rows, job.imported_rows, job.failed_rows) == (6, 1, 5)
    assert len(stored_files(job)) == 1


class FailingRead(io.BytesIO):
    """A file whose first read fails, as a bad disk sector or a dropped network mount would."""

    def read(self, size: int = -1) -> bytes:
        raise OSError(5, "Input/output error", "/srv/archive/secret/b.png")


@pytest.mark.parametrize(
    "broken",
    [
        "open",  # no permission
        "read",  # an I/O error once the file is open
        "resolve",  # a stale mount: the first stat, while resolving, fails
        "size",  # resolved, then gone or unreachable when it is sized
    ],
)
def test_an_unreadable_file_fails_its_row_alone(source, monkeypatch, broken):
    # given three rows whose second file cannot be read
    for name in "abc":
        (source / f"{name}.png").write_bytes(png_bytes(name))
    manifest = csv_bytes(HEADER, *(f"{n},{n}.png,Title {n},,red" for n in "abc"))
    unreadable = (source / "b.png").resolve()
    real_os_open, real_source_open, real_stat = os.open, FilesystemSource.open, Path.stat

    def os_open(path, *args, **kwargs):
        if path == unreadable and broken == "open":
            raise PermissionError(13, "Permission denied", str(path))
        return real_os_open(path, *args, **kwargs)

    def source_open(source, path):
        if path == unreadable and broken == "read":
            return FailingRead(b"")
        return real_source_open(source, path)

    stats = []

    def path_stat(path, *args, **kwargs):
        if path == unreadable:
            stats.append(path)
            if (broken, len(stats)) in {("resolve", 1), ("size", 2)}:
                raise OSError(116, "Stale file handle", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(FilesystemSource, "open", source_open)
    monkeypatch.setattr(Path, "stat", path_stat)
    # when
    job = run_inline(uploaded(manifest, batch_size=3))
    # then the row fails in words that name its own path, and the other rows import
    assert (job.status, job.imported_rows, job.failed_rows) == (ImportStatus.FINISHED, 2, 1)
    row = job.rows.get(number=2)
    assert (row.status, row.comment) == ("failed", "file_path 'b.png': the file cannot be read")
    assert set(Document.objects.values_list("identifier", flat=True)) == {"a", "c"}
    assert len(stored_files(job)) == 2, "a partial copy was left in storage"


def test_matching_checksum_imports(source):
    data = png_bytes("sum")
    (source / "s.png").write_bytes(data)
    job = run_inline(uploaded(csv_bytes(HEADER, f"S,s.png,Sum,sha256:{sha256(data).upper()},")))
    assert job.imported_rows == 1


def test_identical_document_is_skipped_and_a_different_one_fails(source):
    (source / "a.png").write_bytes(png_bytes("a"))
    run_inline(uploaded(csv_bytes(HEADER, "A,a.png,A,,")))
    (source / "b.png").write_bytes(png_bytes("b"))
    second = run_inline(uploaded(csv_bytes(HEADER, "A,a.png,A,,", "A2,b.png,B,,")))
    third = run_inline(uploaded(csv_bytes(HEADER, "A,b.png,A but other file,,")))
    assert (second.skipped_rows, second.imported_rows) == (1, 1)
    assert third.failed_rows == 1
    assert "already used by document" in third.rows.get().comment
    assert Document.objects.count() == 2
    assert stored_files(third) == set()


def test_a_redelivered_batch_changes_nothing(source):
    (source / "a.png").write_bytes(png_bytes("a"))
    job = uploaded(csv_bytes(HEADER, "A,a.png,A,,"))
    import_split(str(job.pk))
    batch = Batch.objects.get(import_job=job)
    batch_run(batch.pk)
    batch_run(batch.pk)
    job.refresh_from_db()
    assert (job.processed_rows, Document.objects.count()) == (1, 1)
    assert len(stored_files(job)) == 1


def test_a_batch_of_a_cancelled_import_does_not_commit_and_leaves_no_file(source):
    (source / "a.png").write_bytes(png_bytes("a"))
    job = uploaded(csv_bytes(HEADER, "A,a.png,A,,", "B,a.png,B,,", "C,a.png,C,,"), batch_size=1)
    import_split(str(job.pk))
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


def test_split_stages_rows_in_batches_and_blank_lines_are_not_rows(source):
    manifest = csv_bytes(HEADER, "A,a,A,,", "", "B,b,B,,", ",,,,", "C,c,C,,", "D,d,D,,", "E,e,E,,")
    job = uploaded(manifest, batch_size=2)
    import_split(str(job.pk))
    job.refresh_from_db()
    assert job.total_rows == 5
    assert list(job.batches.values_list("first_row", "last_row")) == [(1, 2), (3, 4), (5, 5)]
    assert list(job.rows.values_list("identifier", flat=True)) == list("ABCDE")


def test_split_run_twice_stages_once(source):
    job = uploaded(csv_bytes(HEADER, "A,a,A,,", "B,b,B,,", "C,c,C,,"))
    import_split(str(job.pk))
    Import.objects.filter(pk=job.pk).update(phase="counting")
    import_split(str(job.pk))
    assert (job.rows.count(), job.batches.count()) == (3, 2)


def test_report_mirrors_the_manifest_dialect_and_columns(source):
    (source / "a.png").write_bytes(png_bytes("a"))
    manifest = (
        '\ufeffTitle;File_Path;IDENTIFIER;Note\r\n"A; quoted";a.png;A;x\r\nB;nope.png;B;y\r\n'
    )
    job = run_inline(uploaded(manifest.encode("utf-8")))
    with job.report.open("rb") as report:
        text = report.read().decode("utf-8")
    lines = text.split("\r\n")
    assert text.startswith("\ufeff")
    assert lines[0] == "\ufeffTitle;File_Path;IDENTIFIER;Note;import_status;import_comment"
    assert lines[1].startswith('"A; quoted";a.png;A;x;imported;')
    assert lines[2].startswith("B;nope.png;B;y;failed;file_path 'nope.png': no such file")
