"""Judging a row: its own problems, its file's, a file that cannot be read; the other rows of
the batch import all the same. Run through the whole pipeline, with real files and storage."""

import io
import os
from pathlib import Path

import pytest

from imports.models import Document, Import, ImportStatus, Row
from imports.sources.filesystem import FilesystemSource

from .conftest import stored_files as stored_files_under
from .factories import csv_bytes, import_run, png_bytes, scans_in, sha256

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title,checksum,colour"


def stored_files(job: Import) -> set[str]:
    return stored_files_under(f"documents/{job.pk}")


@pytest.mark.parametrize("threads", [1, 4])
def test_every_failing_row_is_reported_and_the_others_import(source, settings, threads):
    settings.IMPORT_COPY_THREADS = threads
    scans_in(source, "ok.png")
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
    job = import_run(manifest, batch_size=2)
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
    scans_in(source, "a.png", "b.png", "c.png")
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
    job = import_run(manifest, batch_size=3)
    # then the row fails in words that name its own path, and the other rows import
    assert (job.status, job.imported_rows, job.failed_rows) == (ImportStatus.FINISHED, 2, 1)
    row = job.rows.get(number=2)
    assert (row.status, row.comment) == ("failed", "file_path 'b.png': the file cannot be read")
    assert set(Document.objects.values_list("identifier", flat=True)) == {"a", "c"}
    assert len(stored_files(job)) == 2, "a partial copy was left in storage"


def test_matching_checksum_imports(source):
    data = png_bytes("sum")
    (source / "s.png").write_bytes(data)
    manifest = csv_bytes(HEADER, f"S,s.png,Sum,sha256:{sha256(data).upper()},")
    job = import_run(manifest, batch_size=2)
    assert job.imported_rows == 1
