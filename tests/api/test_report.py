"""The report: the manifest row for row with import_status and import_comment appended."""

import csv
import errno
import io
import uuid

import pytest

from imports import reports
from imports.models import Document, Import
from tests.background import report_task_run
from tests.factories import csv_bytes, png_bytes, run_inline

from .conftest import MANIFEST_LINES, assert_error, body, create, job_of, streamed, upload, url


def report_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(streamed(response).decode("utf-8"))))


def test_report_while_pending_is_409(api, pending):
    assert_error(api.get(url("imports", pending["uuid"], "report")), 409, "import_still_open")


def test_report_while_active_is_409(api, active):
    assert_error(api.get(url("imports", active["uuid"], "report")), 409, "import_still_open")


def test_report_while_active_with_rows_failed_is_409(api, active):
    response = api.get(url("imports", active["uuid"], "report") + "?rows=failed")
    assert_error(response, 409, "import_still_open")


def test_report_of_an_unknown_import_is_404(api):
    assert_error(api.get(url("imports", uuid.uuid4(), "report")), 404, "not_found")


@pytest.mark.parametrize(
    ("codec", "bom", "charset"),
    [
        ("utf-8", b"\xef\xbb\xbf", "utf-8"),
        ("utf-16-le", b"\xff\xfe", "utf-16"),
        ("utf-16-be", b"\xfe\xff", "utf-16"),
        ("cp1252", b"", "windows-1252"),
    ],
)
def test_report_says_the_charset_it_is_written_in(api, pending, scans, codec, bom, charset):
    lines = ["identifier\tfile_path\ttitle", "d\tscans/a.png\tCaf\u00e9 \u00dcberweg \u2013 \u00bd"]
    upload(api, pending["uuid"], bom + csv_bytes(*lines, encoding=codec, newline="\r\n"))
    run_inline(job_of(pending["uuid"]))
    response = api.get(url("imports", pending["uuid"], "report"))
    assert response["Content-Type"] == f"text/csv; charset={charset}"
    data = streamed(response)
    assert data.startswith(bom)
    text = data[len(bom) :].decode(codec)
    assert text.splitlines()[1].startswith(
        "d\tscans/a.png\tCaf\u00e9 \u00dcberweg \u2013 \u00bd\timported\t"
    )


def test_report_is_a_csv_attachment_mirroring_the_manifest(api, finished):
    response = api.get(url("imports", finished.uuid, "report"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert f'filename="import-{finished.uuid}-report.csv"' in disposition
    rows = report_rows(response)
    manifest = list(csv.reader(io.StringIO("\n".join(MANIFEST_LINES))))
    assert rows[0] == [*manifest[0], "import_status", "import_comment"]
    assert len(rows) == len(manifest)
    for got, sent in zip(rows[1:], manifest[1:], strict=True):
        assert got[:-2] == sent
    documents = {d.identifier: str(d.uuid) for d in Document.objects.all()}
    assert rows[1][-2:] == ["imported", documents["doc-1"]]
    assert rows[2][-2] == "failed"
    assert "scans/missing.png" in rows[2][-1]
    assert "no such file" in rows[2][-1]
    assert rows[3][-2:] == ["imported", documents["doc-3"]]


def test_report_comments_reveal_no_server_path(api, finished, source):
    content = streamed(api.get(url("imports", finished.uuid, "report"))).decode()
    assert str(source) not in content
    assert str(source.parent) not in content


def test_failed_rows_only(api, finished):
    response = api.get(url("imports", finished.uuid, "report") + "?rows=failed")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment")
    assert f"import-{finished.uuid}-failed.csv" in response["Content-Disposition"]
    content = streamed(response).decode()
    assert content.splitlines() == [MANIFEST_LINES[0], MANIFEST_LINES[2]]
    assert "import_status" not in content


def test_failed_rows_manifest_can_be_uploaded_again(api, finished, source):
    failed = streamed(api.get(url("imports", finished.uuid, "report") + "?rows=failed"))
    (source / "scans" / "missing.png").write_bytes(png_bytes("found at last"))
    second = create(api)
    assert upload(api, second["uuid"], failed).status_code == 202
    job = run_inline(job_of(second["uuid"]))
    assert (job.total_rows, job.imported_rows, job.failed_rows) == (1, 1, 0)
    assert Document.objects.filter(identifier="doc-2").exists()


def test_failed_rows_is_empty_when_nothing_failed(api, pending, scans):
    upload(api, pending["uuid"], csv_bytes(MANIFEST_LINES[0], MANIFEST_LINES[1]))
    job = run_inline(job_of(pending["uuid"]))
    content = streamed(api.get(url("imports", job.uuid, "report") + "?rows=failed")).decode()
    assert content.splitlines() == [MANIFEST_LINES[0]]


def test_other_rows_values_give_the_whole_report(api, finished):
    rows = report_rows(api.get(url("imports", finished.uuid, "report") + "?rows=all"))
    assert len(rows) == 4
    assert rows[0][-2:] == ["import_status", "import_comment"]


def test_report_keeps_the_manifest_dialect(api, pending, scans):
    lines = ("identifier;file_path;title", "d-1;scans/a.png;T", "d-2;scans/none.png;U")
    upload(api, pending["uuid"], csv_bytes(*lines, newline="\r\n"))
    job = run_inline(job_of(pending["uuid"]))
    content = streamed(api.get(url("imports", job.uuid, "report"))).decode()
    assert content.startswith("identifier;file_path;title;import_status;import_comment\r\n")
    assert content.split("\r\n")[1].startswith("d-1;scans/a.png;T;imported;")
    failed = streamed(api.get(url("imports", job.uuid, "report") + "?rows=failed")).decode()
    assert failed == "identifier;file_path;title\r\nd-2;scans/none.png;U\r\n"


def test_blank_lines_are_not_reported(api, pending, scans):
    upload(
        api,
        pending["uuid"],
        csv_bytes(MANIFEST_LINES[0], "", MANIFEST_LINES[1], ",,,,,,,,", MANIFEST_LINES[3], ""),
    )
    job = run_inline(job_of(pending["uuid"]))
    assert job.total_rows == 2
    rows = [row for row in report_rows(api.get(url("imports", job.uuid, "report"))) if row]
    assert [row[0] for row in rows] == ["identifier", "doc-1", "doc-3"]


@pytest.mark.parametrize("accept", ["text/csv", "text/csv, application/json;q=0.5", "*/*"])
def test_accept_text_csv_is_not_406(api, finished, accept):
    response = api.get(url("imports", finished.uuid, "report"), HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert len(report_rows(response)) == 4


def test_accept_text_csv_error_still_has_code_and_detail(api, pending):
    response = api.get(url("imports", pending["uuid"], "report"), HTTP_ACCEPT="text/csv")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/json"
    data = body(response)
    assert data["code"] == "import_still_open"
    assert data["detail"]


def test_cancelled_import_without_manifest_has_no_report(api, pending):
    api.post(url("imports", pending["uuid"], "cancel"))
    assert_error(api.get(url("imports", pending["uuid"], "report")), 404, "report_missing")
    response = api.get(url("imports", pending["uuid"], "report") + "?rows=failed")
    assert_error(response, 404, "report_missing")


def test_cancelled_active_import_report_rows_are_not_processed(api, active):
    api.post(url("imports", active["uuid"], "cancel"))
    report_task_run(job_of(active["uuid"]))
    rows = report_rows(api.get(url("imports", active["uuid"], "report")))
    assert len(rows) == len(MANIFEST_LINES)
    assert {row[-2] for row in rows[1:]} == {"not_processed"}
    assert all("cancelled" in row[-1] for row in rows[1:])
    failed = streamed(api.get(url("imports", active["uuid"], "report") + "?rows=failed"))
    assert failed.decode().splitlines() == list(MANIFEST_LINES)


def test_ended_import_whose_report_is_not_written_yet_is_409(api, active):
    Import.objects.filter(pk=active["uuid"]).update(status="error", phase="", error="db gone")
    assert_error(api.get(url("imports", active["uuid"], "report")), 409, "report_not_ready")


def test_a_report_that_waits_for_space_says_so(api, active, monkeypatch):
    # given an import that ended in error, and a storage with no space left for its report
    from imports.lifecycle import import_fail
    from imports.reports import ended_import_report

    import_fail(active["uuid"], "a batch of rows failed: the storage is full.")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/media/reports/x.csv")

    monkeypatch.setattr(reports.default_storage, "save", full)
    ended_import_report(active["uuid"])
    monkeypatch.undo()
    # when
    response = api.get(url("imports", active["uuid"], "report"))
    # then the 409 says why the report is not there yet, and the status says it too
    detail = assert_error(response, 409, "report_not_ready")["detail"]
    assert detail == reports.REPORT_WAITS_FOR_SPACE
    assert "storage is full" in detail and "/srv" not in detail
    status = api.get(url("imports", active["uuid"], "status")).json()
    assert status["report_error"] == reports.REPORT_WAITS_FOR_SPACE
    assert status["error"] == "a batch of rows failed: the storage is full."


def test_import_that_ended_in_error_reports_every_row(api, active):
    from imports.lifecycle import import_fail

    import_fail(active["uuid"], "the database went away")
    report_task_run(job_of(active["uuid"]))
    status = api.get(url("imports", active["uuid"], "status")).json()
    assert status["status"] == "error"
    assert status["error"] == "the database went away"
    rows = report_rows(api.get(url("imports", active["uuid"], "report")))
    assert len(rows) == len(MANIFEST_LINES)
    assert {row[-2] for row in rows[1:]} == {"not_processed"}
    assert all("error" in row[-1] for row in rows[1:])


# --- row outcomes the SPEC asks for, seen through the report ------------------------------------


def _single_row_report(api, pending, source, line: str, data: bytes) -> list[str]:
    (source / "f").mkdir()
    (source / "f" / "file.bin").write_bytes(data)
    header = "identifier,file_path,title,content_type"
    upload(api, pending["uuid"], csv_bytes(header, line))
    job = run_inline(job_of(pending["uuid"]))
    return report_rows(api.get(url("imports", job.uuid, "report")))[1]


def test_row_with_a_content_type_not_allowed_fails(api, pending, source):
    row = _single_row_report(api, pending, source, "d,f/file.bin,T,", b"plain text, not a scan\n")
    assert row[-2:] == [
        "failed",
        "the file's type is application/octet-stream, which is not allowed here",
    ]


def test_row_whose_declared_type_differs_from_the_sniffed_one_fails(api, pending, source):
    row = _single_row_report(api, pending, source, "d,f/file.bin,T,application/pdf", png_bytes("x"))
    assert row[-2:] == ["failed", "content_type says application/pdf but the file is image/png"]


def test_options_on_the_report_with_accept_text_csv_is_not_a_server_error(api, finished):
    response = api.options(url("imports", finished.uuid, "report"), HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
