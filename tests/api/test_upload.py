"""Uploading a manifest: raw text/csv or multipart, and every way it is refused."""

import base64
import codecs
import hashlib
import io
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imports.api.uploads import CompleteBody, digest_header_parse
from imports.errors import DigestInvalid, ManifestIncomplete
from imports.models import Document, Import
from tests.conftest import stored_files
from tests.factories import csv_bytes, png_bytes, run_inline

from .conftest import MANIFEST_LINES, assert_error, create, job_of, status_of, upload, url

HEADER = "identifier,file_path,title"


def multipart(api, uuid_, data: bytes, field: str = "file", name: str = "m.csv"):
    return api.post(
        url("imports", uuid_, "upload"),
        {field: SimpleUploadedFile(name, data, content_type="text/csv")},
        format="multipart",
    )


def assert_untouched(uuid_) -> None:
    """The import is still pending, with no manifest: the upload changed nothing."""
    job = job_of(uuid_)
    assert job.status == "pending"
    assert not job.manifest
    assert job.started_at is None


# --- accepted ---------------------------------------------------------------------------------


def test_raw_csv_upload_is_202_and_the_import_becomes_active(api, pending, scans):
    response = upload(api, pending["uuid"], csv_bytes(*MANIFEST_LINES))
    assert response.status_code == 202
    data = response.json()
    assert data["uuid"] == pending["uuid"]
    assert data["status"] == "active"
    assert data["phase"] == "counting"
    assert data["started_at"] is not None
    job = job_of(pending["uuid"])
    assert job.status == "active"
    assert job.manifest
    assert job.manifest_format["columns"] == MANIFEST_LINES[0].split(",")


def test_multipart_upload_is_202_and_the_import_becomes_active(api, pending, scans):
    response = multipart(api, pending["uuid"], csv_bytes(*MANIFEST_LINES))
    assert response.status_code == 202
    assert response.json()["status"] == "active"
    assert status_of(pending["uuid"]) == "active"


def test_multipart_upload_runs_to_the_end(api, pending, scans):
    multipart(api, pending["uuid"], csv_bytes(*MANIFEST_LINES))
    job = run_inline(job_of(pending["uuid"]))
    assert (job.status, job.imported_rows, job.failed_rows) == ("finished", 2, 1)


def test_content_type_with_charset_is_accepted(api, pending, scans):
    response = upload(api, pending["uuid"], csv_bytes(*MANIFEST_LINES), "text/csv; charset=utf-8")
    assert response.status_code == 202


@pytest.mark.parametrize(
    "lines",
    [
        (" Identifier ;FILE_PATH; Title", "d;scans/a.png;T"),
        ("identifier\tfile_path\ttitle", "d\tscans/a.png\tT"),
        ("identifier|file_path|title", "d|scans/a.png|T, with a comma; and a semicolon"),
        ('"identifier","file_path","title"', '"d","scans/a.png","T, with a comma"'),
    ],
    ids=["semicolon-case-spaces", "tab", "pipe", "quoted"],
)
def test_header_names_and_dialects_are_accepted(api, pending, scans, lines):
    assert upload(api, pending["uuid"], csv_bytes(*lines)).status_code == 202


def test_utf8_bom_and_crlf_are_accepted(api, pending, scans):
    data = b"\xef\xbb\xbf" + csv_bytes(*MANIFEST_LINES, newline="\r\n")
    assert upload(api, pending["uuid"], data).status_code == 202


def test_windows_1252_manifest_is_accepted(api, pending, scans):
    data = csv_bytes(HEADER, "d,scans/a.png,Caf\u00e9 cr\u00e8me", encoding="cp1252")
    assert upload(api, pending["uuid"], data).status_code == 202


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (b"", "cp1252"),
        (codecs.BOM_UTF8, "utf-8"),
    ],
    ids=["utf-16-le-excel-unicode-text", "utf-16-be", "windows-1252", "utf-8-bom"],
)
def test_a_legacy_encoded_manifest_imports_its_titles_unchanged(api, pending, scans, bom, encoding):
    # given: tab-delimited CRLF lines, as Excel's "Unicode text" writes them
    lines = (
        "identifier\tfile_path\ttitle",
        "d-1\tscans/a.png\tCaf\u00e9 \u00dcberweg \u2013 \u00bd",
    )
    data = bom + csv_bytes(*lines, encoding=encoding, newline="\r\n")

    # when
    assert upload(api, pending["uuid"], data).status_code == 202
    job = run_inline(job_of(pending["uuid"]))

    # then
    assert (job.status, job.imported_rows) == ("finished", 1)
    assert Document.objects.get(identifier="d-1").title == "Café Überweg – ½"
    assert (job.manifest_format["encoding"], job.manifest_format["bom"]) == (encoding, bool(bom))


def test_ragged_rows_fail_alone_with_a_comment_and_padding_is_fine(api, pending, scans):
    # given: a short row, a long row, and a row padded with empty cells as spreadsheets do
    data = csv_bytes(
        "identifier;file_path;title",
        "d-1;scans/a.png",
        "d-2;scans/a.png;Two;surplus",
        "d-3;scans/b.png;Three;;",
    )

    # when
    upload(api, pending["uuid"], data)
    job = run_inline(job_of(pending["uuid"]))

    # then
    statuses = dict(job.rows.values_list("number", "status"))
    comments = dict(job.rows.values_list("number", "comment"))
    assert statuses == {1: "failed", 2: "failed", 3: "imported"}
    assert "the row has 2 fields where the header has 3" in comments[1]
    assert "the row has 4 fields where the header has 3" in comments[2]


# --- 400 --------------------------------------------------------------------------------------


def test_a_quote_left_open_past_the_sample_is_refused_at_upload(api, pending, source):
    lines = ["identifier,file_path,title"] + [f"A{n},a.pdf,x" for n in range(3000)]
    lines += ['B,b.pdf,"never closed'] + [f"C{n},c.pdf,x" for n in range(20_000)]
    response = upload(api, pending["uuid"], csv_bytes(*lines))
    data = assert_error(response, 400, "manifest_malformed")
    assert data["detail"].startswith("The manifest is not well-formed CSV after row 3000:")
    assert status_of(pending["uuid"]) == "pending"


def test_missing_required_headers_are_listed(api, pending, source):
    response = upload(api, pending["uuid"], csv_bytes("identifier,name,notes", "a,b,c"))
    data = assert_error(response, 400, "manifest_header_invalid")
    assert data["missing"] == ["file_path", "title"]
    assert data["duplicated"] == []
    assert "file_path" in data["detail"] and "title" in data["detail"]
    assert_untouched(pending["uuid"])


def test_duplicated_headers_are_listed(api, pending, source):
    response = upload(
        api,
        pending["uuid"],
        csv_bytes("identifier,file_path,title,Title ,shelf,SHELF", "a,b,c,d,e,f"),
    )
    data = assert_error(response, 400, "manifest_header_invalid")
    assert data["duplicated"] == ["shelf", "title"]
    assert data["missing"] == []
    assert_untouched(pending["uuid"])


def test_missing_and_duplicated_headers_together(api, pending, source):
    response = upload(api, pending["uuid"], csv_bytes("identifier,identifier,title", "a,b,c"))
    data = assert_error(response, 400, "manifest_header_invalid")
    assert data["missing"] == ["file_path"]
    assert data["duplicated"] == ["identifier"]


def test_multipart_header_errors_are_listed_too(api, pending, source):
    response = multipart(api, pending["uuid"], csv_bytes("title,notes", "x,y"))
    data = assert_error(response, 400, "manifest_header_invalid")
    assert data["missing"] == ["identifier", "file_path"]
    assert_untouched(pending["uuid"])


def test_single_column_manifest_lists_the_missing_columns(api, pending, source):
    response = upload(api, pending["uuid"], csv_bytes("identifier", "doc-1", "doc-2"))
    data = assert_error(response, 400)
    assert data.get("missing") == ["file_path", "title"]
    assert_untouched(pending["uuid"])


@pytest.mark.parametrize(
    "data", [b"", b"\n\n\r\n", b"   \n"], ids=["no-bytes", "blank-lines", "spaces"]
)
def test_empty_raw_body_is_400(api, pending, source, data):
    assert_error(upload(api, pending["uuid"], data), 400, "manifest_empty")
    assert_untouched(pending["uuid"])


def test_empty_multipart_file_is_400(api, pending, source):
    assert_error(multipart(api, pending["uuid"], b""), 400, "manifest_empty")
    assert_untouched(pending["uuid"])


def test_undecodable_bytes_are_400(api, pending, source):
    # A PNG sent as the manifest: binary, with control characters in any encoding.
    response = upload(api, pending["uuid"], png_bytes("not a manifest", 4096))
    data = assert_error(response, 400, "manifest_undecodable")
    assert "control character 0x1a at byte offset 6" in data["detail"]
    assert_untouched(pending["uuid"])


def test_utf16_without_its_byte_order_mark_is_400(api, pending, source):
    response = upload(api, pending["uuid"], csv_bytes(*MANIFEST_LINES, encoding="utf-16-le"))
    data = assert_error(response, 400, "manifest_undecodable")
    assert "control character 0x00 at byte offset 1" in data["detail"]
    assert_untouched(pending["uuid"])


def test_invalid_utf8_after_a_good_header_is_400(api, pending, source):
    data = csv_bytes(HEADER) + b"a,b,\x00\xff\xfe\n"
    assert_error(upload(api, pending["uuid"], data), 400, "manifest_undecodable")
    assert_untouched(pending["uuid"])


def test_multipart_without_file_field_is_400(api, pending, source):
    response = multipart(api, pending["uuid"], csv_bytes(*MANIFEST_LINES), field="manifest")
    data = assert_error(response, 400, "manifest_empty")
    assert "file" in data["detail"]
    assert_untouched(pending["uuid"])


def test_multipart_with_only_plain_fields_is_400(api, pending, source):
    response = api.post(
        url("imports", pending["uuid"], "upload"), {"note": "hello"}, format="multipart"
    )
    assert_error(response, 400, "manifest_empty")
    assert_untouched(pending["uuid"])


# --- 404, 409 ---------------------------------------------------------------------------------


def test_upload_to_an_unknown_import_is_404(api, source):
    response = upload(api, uuid.uuid4(), csv_bytes(*MANIFEST_LINES))
    assert_error(response, 404, "not_found")


def test_upload_twice_is_409(api, active):
    response = upload(api, active["uuid"], csv_bytes(*MANIFEST_LINES))
    assert_error(response, 409, "import_not_pending")
    assert status_of(active["uuid"]) == "active"


@pytest.mark.parametrize("end", ["cancelled", "finished"])
def test_upload_to_an_ended_import_is_409(api, pending, source, end):
    if end == "cancelled":
        api.post(url("imports", pending["uuid"], "cancel"))
    else:
        upload(api, pending["uuid"], csv_bytes(HEADER))
        run_inline(job_of(pending["uuid"]))
    response = upload(api, pending["uuid"], csv_bytes(HEADER))
    assert_error(response, 409, "import_not_pending")
    assert status_of(pending["uuid"]) == end


def test_upload_with_a_missing_source_folder_is_409(api, pending, settings, tmp_path):
    missing = tmp_path / "nowhere-to-be-found"
    settings.IMPORT_SOURCE = str(missing)
    response = upload(api, pending["uuid"], csv_bytes(*MANIFEST_LINES))
    data = assert_error(response, 409, "source_misconfigured")
    assert str(missing) not in response.content.decode()
    assert "nowhere-to-be-found" not in response.content.decode()
    assert str(tmp_path) not in data["detail"]
    assert_untouched(pending["uuid"])


def test_upload_with_a_file_as_source_is_409(api, pending, settings, tmp_path):
    a_file = tmp_path / "source.txt"
    a_file.write_text("not a folder")
    settings.IMPORT_SOURCE = str(a_file)
    response = multipart(api, pending["uuid"], csv_bytes(*MANIFEST_LINES))
    assert_error(response, 409, "source_misconfigured")
    assert str(tmp_path) not in response.content.decode()
    assert_untouched(pending["uuid"])


def test_source_fixed_then_upload_succeeds(api, pending, settings, tmp_path, scans):
    good = settings.IMPORT_SOURCE
    settings.IMPORT_SOURCE = str(tmp_path / "missing")
    assert_error(upload(api, pending["uuid"], csv_bytes(*MANIFEST_LINES)), 409)
    settings.IMPORT_SOURCE = good
    assert upload(api, pending["uuid"], csv_bytes(*MANIFEST_LINES)).status_code == 202


# --- 413 --------------------------------------------------------------------------------------


def test_raw_body_larger_than_allowed_is_413(api, pending, source, settings):
    settings.IMPORT_MAX_MANIFEST_BYTES = 10
    response = upload(api, pending["uuid"], csv_bytes(*MANIFEST_LINES))
    data = assert_error(response, 413, "manifest_too_large")
    assert "10" in data["detail"]
    assert_untouched(pending["uuid"])


def test_multipart_larger_than_allowed_is_413(api, pending, source, settings):
    settings.IMPORT_MAX_MANIFEST_BYTES = 10
    assert_error(multipart(api, pending["uuid"], csv_bytes(*MANIFEST_LINES)), 413)
    assert_untouched(pending["uuid"])


def test_body_of_exactly_the_limit_is_accepted(api, pending, scans, settings):
    data = csv_bytes(*MANIFEST_LINES)
    settings.IMPORT_MAX_MANIFEST_BYTES = len(data)
    assert upload(api, pending["uuid"], data).status_code == 202


def test_413_leaves_the_import_uploadable(api, pending, scans, settings):
    data = csv_bytes(*MANIFEST_LINES)
    settings.IMPORT_MAX_MANIFEST_BYTES = len(data) - 1
    assert_error(upload(api, pending["uuid"], data), 413)
    settings.IMPORT_MAX_MANIFEST_BYTES = len(data)
    assert upload(api, pending["uuid"], data).status_code == 202


# --- cut short, digests -----------------------------------------------------------------------


def cut_short(api, uuid_, data: bytes, content_type: str = "text/csv"):
    """An upload whose connection ended after half of the length it announced."""
    return api.post(
        url("imports", uuid_, "upload"),
        CONTENT_TYPE=content_type,
        CONTENT_LENGTH=str(len(data)),
        **{"wsgi.input": io.BytesIO(data[: len(data) // 2])},
    )


def test_a_raw_body_shorter_than_its_content_length_is_400_and_nothing_is_stored(
    api, pending, scans
):
    data = csv_bytes(*MANIFEST_LINES)
    response = cut_short(api, pending["uuid"], data)
    detail = assert_error(response, 400, "manifest_incomplete")["detail"]
    assert f"of the {len(data)} bytes" in detail
    assert_untouched(pending["uuid"])
    assert not stored_files("manifests")


BOUNDARY = "b0undary"
MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart_body(manifest: bytes, epilogue: bytes = b"") -> bytes:
    """A multipart body with `manifest` as its field `file`, written out by hand."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="m.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    )
    return head.encode() + manifest + f"\r\n--{BOUNDARY}--\r\n".encode() + epilogue


def test_a_multipart_body_shorter_than_its_content_length_is_400(api, pending, scans):
    data = multipart_body(csv_bytes(*MANIFEST_LINES) * 50)
    response = cut_short(api, pending["uuid"], data, MULTIPART_TYPE)
    assert_error(response, 400, "manifest_incomplete")
    assert_untouched(pending["uuid"])


def test_a_complete_body_reads_whole_and_a_cut_one_raises():
    whole = CompleteBody(io.BytesIO(b"x" * 10), 10)
    assert whole.read(4) + whole.read() == b"x" * 10
    assert whole.read() == b""
    cut = CompleteBody(io.BytesIO(b"x" * 6), 10)
    assert cut.read(4) == b"xxxx"
    assert cut.read(4) == b"xx"
    with pytest.raises(ManifestIncomplete):
        cut.read(4)


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def with_sha256(kind: str, api, uuid_, data: bytes, sha256: str):
    """A raw or multipart upload to the upload URL with `?sha256=`."""
    target = f"{url('imports', uuid_, 'upload')}?sha256={sha256}"
    if kind == "raw":
        return api.post(target, data=data, content_type="text/csv")
    manifest = SimpleUploadedFile("m.csv", data, content_type="text/csv")
    return api.post(target, {"file": manifest}, format="multipart")


def test_the_manifest_sha256_is_recorded_and_shown(api, pending, scans):
    data = csv_bytes(*MANIFEST_LINES)
    response = upload(api, pending["uuid"], data)
    assert response.json()["manifest_sha256"] == hashlib.sha256(data).hexdigest()
    status = api.get(url("imports", pending["uuid"], "status")).json()
    assert status["manifest_sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", ["raw", "multipart"])
def test_a_matching_sha256_parameter_is_accepted(api, pending, scans, kind):
    data = csv_bytes(*MANIFEST_LINES)
    digest = hashlib.sha256(data).hexdigest().upper()
    response = with_sha256(kind, api, pending["uuid"], data, digest)
    assert response.status_code == 202, response.content


@pytest.mark.parametrize("kind", ["raw", "multipart"])
def test_a_manifest_that_differs_from_its_sha256_is_400_and_nothing_is_stored(
    api, pending, scans, kind
):
    data = csv_bytes(*MANIFEST_LINES)
    other = hashlib.sha256(b"another manifest").hexdigest()
    response = with_sha256(kind, api, pending["uuid"], data, other)
    detail = assert_error(response, 400, "manifest_digest_mismatch")["detail"]
    assert hashlib.sha256(data).hexdigest() in detail
    assert_untouched(pending["uuid"])
    assert not stored_files("manifests")


@pytest.mark.parametrize("header", ["Content-Digest", "Repr-Digest"])
def test_a_body_matching_its_digest_header_is_accepted(api, pending, scans, header):
    data = csv_bytes(*MANIFEST_LINES)
    value = f"sha-512=:{b64(hashlib.sha512(data).digest())}:, md5=:AAAA:, "
    value += f"sha-256=:{b64(hashlib.sha256(data).digest())}:"
    response = api.post(
        url("imports", pending["uuid"], "upload"),
        data,
        content_type="text/csv",
        headers={header: value},
    )
    assert response.status_code == 202, response.content


@pytest.mark.parametrize("header", ["Content-Digest", "Repr-Digest"])
def test_a_body_differing_from_its_digest_header_is_400(api, pending, scans, header):
    data = csv_bytes(*MANIFEST_LINES)
    value = f"sha-256=:{b64(hashlib.sha256(data[:-1]).digest())}:"
    response = api.post(
        url("imports", pending["uuid"], "upload"),
        data,
        content_type="text/csv",
        headers={header: value},
    )
    assert_error(response, 400, "manifest_digest_mismatch")
    assert_untouched(pending["uuid"])


def test_a_multipart_content_digest_covers_the_whole_body(api, pending, scans):
    data = multipart_body(csv_bytes(*MANIFEST_LINES), epilogue=b"an epilogue")

    def send(body_digest: bytes):
        return api.post(
            url("imports", pending["uuid"], "upload"),
            data,
            content_type=MULTIPART_TYPE,
            headers={"Content-Digest": f"sha-256=:{b64(body_digest)}:"},
        )

    assert_error(send(hashlib.sha256(data[:-1]).digest()), 400, "manifest_digest_mismatch")
    assert send(hashlib.sha256(data).digest()).status_code == 202


@pytest.mark.parametrize(
    "value",
    ["sha-256=abc", "sha-256=:not base64!:", "md5=:AAAA:", "", "sha-256"],
    ids=["not-a-byte-sequence", "not-base64", "no-algorithm-checked", "empty", "no-value"],
)
def test_an_unreadable_digest_header_is_400(api, pending, scans, value):
    response = api.post(
        url("imports", pending["uuid"], "upload"),
        csv_bytes(*MANIFEST_LINES),
        content_type="text/csv",
        headers={"Content-Digest": value},
    )
    assert_error(response, 400, "digest_invalid")
    assert_untouched(pending["uuid"])


def test_a_malformed_sha256_parameter_is_400(api, pending, scans):
    response = with_sha256("raw", api, pending["uuid"], csv_bytes(*MANIFEST_LINES), "abc")
    assert_error(response, 400, "digest_invalid")
    assert_untouched(pending["uuid"])


def test_digest_fields_keep_only_algorithms_checked():
    digest = hashlib.sha256(b"x").digest()
    parsed = digest_header_parse(f"unixsum=:AAAA:, SHA-256=:{b64(digest)}:;param=1")
    assert parsed == {"sha-256": digest}
    with pytest.raises(DigestInvalid):
        digest_header_parse("sha=:AAAA:")


# --- curl -T: PUT, no Content-Type ------------------------------------------------------------


def test_a_put_without_content_type_is_the_raw_manifest(api, pending, scans):
    # `curl -T m.csv URL` sends PUT with no Content-Type
    response = api.generic(
        "PUT", url("imports", pending["uuid"], "upload"), csv_bytes(*MANIFEST_LINES), ""
    )
    assert response.status_code == 202, response.content
    assert run_inline(job_of(pending["uuid"])).imported_rows == 2


def test_a_compressed_body_is_415(api, pending, scans):
    response = api.post(
        url("imports", pending["uuid"], "upload"),
        csv_bytes(*MANIFEST_LINES),
        content_type="text/csv",
        headers={"Content-Encoding": "gzip"},
    )
    assert_error(response, 415, "unsupported_media_type")
    assert_untouched(pending["uuid"])


# --- 415, 403 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
    ],
)
def test_other_content_types_are_415(api, pending, source, content_type):
    response = upload(api, pending["uuid"], csv_bytes(*MANIFEST_LINES), content_type)
    assert_error(response, 415, "unsupported_media_type")
    assert_untouched(pending["uuid"])


def test_json_body_is_415(api, pending, source):
    response = api.post(url("imports", pending["uuid"], "upload"), {"file": "x"}, format="json")
    assert_error(response, 415, "unsupported_media_type")
    assert_untouched(pending["uuid"])


def test_read_only_upload_is_403_and_changes_nothing(reader_api, pending, scans):
    response = reader_api.post(
        url("imports", pending["uuid"], "upload"),
        data=csv_bytes(*MANIFEST_LINES),
        content_type="text/csv",
    )
    assert_error(response, 403, "permission_denied")
    assert_untouched(pending["uuid"])


def test_a_second_import_can_be_created_after_the_first_finished(api, finished):
    second = create(api)
    response = upload(api, second["uuid"], csv_bytes(*MANIFEST_LINES))
    assert response.status_code == 202
    job = run_inline(job_of(second["uuid"]))
    # Idempotent: what was imported is now skipped; the missing file still fails.
    assert (job.imported_rows, job.skipped_rows, job.failed_rows) == (0, 2, 1)
    assert Import.objects.count() == 2
