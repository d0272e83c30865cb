"""An S3 source and S3 storage against moto's S3 server: a real HTTP endpoint on 127.0.0.1."""

import io
import socket
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from django.core.files.storage import default_storage
from storages.backends.s3 import S3Storage

from imports import tasks
from imports.copies import file_copy, file_read
from imports.errors import SourceMisconfigured, SourceProblem, SourceUnavailable
from imports.models import Batch, Document, ImportStatus
from imports.sources import s3 as s3_module
from imports.sources import source_from_settings
from imports.sources.filesystem import FilesystemSource
from imports.sources.s3 import S3Object, S3Source

from ..factories import csv_bytes, import_run, import_staged, png_bytes, sha256
from ..s3 import moto_server, s3_client

KEY_ID = "AKIAMOTOTESTKEY42"
SECRET = "moto-test-secret-do-not-leak"
REGION = "eu-central-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(autouse=True)
def aws(endpoint: str, settings, monkeypatch) -> str:
    """Settings, and an environment, that point every S3 client at moto and nowhere else."""
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    settings.AWS_S3_ENDPOINT_URL = endpoint
    settings.AWS_ACCESS_KEY_ID = KEY_ID
    settings.AWS_SECRET_ACCESS_KEY = SECRET
    settings.AWS_S3_REGION_NAME = REGION
    return endpoint


@pytest.fixture(scope="module")
def s3(endpoint: str):
    """A client of the test's own, for arranging buckets and looking at them."""
    return s3_client(endpoint, KEY_ID, SECRET, REGION)


@pytest.fixture
def new_bucket(s3) -> Callable[[str], str]:
    """Make a bucket of its own for each test: moto's state outlives a test."""

    def make(purpose: str) -> str:
        name = f"{purpose}-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    return make


@pytest.fixture
def bucket(new_bucket) -> str:
    """The source bucket: `archive/` is the source; `secret.txt` and `archived/` lie outside."""
    return new_bucket("source")


@pytest.fixture
def put(s3, bucket) -> Callable[[str, bytes], str]:
    def put(key: str, data: bytes = b"png") -> str:
        return s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"]

    put("secret.txt", b"outside")
    put("archived/secret.txt", b"outside, next to the prefix")
    return put


@pytest.fixture
def source(bucket, put) -> S3Source:
    put("archive/scans/a.png", b"png")
    return S3Source(bucket, "archive")


@pytest.fixture
def local_storage(tmp_path: Path, settings) -> Iterator[Path]:
    """Document storage in a folder, whatever storage this run is configured with."""
    location = tmp_path / "local media"
    with storage_replaced(
        settings,
        {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location), "allow_overwrite": True},
        },
    ):
        yield location


@contextmanager
def storage_replaced(settings, default: dict) -> Iterator[None]:
    # Put back the run's own storage before conftest's `storage` fixture empties it at teardown.
    before = settings.STORAGES
    settings.STORAGES = {**before, "default": default}
    yield
    settings.STORAGES = before


@pytest.fixture
def s3_storage(new_bucket, endpoint, settings) -> Iterator[S3Storage]:
    """Document storage in a bucket of its own, under a `stored` prefix."""
    options = {
        "bucket_name": new_bucket("storage"),
        "location": "stored",
        "endpoint_url": endpoint,
        "access_key": KEY_ID,
        "secret_key": SECRET,
        "region_name": REGION,
        "addressing_style": "path",
    }
    with storage_replaced(
        settings, {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
    ):
        yield default_storage


def problem_of(source: S3Source, file_path: str) -> str:
    """The problem resolving `file_path` raises, checked to quote it and name no bucket."""
    with pytest.raises(SourceProblem) as caught:
        source.resolve(file_path)
    message = str(caught.value)
    assert message.startswith(f"file_path {file_path!r}: ")
    assert source.bucket not in message
    return message


def spelled(form: str, text: str) -> str:
    other = {"NFC": "NFD", "NFD": "NFC"}[form]
    assert unicodedata.normalize(form, text) != unicodedata.normalize(other, text)
    return unicodedata.normalize(form, text)


def read(source: S3Source, obj: S3Object) -> bytes:
    with source.open(obj) as body:
        return body.read()


# Resolving keys


@pytest.mark.parametrize(
    "file_path",
    ["scans/a.png", "scans\\a.png", "./scans/a.png", "scans/../scans/a.png", "scans//a.png"],
)
def test_a_key_under_the_prefix_resolves(source, file_path):
    obj = source.resolve(file_path)

    assert (obj.key, obj.name, obj.size, obj.file_path) == (
        "archive/scans/a.png",
        "a.png",
        3,
        file_path,
    )
    assert read(source, obj) == b"png"


def test_nested_keys_with_spaces_and_non_ascii_names_resolve(source, put):
    # given
    etag = put("archive/Jahr 2020/März/Café Überweg #1.pdf", b"%PDF-1.4")

    # when
    obj = source.resolve("Jahr 2020/März/Café Überweg #1.pdf")

    # then
    assert obj == S3Object(
        file_path="Jahr 2020/März/Café Überweg #1.pdf",
        key="archive/Jahr 2020/März/Café Überweg #1.pdf",
        name="Café Überweg #1.pdf",
        size=8,
        etag=etag,
    )
    assert source.size(obj) == 8
    assert read(source, obj) == b"%PDF-1.4"


def test_a_bucket_without_prefix_is_a_source_too(bucket, put):
    put("top.png", b"top")

    obj = S3Source.from_url(f"s3://{bucket}").resolve("top.png")

    assert obj.key == "top.png"


SCAN = "Café Überweg/scan 01 – ½.png"


@pytest.mark.parametrize(("stored", "written"), [("NFD", "NFC"), ("NFC", "NFD")])
def test_a_key_stored_in_one_unicode_form_resolves_when_written_in_the_other(
    source, put, stored, written
):
    put(f"archive/{spelled(stored, SCAN)}", b"png")

    obj = source.resolve(spelled(written, SCAN))

    assert obj.key == f"archive/{spelled(stored, SCAN)}"
    assert obj.file_path == spelled(written, SCAN)


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_the_spelling_as_written_wins_when_both_are_stored(source, put, form):
    for stored in ("NFC", "NFD"):
        put(f"archive/{spelled(stored, SCAN)}", stored.encode())

    assert read(source, source.resolve(spelled(form, SCAN))) == form.encode()


@pytest.mark.parametrize(
    "file_path",
    [
        "../secret.txt",
        "../archived/secret.txt",
        "a/../../secret.txt",
        "scans/../../archived/secret.txt",
        "..",
        "/secret.txt",
        "/archive/scans/a.png",
        "//archive/scans/a.png",
        "..\\secret.txt",
        "scans\\..\\..\\secret.txt",
        "\\secret.txt",
        "C:\\secret.txt",
        "C:/archive/scans/a.png",
        "\\\\server\\share\\secret.txt",
        "scans/a.png\x00.txt",
        "\x00",
    ],
)
def test_a_key_leading_out_of_the_prefix_is_refused(source, file_path):
    assert problem_of(source, file_path).endswith("path outside source")


@pytest.mark.parametrize("file_path", ["../secret.txt", "a/../../secret.txt", "/secret.txt"])
def test_a_bucket_without_prefix_refuses_climbing_out_too(bucket, put, file_path):
    assert problem_of(S3Source(bucket), file_path).endswith("path outside source")


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_climbing_out_in_the_other_unicode_spelling_is_refused(source, put, form):
    put(spelled("NFC", "Café.txt"), b"outside")

    assert problem_of(source, spelled(form, "../Café.txt")).endswith("path outside source")


@pytest.mark.parametrize(
    "file_path", ["missing.pdf", "scans/missing.png", "scans\\missing.png", "scans/a.png/x"]
)
def test_a_missing_key_is_no_such_file(source, file_path):
    assert problem_of(source, file_path).endswith("no such file")


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_a_key_missing_in_every_spelling_is_no_such_file(source, form):
    assert problem_of(source, spelled(form, SCAN)).endswith("no such file")


@pytest.mark.parametrize("file_path", ["scans", "scans/", "scans\\", "", ".", "scans/..", "./"])
def test_a_folder_is_not_a_file(source, file_path):
    assert problem_of(source, file_path).endswith("is a directory, not a file")


def test_a_folder_marker_alone_is_a_folder(source, put):
    put("archive/empty/", b"")

    assert problem_of(source, "empty").endswith("is a directory, not a file")


def test_a_folder_in_the_other_spelling_is_not_a_file(source, put):
    put(f"archive/{spelled('NFD', SCAN)}", b"png")

    folder = spelled("NFC", "Café Überweg")
    assert problem_of(source, folder).endswith("is a directory, not a file")


def test_a_key_that_is_a_prefix_of_another_is_not_a_folder(source, put):
    put("archive/scans/a.png.bak", b"bak")

    assert problem_of(source, "scans/a.pn").endswith("no such file")


# Reading


def test_an_object_changed_after_it_was_resolved_is_not_read(source, put):
    obj = source.resolve("scans/a.png")
    put("archive/scans/a.png", b"a much larger file than was size-checked")

    with pytest.raises(SourceProblem, match="'scans/a.png': the file changed while being read"):
        source.open(obj)


def test_an_object_deleted_after_it_was_resolved_is_no_such_file(source, s3, bucket):
    obj = source.resolve("scans/a.png")
    s3.delete_object(Bucket=bucket, Key="archive/scans/a.png")

    with pytest.raises(SourceProblem, match="'scans/a.png': no such file"):
        source.open(obj)


def test_a_body_rewinds_only_before_its_first_byte(source):
    with source.open(source.resolve("scans/a.png")) as body:
        assert body.seek(0) == 0
        assert body.read(1) == b"p"
        with pytest.raises(io.UnsupportedOperation):
            body.seek(0)
    assert body.closed


# Checking the bucket


def test_check_passes_on_a_bucket_that_is_there(source):
    source.check()


def assert_says_nothing_secret(error: SourceMisconfigured, endpoint: str) -> None:
    port = endpoint.rsplit(":", 1)[1]
    for secret in (endpoint, "127.0.0.1", port, KEY_ID, SECRET):
        assert secret not in error.detail
        assert secret not in str(error)


def test_check_refuses_a_missing_bucket_and_says_nothing_secret(aws):
    with pytest.raises(SourceMisconfigured) as caught:
        S3Source("no-such-bucket-here", "archive").check()

    assert caught.value.detail == "The import source bucket does not exist; ask the administrator."
    assert_says_nothing_secret(caught.value, aws)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_check_refuses_an_unreachable_endpoint_and_says_nothing_secret(bucket, settings):
    settings.AWS_S3_ENDPOINT_URL = unreachable = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(SourceMisconfigured) as caught:
        S3Source(bucket).check()

    assert "cannot be reached" in caught.value.detail
    assert_says_nothing_secret(caught.value, unreachable)


def test_check_refuses_a_malformed_endpoint(bucket, settings):
    settings.AWS_S3_ENDPOINT_URL = "not a url"

    with pytest.raises(SourceMisconfigured, match="cannot be reached"):
        S3Source(bucket).check()


def test_check_refuses_an_empty_bucket_name():
    with pytest.raises(SourceMisconfigured):
        S3Source.from_url("s3://").check()


# Settings


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://archive", "archive", ""),
        ("s3://archive/", "archive", ""),
        ("s3://archive/migration/2024", "archive", "migration/2024"),
        ("s3://archive/migration/2024/", "archive", "migration/2024"),
        ("s3://archive/odd #name?", "archive", "odd #name?"),
    ],
)
def test_an_s3_url_names_a_bucket_and_an_optional_prefix(settings, url, bucket, prefix):
    settings.IMPORT_SOURCE = url

    source = source_from_settings()

    assert isinstance(source, S3Source)
    assert (source.bucket, source.prefix) == (bucket, prefix)


def test_anything_else_is_a_directory(settings, tmp_path):
    settings.IMPORT_SOURCE = str(tmp_path)

    assert isinstance(source_from_settings(), FilesystemSource)


# Copying into storage


class Requests:
    """The S3 operations a client sends, with their headers."""

    def __init__(self, client) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        client.meta.events.register("before-send.s3", self.record)

    def record(self, request, event_name: str, **kwargs) -> None:
        headers = {
            name.lower(): value.decode() if isinstance(value, bytes) else value
            for name, value in request.headers.items()
        }
        self.sent.append((event_name.rsplit(".", 1)[1], headers))

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.sent]


def storage_client(storage: S3Storage):
    return storage.connection.meta.client


def stored_object(s3, storage: S3Storage, name: str) -> dict:
    return s3.get_object(Bucket=storage.bucket_name, Key=f"stored/{name}")


def test_s3_to_s3_is_copied_server_side_after_one_hashing_read(
    source, put, s3, s3_storage, monkeypatch
):
    # given a scan in the source, and a storage that cannot be written by uploading
    data = png_bytes("scan", size=3 * 1024 * 1024)
    etag = put("archive/scans/big scan.png", data)
    obj = source.resolve("scans/big scan.png")
    source_requests = Requests(source.client)
    storage_requests = Requests(storage_client(s3_storage))

    def no_upload(*args, **kwargs):
        raise AssertionError("the file was uploaded, not copied")

    monkeypatch.setattr(S3Storage, "_save", no_upload)

    # when
    stored, facts = file_copy(source, obj, "documents/7/00000001-big scan.png")

    # then the bytes went through this process once, to be hashed, and S3 made the copy
    assert stored == "documents/7/00000001-big scan.png"
    assert (facts.sha256, facts.size, facts.content_type) == (sha256(data), len(data), "image/png")
    assert source_requests.operations() == ["GetObject"]
    copies = [headers for operation, headers in storage_requests.sent if operation == "CopyObject"]
    assert len(copies) == 1
    assert not {"PutObject", "UploadPart", "GetObject"} & set(storage_requests.operations())
    # and the copy was conditional on the object being the one hashed
    assert copies[0]["x-amz-copy-source-if-match"] == etag
    copied = stored_object(s3, s3_storage, stored)
    assert copied["Body"].read() == data
    assert copied["ContentType"] == "image/png"
    assert s3_storage.open(stored).read() == data


def test_s3_to_s3_stores_where_and_as_the_storage_would(source, put, s3, s3_storage):
    put("archive/Café/ödd name.pdf", b"%PDF-1.4 body")
    obj = source.resolve("Café/ödd name.pdf")

    stored, facts = file_copy(source, obj, "documents/7/00000002-ödd name.pdf")

    assert stored == "documents/7/00000002-ödd name.pdf"
    assert s3_storage.exists(stored)
    assert stored_object(s3, s3_storage, stored)["ContentType"] == "application/pdf"
    assert facts.sha256 == sha256(b"%PDF-1.4 body")


def test_an_object_changed_between_hashing_and_copying_is_refused(
    source, put, s3, s3_storage, monkeypatch
):
    # given an object that is overwritten right after it was hashed
    obj = source.resolve("scans/a.png")
    hashed = s3_module.file_facts

    def hash_then_overwrite(raw):
        facts = hashed(raw)
        put("archive/scans/a.png", b"overwritten")
        return facts

    monkeypatch.setattr(s3_module, "file_facts", hash_then_overwrite)

    # when, then the copy is refused as a row problem, and nothing is stored
    with pytest.raises(SourceProblem, match="'scans/a.png': the file changed while being read"):
        file_copy(source, obj, "documents/7/00000003-a.png")
    assert not s3_storage.exists("documents/7/00000003-a.png")


def test_s3_to_local_storage_streams_through_the_storage(source, put, local_storage):
    data = png_bytes("local", size=2 * 1024 * 1024 + 5)
    put("archive/scans/local.png", data)

    stored, facts = file_copy(source, source.resolve("scans/local.png"), "documents/7/1-local.png")

    assert (local_storage / stored).read_bytes() == data
    assert (facts.sha256, facts.size) == (sha256(data), len(data))


def test_local_to_s3_storage_uploads_while_hashing(tmp_path, s3, s3_storage):
    data = png_bytes("disk", size=9 * 1024 * 1024)  # past the storage's multipart threshold
    (tmp_path / "disk.png").write_bytes(data)
    local = FilesystemSource(tmp_path)

    stored, facts = file_copy(local, local.resolve("disk.png"), "documents/7/1-disk.png")

    assert stored_object(s3, s3_storage, stored)["Body"].read() == data
    assert (facts.sha256, facts.size, facts.content_type) == (sha256(data), len(data), "image/png")


def test_s3_to_an_s3_storage_on_another_endpoint_is_uploaded(
    source, put, s3, s3_storage, endpoint, settings
):
    # given a storage that names the same server differently: not provably the same service
    options = settings.STORAGES["default"]["OPTIONS"]
    other = endpoint.replace("127.0.0.1", "localhost")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**settings.STORAGES["default"], "OPTIONS": {**options, "endpoint_url": other}},
    }
    requests = Requests(storage_client(default_storage))
    data = png_bytes("elsewhere")
    put("archive/scans/elsewhere.png", data)

    stored, facts = file_copy(source, source.resolve("scans/elsewhere.png"), "documents/7/1-e.png")

    assert "PutObject" in requests.operations()
    assert "CopyObject" not in requests.operations()
    assert default_storage.open(stored).read() == data
    assert facts.sha256 == sha256(data)


def test_reading_hashes_and_sniffs_without_storing(source, put, s3_storage):
    data = png_bytes("read only")
    put("archive/scans/read.png", data)

    facts = file_read(source, source.resolve("scans/read.png"))

    assert (facts.sha256, facts.size, facts.content_type) == (sha256(data), len(data), "image/png")
    assert s3_storage.listdir("")[1] == []


def test_a_read_that_times_out_is_the_sources_failure_not_the_files(source, put, monkeypatch):
    # given a body whose read times out (botocore's ReadTimeoutError is an OSError too)
    obj = source.resolve("scans/a.png")

    def timed_out(self, amt=None):
        raise ReadTimeoutError(endpoint_url="http://s3.internal:9000")

    monkeypatch.setattr(StreamingBody, "read", timed_out)
    # when, then it is not taken for an unreadable file, which would fail the row for good
    with pytest.raises(SourceUnavailable):
        file_read(source, obj)


# The whole pipeline


HEADER = "identifier,file_path,title,checksum"


def s3_import(bucket: str, put, settings, data: dict[str, bytes]):
    """An import of one row per file, read from s3://bucket/archive, run inline."""
    settings.IMPORT_SOURCE = f"s3://{bucket}/archive"
    for path, body in data.items():
        put(f"archive/{path}", body)
    rows = [f"D{n},{path},Title {n},{sha256(body)}" for n, (path, body) in enumerate(data.items())]
    manifest = csv_bytes(HEADER, *rows, "X,../secret.txt,Climbs,", "Y,scans/gone.png,Missing,")
    return import_run(manifest, batch_size=2)


ARCHIVE = {
    "scans/a b.png": png_bytes("a"),
    "Café/März.png": png_bytes("m"),
    "c.pdf": b"%PDF-1.4\n%%EOF\n",
}


def assert_imported(job, data: dict[str, bytes]) -> None:
    assert (job.status, job.imported_rows, job.failed_rows) == (ImportStatus.FINISHED, 3, 2)
    assert dict(job.rows.filter(status="failed").values_list("identifier", "comment")) == {
        "X": "file_path '../secret.txt': path outside source",
        "Y": "file_path 'scans/gone.png': no such file",
    }
    for n, (path, body) in enumerate(data.items()):
        document = Document.objects.get(identifier=f"D{n}")
        assert (document.sha256, document.size) == (sha256(body), len(body))
        assert document.file_name == path.rsplit("/", 1)[-1]
        with document.file.open("rb") as stored:
            assert stored.read() == body


@pytest.mark.django_db
def test_an_import_from_an_s3_source_into_local_storage(bucket, put, settings, local_storage):
    job = s3_import(bucket, put, settings, ARCHIVE)

    assert_imported(job, ARCHIVE)


@pytest.mark.django_db
def test_a_source_that_times_out_once_is_retried_and_every_row_imports(
    bucket, put, settings, local_storage, monkeypatch
):
    # given an S3 source whose first read times out, and answers again after that
    settings.IMPORT_SOURCE = f"s3://{bucket}/archive"
    for path, body in ARCHIVE.items():
        put(f"archive/{path}", body)
    rows = [f"D{n},{path},Title {n}," for n, path in enumerate(ARCHIVE)]
    job = import_staged(csv_bytes(HEADER, *rows), batch_size=10)
    read = StreamingBody.read
    timeouts = []

    def times_out_once(self, amt=None):
        if not timeouts:
            timeouts.append(amt)
            raise ReadTimeoutError(endpoint_url="http://s3.internal:9000")
        return read(self, amt)

    monkeypatch.setattr(StreamingBody, "read", times_out_once)
    # when the batch task runs, as a worker would
    [batch] = Batch.objects.filter(import_job=job)
    result = tasks.batch_run_task.apply(args=(str(job.pk), batch.pk))
    # then it was retried, not failed, and no row failed for the source's hiccup
    assert result.successful() and timeouts
    job.refresh_from_db()
    assert (job.status, job.imported_rows, job.failed_rows) == (ImportStatus.ACTIVE, 3, 0)


@pytest.mark.django_db
def test_an_import_from_an_s3_source_into_s3_storage_copies_server_side(
    bucket, put, settings, s3_storage, monkeypatch
):
    # given a storage that refuses uploads of documents (the manifest and report still upload)
    save = S3Storage._save

    def no_document_upload(self, name, content):
        assert not name.startswith("documents/"), "a document was uploaded, not copied"
        return save(self, name, content)

    monkeypatch.setattr(S3Storage, "_save", no_document_upload)

    # when, then
    assert_imported(s3_import(bucket, put, settings, ARCHIVE), ARCHIVE)
