"""The report and the failed-rows manifest keep the manifest's encoding, mark and dialect."""

import codecs
import errno
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from imports import reports
from imports.lifecycle import (
    import_cancel,
    import_delete,
    import_resume,
)
from imports.manifest import detect_format, read_rows
from imports.models import Import
from imports.reports import REPORT_WAITS_FOR_SPACE, ended_import_report, failed_rows_manifest

from .background import report_task_run
from .conftest import stored_files
from .factories import (
    import_cancelled,
    import_failed,
    import_run,
    import_uploaded,
    png_bytes,
    scans_in,
)

pytestmark = pytest.mark.django_db

TITLE = "Café Überweg – ½"
FORMATS = [
    pytest.param(b"", "utf-8", ",", "\n", id="utf-8-comma-lf"),
    pytest.param(codecs.BOM_UTF8, "utf-8", ";", "\r\n", id="utf-8-bom-semicolon-crlf"),
    pytest.param(codecs.BOM_UTF16_LE, "utf-16-le", "\t", "\r\n", id="utf-16-le-excel-unicode-text"),
    pytest.param(codecs.BOM_UTF16_BE, "utf-16-be", "|", "\n", id="utf-16-be-pipe"),
    pytest.param(b"", "cp1252", ";", "\r\n", id="windows-1252-semicolon"),
]


def manifest_lines(delimiter: str, newline: str) -> list[str]:
    """A header and three rows: one imports, one misses its file, one holds quoted values."""
    d = delimiter
    return [
        f"identifier{d}file_path{d}title{d}Shelf{newline}",
        f"A1{d}scans/a.png{d}{TITLE}{d}S-1{newline}",
        f"A2{d}scans/missing.png{d}Missing{d}S-2{newline}",
        f'A3{d}"scans/{d}gone.png"{d}"a ""quoted""{newline}title"{d}{newline}',
    ]


def ended(source, data: bytes) -> Import:
    scans_in(source, "scans/a.png")
    return import_run(data)


def report_bytes(job: Import) -> bytes:
    with job.report.open("rb") as report:
        return report.read()


@pytest.mark.parametrize(("bom", "encoding", "delimiter", "newline"), FORMATS)
def test_the_report_is_written_as_the_manifest_was(source, bom, encoding, delimiter, newline):
    # given
    lines = manifest_lines(delimiter, newline)
    job = ended(source, bom + "".join(lines).encode(encoding))

    # when
    report = report_bytes(job)

    # then: the same mark, encoding, delimiter, line ends and quoting, two columns appended
    header = lines[0].removesuffix(newline)
    expected_header = f"{header}{delimiter}import_status{delimiter}import_comment{newline}"
    assert report.startswith(bom + expected_header.encode(encoding))
    for line in lines[1:]:
        assert line.removesuffix(newline).encode(encoding) + delimiter.encode(encoding) in report
    found = detect_format(io.BytesIO(report))
    assert (found.encoding, found.bom, found.delimiter, found.lineterminator) == (
        encoding,
        bool(bom),
        delimiter,
        newline,
    )
    rows = [cells for _, cells in read_rows(io.BytesIO(report), found)]
    assert [row[:4] for row in rows] == [
        ["A1", "scans/a.png", TITLE, "S-1"],
        ["A2", "scans/missing.png", "Missing", "S-2"],
        ["A3", f"scans/{delimiter}gone.png", f'a "quoted"{newline}title', ""],
    ]
    assert [row[4] for row in rows] == ["imported", "failed", "failed"]


@pytest.mark.parametrize(("bom", "encoding", "delimiter", "newline"), FORMATS)
def test_failed_rows_come_back_byte_for_byte_as_in_the_manifest(
    source, bom, encoding, delimiter, newline
):
    # given
    lines = manifest_lines(delimiter, newline)
    job = ended(source, bom + "".join(lines).encode(encoding))

    # when
    failed = b"".join(failed_rows_manifest(job))

    # then
    assert failed == bom + "".join([lines[0], lines[2], lines[3]]).encode(encoding)


def test_a_cancelled_import_reports_every_row_in_the_manifest_encoding(source):
    # given
    data = codecs.BOM_UTF16_BE + "".join(manifest_lines("\t", "\r\n")).encode("utf-16-be")

    # when
    job = report_task_run(import_cancelled(data))

    # then
    report = report_bytes(job)
    assert report.startswith(codecs.BOM_UTF16_BE + "identifier\t".encode("utf-16-be"))
    found = detect_format(io.BytesIO(report))
    statuses = [cells[4] for _, cells in read_rows(io.BytesIO(report), found)]
    assert statuses == ["not_processed"] * 3


def test_an_import_stored_with_the_earlier_format_shape_still_reports(source):
    # given: manifest_format as stored before the byte-order mark had its own field
    data = codecs.BOM_UTF8 + "".join(manifest_lines(",", "\n")).encode()
    job = import_uploaded(data)
    Import.objects.filter(pk=job.pk).update(
        manifest_format={
            "encoding": "utf-8-sig",
            "delimiter": ",",
            "quotechar": '"',
            "escapechar": "",
            "lineterminator": "\n",
            "columns": ["identifier", "file_path", "title", "Shelf"],
        }
    )

    # when
    job = report_task_run(import_cancel(Import.objects.get(pk=job.pk)))

    # then
    assert report_bytes(job).startswith(codecs.BOM_UTF8 + b"identifier,file_path,title,Shelf,")


# --- a storage that fills up, and writes that lose a race ----------------------------------------


@pytest.fixture
def cancelled(source) -> Import:
    """A cancelled import whose report is not written yet."""
    data = "".join(manifest_lines(",", "\n")).encode()
    return import_cancelled(data)


class StorageSaving:
    """The storage as the report module sees it, with `save` changed (the rest unchanged)."""

    def __init__(self, save) -> None:
        self.save = save

    def __getattr__(self, name: str):
        return getattr(default_storage, name)


def storage_fills(monkeypatch) -> None:
    """From now on, the storage stores the first bytes of a report, then has no space left."""

    def save_part(name, content, max_length=None):
        default_storage.save(name, ContentFile(content.read(64)), max_length=max_length)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(reports, "default_storage", StorageSaving(save_part))


def test_a_report_write_that_fills_the_storage_removes_what_it_wrote(cancelled, monkeypatch):
    # when the report task meets a full storage
    storage_fills(monkeypatch)
    ended_import_report(str(cancelled.pk))
    # then no part of the report stays, and the import says what it waits for
    assert stored_files("reports") == set()
    job = Import.objects.get(pk=cancelled.pk)
    assert (job.report.name, job.report_error) == ("", REPORT_WAITS_FOR_SPACE)
    # and once there is space, the next try writes it and takes the notice back
    monkeypatch.undo()
    ended_import_report(str(cancelled.pk))
    job.refresh_from_db()
    assert job.report and job.report_error == ""
    assert stored_files("reports") == {job.report.name}


def test_the_notice_of_a_full_storage_leaves_the_error_an_import_ended_with(source, monkeypatch):
    data = "".join(manifest_lines(",", "\n")).encode()
    job = import_failed(data, "a batch of rows failed: the storage is full.")
    storage_fills(monkeypatch)
    for _ in range(2):  # said once however many tries fail
        ended_import_report(str(job.pk))
    job.refresh_from_db()
    assert job.error == "a batch of rows failed: the storage is full."
    assert job.report_error == REPORT_WAITS_FOR_SPACE
    monkeypatch.undo()
    ended_import_report(str(job.pk))
    job.refresh_from_db()
    assert (job.error, job.report_error) == ("a batch of rows failed: the storage is full.", "")


def write_during(monkeypatch, meanwhile) -> None:
    """Make the next report write call `meanwhile()` just before it stores its file."""

    def save_after(name, content, max_length=None):
        meanwhile()
        return default_storage.save(name, content, max_length=max_length)

    monkeypatch.setattr(reports, "default_storage", StorageSaving(save_after))


def test_a_report_write_for_an_import_deleted_meanwhile_leaves_no_file(cancelled, monkeypatch):
    import_id = str(cancelled.pk)
    write_during(monkeypatch, lambda: import_delete(Import.objects.get(pk=import_id)))
    ended_import_report(import_id)
    assert stored_files("reports") == set()


def test_a_report_write_for_an_import_resumed_meanwhile_is_not_recorded(source, monkeypatch):
    data = "".join(manifest_lines(",", "\n")).encode()
    job = import_failed(data, "a batch of rows failed (OSError).")
    write_during(monkeypatch, lambda: import_resume(Import.objects.get(pk=job.pk)))
    ended_import_report(str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.report.name) == ("active", "")
    assert stored_files("reports") == set()


def test_report_mirrors_the_manifest_dialect_and_columns(source):
    (source / "a.png").write_bytes(png_bytes("a"))
    manifest = (
        '\ufeffTitle;File_Path;IDENTIFIER;Note\r\n"A; quoted";a.png;A;x\r\nB;nope.png;B;y\r\n'
    )
    job = import_run(manifest.encode("utf-8"), batch_size=2)
    with job.report.open("rb") as report:
        text = report.read().decode("utf-8")
    lines = text.split("\r\n")
    assert text.startswith("\ufeff")
    assert lines[0] == "\ufeffTitle;File_Path;IDENTIFIER;Note;import_status;import_comment"
    assert lines[1].startswith('"A; quoted";a.png;A;x;imported;')
    assert lines[2].startswith("B;nope.png;B;y;failed;file_path 'nope.png': no such file")
