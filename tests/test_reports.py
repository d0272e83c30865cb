"""The report and the failed-rows manifest keep the manifest's encoding, mark and dialect."""

import codecs
import io

import pytest

from imports.lifecycle import import_cancel, import_create, import_upload
from imports.manifest import detect_format, read_rows
from imports.models import Import
from imports.reports import failed_rows_manifest

from .conftest import png_bytes, run_inline

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
    (source / "scans").mkdir()
    (source / "scans" / "a.png").write_bytes(png_bytes("a"))
    job = import_upload(import_create(), io.BytesIO(data))
    return run_inline(job)


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
    job = import_upload(import_create(), io.BytesIO(data))

    # when
    job = import_cancel(job)

    # then
    report = report_bytes(job)
    assert report.startswith(codecs.BOM_UTF16_BE + "identifier\t".encode("utf-16-be"))
    found = detect_format(io.BytesIO(report))
    statuses = [cells[4] for _, cells in read_rows(io.BytesIO(report), found)]
    assert statuses == ["not_processed"] * 3


def test_an_import_stored_with_the_earlier_format_shape_still_reports(source):
    # given: manifest_format as stored before the byte-order mark had its own field
    data = codecs.BOM_UTF8 + "".join(manifest_lines(",", "\n")).encode()
    job = import_upload(import_create(), io.BytesIO(data))
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
    job = import_cancel(Import.objects.get(pk=job.pk))

    # then
    assert report_bytes(job).startswith(codecs.BOM_UTF8 + b"identifier,file_path,title,Shelf,")
