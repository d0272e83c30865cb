"""Documents, manifests and reports stored in S3 and served from there, against moto's S3 server
(a real HTTP endpoint on 127.0.0.1, started here), with storage configured as STORAGE_BUCKET
configures it. Runs in every `make test`, whatever storage the run itself is on."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from imports.lifecycle import import_delete
from imports.models import Document, Import, ImportStatus
from imports.settings import s3_storage_options

from .api.conftest import streamed, url
from .conftest import stored_files
from .factories import csv_bytes, import_run, png_bytes
from .s3 import moto_server, s3_client

KEY_ID = "AKIASTORAGETEST"
SECRET = "storage-test-secret"
REGION = "us-east-1"

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def s3(endpoint: str):
    """A client of the test's own, to look into the bucket behind the storage's back."""
    return s3_client(endpoint, KEY_ID, SECRET, REGION)


@pytest.fixture
def bucket(endpoint: str, s3, settings, monkeypatch) -> Iterator[str]:
    """A bucket of its own as the default storage, set up as STORAGE_BUCKET sets it up."""
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    name = f"documents-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    settings.AWS_ACCESS_KEY_ID = KEY_ID
    settings.AWS_SECRET_ACCESS_KEY = SECRET
    before = settings.STORAGES
    settings.STORAGES = {
        **before,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": s3_storage_options(
                name,
                prefix="bulk-import",
                endpoint_url=endpoint,
                region_name=REGION,
                addressing_style="path",
            ),
        },
    }
    yield name
    # The run's own storage back before conftest's `storage` fixture looks at it.
    settings.STORAGES = before


def keys(s3, bucket: str, prefix: str = "") -> set[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for item in listed.get("Contents", [])}


def body(s3, bucket: str, name: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=f"bulk-import/{name}")["Body"].read()


@pytest.fixture
def scans(source: Path) -> dict[str, bytes]:
    """Two scans of the same file name in two folders, and a PDF."""
    files = {
        "1998/scan.png": png_bytes("1998"),
        "1999/scan.png": png_bytes("1999"),
        "letters/Café – ½.pdf": b"%PDF-1.4\n" + b"1 0 obj << >> endobj\n" * 10,
    }
    for relative, data in files.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(data)
    return files


def imported(scans: dict[str, bytes]) -> Import:
    """An import of `scans`, run inline to its end."""
    lines = ["identifier,file_path,title"]
    lines += [f"D-{n},{path},Scan {n}" for n, path in enumerate(scans)]
    return import_run(csv_bytes(*lines))


def test_an_import_stores_every_file_in_the_bucket_under_a_name_of_its_own(bucket, s3, scans):
    # when an import runs with S3 storage
    job = imported(scans)
    # then every file is an object of its own under the storage's prefix, with the source's bytes
    assert (job.status, job.imported_rows) == (ImportStatus.FINISHED, 3)
    documents = {doc.identifier: doc for doc in Document.objects.all()}
    names = {doc.file.name for doc in documents.values()}
    assert len(names) == 3, "two files of the same name overwrote each other"
    assert keys(s3, bucket, "bulk-import/documents/") == {f"bulk-import/{n}" for n in names}
    for n, data in enumerate(scans.values()):
        document = documents[f"D-{n}"]
        assert body(s3, bucket, document.file.name) == data
        assert document.size == len(data)
    # and conftest's helper sees exactly these files
    assert stored_files() == names


def test_the_manifest_and_the_report_are_in_the_bucket_too(bucket, s3, scans):
    job = imported(scans)
    assert body(s3, bucket, job.manifest.name).startswith(b"identifier,file_path,title")
    report = body(s3, bucket, job.report.name).decode().splitlines()
    assert report[0] == "identifier,file_path,title,import_status,import_comment"
    assert [line.split(",")[3] for line in report[1:]] == ["imported"] * 3


def test_document_content_is_streamed_from_the_bucket(bucket, s3, scans, api):
    # given an imported document, whose object in the bucket is then changed behind its back
    imported(scans)
    document = Document.objects.get(identifier="D-0")
    changed = png_bytes("changed in the bucket")
    s3.put_object(Bucket=bucket, Key=f"bulk-import/{document.file.name}", Body=changed)
    # when its content is fetched
    response = api.get(url("documents", document.uuid, "content"))
    # then what the bucket holds is streamed, with the document's sniffed type
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "image/png"
    assert streamed(response) == changed


def test_a_pdf_with_a_non_ascii_name_is_served_with_its_name(bucket, scans, api):
    imported(scans)
    document = Document.objects.get(identifier="D-2")
    response = api.get(url("documents", document.uuid, "content"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert "Caf" in response["Content-Disposition"]
    assert streamed(response) == scans["letters/Café – ½.pdf"]


def test_deleting_an_import_removes_its_manifest_and_report_objects_and_keeps_documents(
    bucket, s3, scans
):
    # given an ended import
    job = imported(scans)
    documents = {f"bulk-import/{doc.file.name}" for doc in Document.objects.all()}
    manifest, report = job.manifest.name, job.report.name
    assert default_storage.exists(manifest) and default_storage.exists(report)
    # when it is deleted
    import_delete(job)
    # then only the documents' objects remain
    assert keys(s3, bucket) == documents
    assert not default_storage.exists(manifest) and not default_storage.exists(report)
