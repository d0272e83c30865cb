"""Uploads over a real connection: bodies cut short, chunked bodies, curl -T and digests."""

import base64
import hashlib
import shutil
import socket
import subprocess
from urllib.parse import urlsplit

import pytest

from ..conftest import png_bytes
from .conftest import Service

ROWS = 300


@pytest.fixture(scope="module")
def manifest(service: Service) -> bytes:
    """ROWS rows naming ROWS small scans in the service's source (about 12 KB)."""
    folder = service.source / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["identifier,file_path,title"]
    for number in range(1, ROWS + 1):
        (folder / f"{number}.png").write_bytes(png_bytes(f"upload-{number}", size=64))
        lines.append(f"U-{number},uploads/{number}.png,Upload test scan {number}")
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture
def job(service: Service):
    """A pending import; cancelled afterwards if a test left it open."""
    created = service.request("POST", "/api/v1/imports/create")
    assert created.status == 201, created.body
    yield created.json()
    status = service.request("GET", created.json()["status_url"]).json()
    if status["status"] in ("pending", "active"):
        service.request("POST", f"/api/v1/imports/{status['uuid']}/cancel")


def raw_exchange(service: Service, url: str, head: list[str], body_parts: list[bytes]) -> bytes:
    """Send a request as bytes, half-close the connection, and read the answer to its end."""
    address = urlsplit(service.base_url)
    lines = [
        f"POST {urlsplit(url).path} HTTP/1.1",
        f"Host: {address.netloc}",
        f"Authorization: Bearer {service.token}",
        "Connection: close",
        *head,
    ]
    with socket.create_connection((address.hostname, address.port), timeout=30) as client:
        client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        for part in body_parts:
            client.sendall(part)
        client.shutdown(socket.SHUT_WR)  # what a client whose connection drops looks like
        answer = b""
        while data := client.recv(65536):
            answer += data
    return answer


def assert_nothing_uploaded(service: Service, job: dict) -> None:
    status = service.request("GET", job["status_url"]).json()
    assert (status["status"], status["manifest_sha256"]) == ("pending", ""), status


def test_a_body_cut_short_is_never_imported(service, job, manifest):
    # when the connection ends after half of the announced length
    answer = raw_exchange(
        service,
        job["upload_url"],
        ["Content-Type: text/csv", f"Content-Length: {len(manifest)}"],
        [manifest[: len(manifest) // 2]],
    )

    # then nothing is accepted (the server answers 400, or drops the request unanswered) ...
    assert b" 202 " not in answer.split(b"\r\n", 1)[0], answer[:300]
    # ... the import still waits for its manifest, and takes the whole one
    assert_nothing_uploaded(service, job)
    whole = service.request("POST", job["upload_url"], manifest, {"Content-Type": "text/csv"})
    assert whole.status == 202, whole.body
    assert service.wait_ended(job["status_url"])["total_rows"] == ROWS


def chunked(data: bytes, size: int) -> list[bytes]:
    parts = [data[start : start + size] for start in range(0, len(data), size)]
    return [b"%x\r\n%s\r\n" % (len(part), part) for part in parts] + [b"0\r\n\r\n"]


def test_a_chunked_body_is_read_whole(service, job, manifest):
    # when the manifest arrives in chunks of odd sizes, as from a pipe
    answer = raw_exchange(
        service,
        job["upload_url"],
        ["Content-Type: text/csv", "Transfer-Encoding: chunked"],
        chunked(manifest, 997),
    )

    # then every row is imported from it, and its digest is the whole manifest's
    assert answer.startswith(b"HTTP/1.1 202 "), answer[:300]
    status = service.wait_ended(job["status_url"])
    assert (status["status"], status["total_rows"]) == ("finished", ROWS), status
    assert status["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()


def test_a_chunked_body_cut_short_is_never_imported(service, job, manifest):
    parts = chunked(manifest, 1000)
    answer = raw_exchange(
        service,
        job["upload_url"],
        ["Content-Type: text/csv", "Transfer-Encoding: chunked"],
        parts[: len(parts) // 2],
    )
    assert b" 202 " not in answer.split(b"\r\n", 1)[0], answer[:300]
    assert_nothing_uploaded(service, job)


@pytest.fixture
def curl():
    path = shutil.which("curl")
    if path is None:
        pytest.skip("curl is not installed (.ci/run installs it)")
    return path


def curl_upload(service: Service, curl: str, job: dict, *options: str, stdin: bytes | None = None):
    done = subprocess.run(
        [curl, "-sS", "-H", f"Authorization: Bearer {service.token}", *options, job["upload_url"]],
        input=stdin,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def test_curl_T_uploads_a_file_and_a_pipe(service, job, manifest, curl, tmp_path):
    # `curl -T m.csv`: PUT, with no Content-Type
    (tmp_path / "m.csv").write_bytes(manifest)
    answer = curl_upload(service, curl, job, "-w", "%{http_code}", "-T", str(tmp_path / "m.csv"))
    assert answer.endswith(b"202"), answer
    assert service.wait_ended(job["status_url"])["total_rows"] == ROWS

    # `... | curl -X POST -T -`: a chunked body from a pipe
    second = service.request("POST", "/api/v1/imports/create").json()
    answer = curl_upload(
        service, curl, second, "-w", "%{http_code}", "-X", "POST", "-T", "-", stdin=manifest
    )
    assert answer.endswith(b"202"), answer
    status = service.wait_ended(second["status_url"])
    assert (status["total_rows"], status["skipped_rows"]) == (ROWS, ROWS)


def test_a_digest_that_differs_is_refused_over_the_wire(service, job, manifest, curl, tmp_path):
    (tmp_path / "m.csv").write_bytes(manifest)
    wrong = base64.b64encode(hashlib.sha256(manifest + b"\n").digest()).decode()
    right = base64.b64encode(hashlib.sha256(manifest).digest()).decode()

    def send(digest: str) -> bytes:
        return curl_upload(
            service,
            curl,
            job,
            "-w",
            "%{http_code}",
            "-H",
            f"Content-Digest: sha-256=:{digest}:",
            "-T",
            str(tmp_path / "m.csv"),
        )

    assert b'"code":"manifest_digest_mismatch"' in send(wrong)
    assert_nothing_uploaded(service, job)
    assert send(right).endswith(b"202")
    assert service.wait_ended(job["status_url"])["status"] == "finished"
