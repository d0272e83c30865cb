"""A whole import through the HTTP API with a real Celery worker process."""

import csv
import hashlib
import io
import os
import threading
from pathlib import Path

from ..conftest import png_bytes
from .conftest import MAX_FILE_BYTES, Service

PDF = b"%PDF-1.4\n" + b"1 0 obj << >> endobj\n" * 20


def make_archive(source: Path, outside: Path) -> dict[str, bytes]:
    """Write a small scanned archive; return its files by relative path."""
    files = {
        "1998/box 1/scan-001.png": png_bytes("1"),
        "1998/box 1/scan-002.png": png_bytes("2"),
        "1998/box 2/Café Überweg – ½.pdf": PDF,
        "1999/scan-001.png": png_bytes("3"),
        "1999/big.png": png_bytes("big", size=MAX_FILE_BYTES + 1),
    }
    for relative, data in files.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(data)
    (outside / "secret.png").write_bytes(png_bytes("secret"))
    os.symlink(outside / "secret.png", source / "1999" / "link.png")
    return files


def manifest_for(files: dict[str, bytes]) -> bytes:
    good_sum = hashlib.sha256(files["1999/scan-001.png"]).hexdigest()
    rows = [
        "identifier,title,file_path,created_date,checksum,box",
        "D-1,First scan,1998/box 1/scan-001.png,1998-03-01,,1",
        'D-2,"Second, quoted",1998/box 1/scan-002.png,,,1',
        "D-3,Café Überweg – ½,1998/box 2/Café Überweg – ½.pdf,,,2",
        f"D-4,Checked,1999/scan-001.png,,sha256:{good_sum},",
        "",
        f"D-5,Wrong sum,1999/scan-001.png,,{'a' * 64},",
        "D-6,Too big,1999/big.png,,,",
        "D-7,Escapes,1999/link.png,,,",
        "D-8,Climbs,../../etc/passwd,,,",
        "D-9,Missing,1999/nope.png,,,",
        "D-10,A folder,1998,,,",
        "D-11,Bad date,1998/box 1/scan-001.png,1998-13-45,,",
        "D-1,Repeated,1998/box 1/scan-002.png,,,",
        "D-12,,1998/box 1/scan-002.png,,,",
    ]
    return ("\r\n".join(rows) + "\r\n").encode()


EXPECTED = {
    "D-1": ("imported", ""),
    "D-2": ("imported", ""),
    "D-3": ("imported", ""),
    "D-4": ("imported", ""),
    "D-5": ("failed", "checksum mismatch"),
    "D-6": ("failed", "more than the 4096 allowed"),
    "D-7": ("failed", "path outside source"),
    "D-8": ("failed", "path outside source"),
    "D-9": ("failed", "no such file"),
    "D-10": ("failed", "directory"),
    "D-11": ("failed", "not a date"),
    "D-12": ("failed", "title is empty"),
}


def report_rows(service: Service, report_url: str) -> list[dict]:
    answer = service.request("GET", report_url)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.body.decode())))


def test_an_archive_imports_with_every_row_reported_and_files_intact(service, tmp_path):
    # given an archive with good and bad rows, and a manifest naming them
    files = make_archive(service.source, tmp_path)
    manifest = manifest_for(files)
    created = service.request(
        "POST", "/api/v1/imports/create", b'{"batch_size": 3}', {"Content-Type": "application/json"}
    )
    assert created.status == 201, created.body
    job = created.json()

    # when the manifest is uploaded and the worker runs its batches
    upload = service.request("POST", job["upload_url"], manifest, {"Content-Type": "text/csv"})
    assert upload.status == 202, upload.body
    status = service.wait_ended(job["status_url"])

    # then every row is reported once, in manifest order, with its outcome
    assert status["status"] == "finished", status
    assert (status["total_rows"], status["processed_rows"]) == (13, 13)
    assert (status["imported_rows"], status["skipped_rows"], status["failed_rows"]) == (4, 0, 9)
    rows = report_rows(service, job["report_url"])
    assert [row["identifier"] for row in rows] == [
        line.split(",")[0] for line in manifest.decode().splitlines()[1:] if line
    ]
    assert list(rows[0]) == [
        "identifier",
        "title",
        "file_path",
        "created_date",
        "checksum",
        "box",
        "import_status",
        "import_comment",
    ]
    assert rows[1]["title"] == "Second, quoted"
    assert rows[-2]["import_status"] == "failed"
    assert "already appears earlier in the manifest (row 1)" in rows[-2]["import_comment"]
    for row in rows[:-2] + rows[-1:]:
        status_, fragment = EXPECTED[row["identifier"]]
        assert row["import_status"] == status_, row
        assert fragment in row["import_comment"], row
        assert str(service.data_dir) not in row["import_comment"]
        assert str(tmp_path) not in row["import_comment"]

    # and each imported document serves its file byte for byte
    for row in rows:
        if row["import_status"] != "imported":
            continue
        document = service.request("GET", f"/api/v1/documents/{row['import_comment']}").json()
        content = service.request("GET", document["content_url"])
        assert content.body == files[row["file_path"]]
        assert document["sha256"] == hashlib.sha256(content.body).hexdigest()
        assert document["extra"] == {"box": row["box"]}
    assert service.request("GET", "/api/v1/documents/").json()["count"] == 4


def test_the_same_manifest_again_skips_what_is_there(service):
    # given the archive of the previous test is imported
    manifest = manifest_for({"1999/scan-001.png": png_bytes("3")})
    before = service.request("GET", "/api/v1/documents/").json()["count"]
    job = service.request("POST", "/api/v1/imports/create").json()

    # when the same manifest is uploaded again, as a multipart form this time
    assert service.upload_multipart(job["upload_url"], manifest).status == 202
    status = service.wait_ended(job["status_url"])

    # then the imported rows are skipped and nothing new is stored
    assert (status["status"], status["imported_rows"], status["skipped_rows"]) == ("finished", 0, 4)
    assert service.request("GET", "/api/v1/documents/").json()["count"] == before
    failed = service.request("GET", job["report_url"] + "?rows=failed")
    lines = failed.body.decode().splitlines()
    assert lines[0] == "identifier,title,file_path,created_date,checksum,box"
    assert len(lines) == 1 + 9


def test_a_dry_run_of_a_changed_manifest_reports_what_an_update_would_do(service):
    # given the archive of the first test is imported, and one row's title is changed
    files = {"1999/scan-001.png": png_bytes("3")}
    manifest = manifest_for(files).replace(b'"Second, quoted"', b'"Second, renamed"')
    documents = service.request("GET", "/api/v1/documents/?identifier=D-2").json()["results"]
    options = b'{"dry_run": true, "on_conflict": "update"}'
    job = service.request(
        "POST", "/api/v1/imports/create", options, {"Content-Type": "application/json"}
    ).json()

    # when it is uploaded for a dry run
    assert (
        service.request("POST", job["upload_url"], manifest, {"Content-Type": "text/csv"}).status
        == 202
    )
    status = service.wait_ended(job["status_url"])

    # then the changed row would update its document, the others are skipped or failed as before
    assert (status["status"], status["dry_run"]) == ("finished", True)
    assert (status["imported_rows"], status["skipped_rows"], status["failed_rows"]) == (1, 3, 9)
    rows = {row["identifier"]: row for row in report_rows(service, job["report_url"])}
    assert rows["D-2"]["import_status"] == "valid"
    assert rows["D-2"]["import_comment"].startswith(f"would update document {documents[0]['uuid']}")
    assert rows["D-5"]["import_status"] == "failed"
    # and nothing was written
    after = service.request("GET", "/api/v1/documents/?identifier=D-2").json()["results"]
    assert after == documents


def test_sixteen_concurrent_creates_give_exactly_one_201(service):
    barrier = threading.Barrier(16)
    statuses: list[int] = []

    def create() -> None:
        barrier.wait()
        statuses.append(service.request("POST", "/api/v1/imports/create").status)

    threads = [threading.Thread(target=create) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [409] * 15
    open_import = service.request("GET", "/api/v1/imports/").json()["results"][0]
    assert service.request("POST", f"/api/v1/imports/{open_import['uuid']}/cancel").status == 200
