"""Imported documents: list, filters, detail and stored content."""

import uuid

import pytest
from django.core.files.storage import default_storage

from imports.models import Document
from tests.factories import csv_bytes, png_bytes, run_inline, sha256

from .conftest import MANIFEST_LINES, assert_error, create, job_of, streamed, upload, url

DOCUMENT_FIELDS = {
    "uuid",
    "identifier",
    "title",
    "description",
    "author",
    "created_date",
    "language",
    "confidentiality",
    "content_type",
    "size",
    "sha256",
    "file_name",
    "extra",
    "import",
    "created_at",
    "updated_at",
    "content_url",
}


def document_uuid(identifier: str) -> str:
    return str(Document.objects.get(identifier=identifier).uuid)


def test_list(api, finished):
    response = api.get(url("documents/"))
    assert response.status_code == 200
    data = response.json()
    assert data.keys() == {"count", "next", "previous", "results"}
    assert data["count"] == 2
    assert data["next"] is None and data["previous"] is None
    assert [item["identifier"] for item in data["results"]] == ["doc-1", "doc-3"]
    assert data["results"][0].keys() >= DOCUMENT_FIELDS


def test_empty_list(api):
    data = api.get(url("documents/")).json()
    assert data == {"count": 0, "next": None, "previous": None, "results": []}


def test_filter_by_identifier(api, finished):
    data = api.get(url("documents/"), {"identifier": "doc-3"}).json()
    assert data["count"] == 1
    assert data["results"][0]["identifier"] == "doc-3"
    assert api.get(url("documents/"), {"identifier": "doc-2"}).json()["count"] == 0
    # Exact match only.
    assert api.get(url("documents/"), {"identifier": "doc"}).json()["count"] == 0


def test_filter_by_import(api, finished, source):
    assert api.get(url("documents/"), {"import": str(finished.uuid)}).json()["count"] == 2
    # A second import writes one more document; each filter sees its own.
    (source / "scans" / "c.png").write_bytes(png_bytes("c"))
    second = create(api)
    upload(api, second["uuid"], csv_bytes("identifier,file_path,title", "doc-4,scans/c.png,Four"))
    run_inline(job_of(second["uuid"]))
    first_docs = api.get(url("documents/"), {"import": str(finished.uuid)}).json()
    assert [d["identifier"] for d in first_docs["results"]] == ["doc-1", "doc-3"]
    second_docs = api.get(url("documents/"), {"import": second["uuid"]}).json()
    assert [d["identifier"] for d in second_docs["results"]] == ["doc-4"]
    assert api.get(url("documents/")).json()["count"] == 3


def test_filters_combine(api, finished):
    query = {"import": str(finished.uuid), "identifier": "doc-1"}
    assert api.get(url("documents/"), query).json()["count"] == 1
    query = {"import": str(uuid.uuid4()), "identifier": "doc-1"}
    assert api.get(url("documents/"), query).json()["count"] == 0


def test_filter_by_unknown_import_is_empty(api, finished):
    data = api.get(url("documents/"), {"import": str(uuid.uuid4())}).json()
    assert data["count"] == 0
    assert data["results"] == []


@pytest.mark.parametrize("value", ["not-a-uuid", "123", "%"])
def test_filter_by_malformed_import_is_400(api, finished, value):
    data = assert_error(api.get(url("documents/"), {"import": value}), 400, "invalid")
    assert data["errors"]


def test_detail_has_every_field(api, finished, scans):
    doc_uuid = document_uuid("doc-1")
    response = api.get(url("documents", doc_uuid))
    assert response.status_code == 200
    data = response.json()
    assert set(data) == DOCUMENT_FIELDS
    assert data["uuid"] == doc_uuid
    assert data["identifier"] == "doc-1"
    assert data["title"] == "First"
    assert data["description"] == "A scan"
    assert data["author"] == "Ann"
    assert data["created_date"] == "2020-01-02"
    assert data["language"] == "en"
    assert data["confidentiality"] == "public"
    assert data["content_type"] == "image/png"
    assert data["size"] == len(scans["a.png"])
    assert data["sha256"] == sha256(scans["a.png"])
    assert data["file_name"] == "a.png"
    assert data["extra"] == {"shelf": "A1"}
    assert data["import"] == str(finished.uuid)
    assert data["created_at"] and data["updated_at"]
    assert data["content_url"] == f"http://testserver/api/v1/documents/{doc_uuid}/content"


def test_detail_of_a_row_with_only_required_columns(api, pending, scans):
    upload(api, pending["uuid"], csv_bytes("identifier,file_path,title", "x,scans/b.png,Only"))
    run_inline(job_of(pending["uuid"]))
    data = api.get(url("documents", document_uuid("x"))).json()
    assert data["description"] == "" and data["author"] == ""
    assert data["created_date"] is None
    assert data["language"] == "" and data["confidentiality"] == ""
    assert data["extra"] == {}


def test_content_is_the_stored_bytes_with_the_sniffed_type(api, finished, scans):
    for identifier, name in (("doc-1", "a.png"), ("doc-3", "b.png")):
        response = api.get(url("documents", document_uuid(identifier), "content"))
        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert f'filename="{name}"' in response["Content-Disposition"]
        assert streamed(response) == scans[name]


def pdf_document(api, pending, source) -> str:
    """A PDF whose JavaScript would run if a browser opened it in the API's origin."""
    pdf = b"%PDF-1.4\n1 0 obj << /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>\n%%EOF\n"
    (source / "script.pdf").write_bytes(pdf)
    upload(api, pending["uuid"], csv_bytes("identifier,file_path,title", "js,script.pdf,JS"))
    run_inline(job_of(pending["uuid"]))
    return document_uuid("js")


@pytest.mark.parametrize("query", ["", "?inline=1"], ids=["asked-nothing", "asked-inline"])
def test_a_pdf_is_served_as_a_sandboxed_attachment_even_when_asked_inline(
    api, pending, source, query
):
    response = api.get(url("documents", pdf_document(api, pending, source), "content") + query)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("attachment;")
    assert 'filename="script.pdf"' in response["Content-Disposition"]
    streamed(response)


def test_an_image_is_an_attachment_unless_asked_inline(api, finished, scans):
    content = url("documents", document_uuid("doc-1"), "content")
    attached = api.get(content)
    assert attached["Content-Disposition"].startswith("attachment;")
    assert attached["Content-Security-Policy"] == "sandbox"
    streamed(attached)
    shown = api.get(content + "?inline=1")
    assert shown["Content-Disposition"].startswith("inline;")
    assert shown["Content-Security-Policy"] == "sandbox"
    assert shown["X-Content-Type-Options"] == "nosniff"
    assert streamed(shown) == scans["a.png"]


def test_content_url_serves_the_content(api, finished, scans):
    content_url = api.get(url("documents", document_uuid("doc-3"))).json()["content_url"]
    assert streamed(api.get(content_url)) == scans["b.png"]


def test_content_type_is_sniffed_not_taken_from_the_name(api, pending, source):
    pdf = b"%PDF-1.4\n" + b"0" * 500 + b"\n%%EOF\n"
    (source / "misnamed.png").write_bytes(pdf)
    upload(api, pending["uuid"], csv_bytes("identifier,file_path,title", "p,misnamed.png,PDF"))
    run_inline(job_of(pending["uuid"]))
    doc_uuid = document_uuid("p")
    assert api.get(url("documents", doc_uuid)).json()["content_type"] == "application/pdf"
    response = api.get(url("documents", doc_uuid, "content"))
    assert response["Content-Type"] == "application/pdf"
    assert streamed(response) == pdf


def test_stored_files_do_not_take_the_bare_source_name(api, pending, source):
    (source / "x").mkdir()
    (source / "y").mkdir()
    (source / "x" / "same.png").write_bytes(png_bytes("x"))
    (source / "y" / "same.png").write_bytes(png_bytes("y"))
    lines = ("identifier,file_path,title", "dx,x/same.png,X", "dy,y/same.png,Y")
    upload(api, pending["uuid"], csv_bytes(*lines))
    run_inline(job_of(pending["uuid"]))
    names = {d.file.name for d in Document.objects.all()}
    assert len(names) == 2 and "same.png" not in names
    assert streamed(api.get(url("documents", document_uuid("dx"), "content"))) == png_bytes("x")
    assert streamed(api.get(url("documents", document_uuid("dy"), "content"))) == png_bytes("y")
    for name in names:
        assert default_storage.exists(name)


def test_skipped_rows_leave_the_document_with_its_first_import(api, finished):
    second = create(api)
    upload(api, second["uuid"], csv_bytes(*MANIFEST_LINES[:2]))
    job = run_inline(job_of(second["uuid"]))
    assert job.skipped_rows == 1
    assert api.get(url("documents", document_uuid("doc-1"))).json()["import"] == str(finished.uuid)


def test_unknown_document_is_404(api, db):
    assert_error(api.get(url("documents", uuid.uuid4())), 404, "not_found")


def test_content_of_unknown_document_is_404(api, db):
    assert_error(api.get(url("documents", uuid.uuid4(), "content")), 404, "not_found")


def test_malformed_document_uuid_is_404(api, db):
    assert_error(api.get(url("documents", "nope")), 404, "not_found")
    assert_error(api.get(url("documents", "nope", "content")), 404, "not_found")
