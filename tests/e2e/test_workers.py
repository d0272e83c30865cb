"""Workers side by side, and the database dropping their connections, with real workers."""

import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import png_bytes
from .conftest import ROOT, Service, wait_until

ROWS = 3000


def archive(service: Service, folder: str) -> bytes:
    """ROWS small scans in nested folders, and their manifest."""
    lines = ["identifier,file_path,title"]
    for n in range(ROWS):
        path = Path(folder) / f"box {n // 500}" / f"scan {n}.png"
        (service.source / path).parent.mkdir(parents=True, exist_ok=True)
        (service.source / path).write_bytes(png_bytes(f"{folder} {n}", size=512))
        lines.append(f"{folder}-{n},{path},Scan {n}")
    return ("\n".join(lines) + "\n").encode()


def started(service: Service, manifest: bytes, batch_size: int) -> dict:
    options = f'{{"batch_size": {batch_size}}}'.encode()
    job = service.request(
        "POST", "/api/v1/imports/create", options, {"Content-Type": "application/json"}
    ).json()
    upload = service.request("POST", job["upload_url"], manifest, {"Content-Type": "text/csv"})
    assert upload.status == 202, upload.body
    return job


def assert_every_row_once(service: Service, status: dict, prefix: str) -> None:
    assert status["status"] == "finished", status
    assert (status["total_rows"], status["imported_rows"], status["failed_rows"]) == (ROWS, ROWS, 0)
    documents = service.request("GET", f"/api/v1/documents/?import={status['uuid']}").json()
    assert documents["count"] == ROWS
    report = service.request("GET", status["report_url"]).body.decode().splitlines()[1:]
    assert [line.split(",")[0] for line in report] == [f"{prefix}-{n}" for n in range(ROWS)]
    assert {line.split(",")[3] for line in report} == {"imported"}
    stored = service.stored_files(f"documents/{status['uuid']}")
    assert len(stored) == ROWS, "a stray or missing copy in storage"


def batches_run_by(log: str) -> int:
    return sum(
        "imports.tasks.batch_run_task[" in line and " succeeded " in line
        for line in log.splitlines()
    )


@pytest.mark.needs_redis
def test_two_workers_share_the_batches_of_one_import(service, tmp_path):
    # given a second worker, on another node, beside the service's own
    log_path = tmp_path / "second-worker.log"
    with log_path.open("w") as log:
        second = subprocess.Popen(
            [
                ".venv/bin/celery",
                "-A",
                "imports",
                "worker",
                "--loglevel=INFO",
                "--concurrency=2",
                "--hostname=second@%h",
            ],
            cwd=ROOT,
            env=service.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "ready." in log_path.read_text(), timeout_s=60, what="worker ready")
        before = batches_run_by(service.log())
        # when an import of many batches runs
        job = started(service, archive(service, "shared"), batch_size=100)
        status = service.wait_ended(job["status_url"], timeout_s=120)
    finally:
        second.terminate()
        second.wait(timeout=60)
    # then both workers ran some of its batches, and every row ended exactly once
    by_second = batches_run_by(log_path.read_text())
    by_first = batches_run_by(service.log()) - before
    assert by_first > 0 and by_second > 0, (by_first, by_second)
    assert by_first + by_second >= ROWS // 100
    assert_every_row_once(service, status, "shared")


@pytest.mark.needs_postgres
def test_database_connections_dropped_mid_import_are_retried_and_nothing_is_doubled(service):
    # given an import whose batches are being worked on
    import psycopg

    job = started(service, archive(service, "dropped"), batch_size=100)
    wait_until(
        lambda: service.request("GET", job["status_url"]).json()["processed_rows"] > 0,
        timeout_s=60,
        what="a batch committed",
    )
    # when the database drops every connection of the service, again and again for a while
    url = service.env["DATABASE_URL"]
    dropped = 0
    with psycopg.connect(url, autocommit=True) as admin:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            dropped += admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()[0]
            time.sleep(0.05)
    assert dropped > 0
    # then the tasks that met it are retried, and every row ends exactly once
    status = service.wait_ended(job["status_url"], timeout_s=180)
    assert_every_row_once(service, status, "dropped")
    assert "Retry in" in service.log(), "no task met the dropped connections"
