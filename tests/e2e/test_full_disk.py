"""A storage that fills up mid-import: the import ends in error saying so, its report comes once
there is space again, covering every row, and DELETE leaves nothing under reports/.

The service's storage (DATA_DIR/media) is a 5 MB tmpfs, which needs root to mount; the test is
skipped, with the reason, elsewhere, and on S3 storage, which cannot fill up.
"""

import csv
import io
import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from django.conf import settings

from imports.reports import REPORT_WAITS_FOR_SPACE

from ..conftest import png_bytes
from .conftest import MAX_FILE_BYTES, Service, _service_running, _stack_env, wait_until

ROWS = 120
BATCH_SIZE = 10
FREE_BYTES = 150 * 1024  # left beside the ballast: room for the manifest and a few batches
STORAGE_FULL = "a batch of rows failed: the storage is full. Free space, then resume the import."

pytestmark = pytest.mark.skipif(
    bool(settings.STORAGE_BUCKET), reason="S3 storage cannot be filled up; local storage only"
)


def _mount_small_tmpfs(folder: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a 5 MB tmpfs for storage needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"a 5 MB tmpfs could not be mounted: {mounted.stderr.strip()}")


def _unmount(folder: Path) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def small_disk_service(tmp_path) -> Iterator[Service]:
    """A service whose storage is a 5 MB filesystem of its own."""
    data_dir = tmp_path / "service"
    media = data_dir / "media"
    media.mkdir(parents=True)
    _mount_small_tmpfs(media)
    try:
        with ExitStack() as stack:
            # The upkeep tries again the reports still missing: every 2 s here, not 300.
            upkeep = {"IMPORT_UPKEEP_EVERY": "2"}
            yield from _service_running(data_dir, _stack_env(stack), upkeep)
    finally:
        _unmount(media)


def _fill(path: Path, leave: int = 0) -> None:
    """Write `path` until its filesystem has only `leave` bytes free, or none."""
    stats = os.statvfs(path.parent)
    try:
        with path.open("wb") as ballast:
            ballast.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
            while not leave:
                ballast.write(b"\0" * 4096)
                ballast.flush()
    except OSError:
        pass  # full


def _manifest(source: Path) -> bytes:
    folder = source / "full"
    folder.mkdir(parents=True)
    lines = ["identifier,file_path,title"]
    for number in range(ROWS):
        (folder / f"{number}.png").write_bytes(png_bytes(f"full-{number}", MAX_FILE_BYTES - 64))
        lines.append(f"F-{number},full/{number}.png,Scan {number}")
    return ("\n".join(lines) + "\n").encode()


def test_a_full_storage_ends_the_import_in_error_and_its_report_comes_once_there_is_space(
    small_disk_service,
):
    service = small_disk_service
    media = service.data_dir / "media"
    manifest = _manifest(service.source)
    # given a storage with room for a few batches' files only
    _fill(media / "ballast-1", leave=FREE_BYTES)
    job = service.request(
        "POST",
        "/api/v1/imports/create",
        b'{"batch_size": 10}',
        {"Content-Type": "application/json"},
    ).json()
    # when the import runs into the full disk
    upload = service.request("POST", job["upload_url"], manifest, {"Content-Type": "text/csv"})
    assert upload.status == 202, upload.body
    ended = service.wait_ended(job["status_url"], timeout_s=120)
    # then it ends in error saying the storage is full, in plain words
    assert ended["status"] == "error", ended
    assert ended["error"].startswith(STORAGE_FULL), ended["error"]
    assert "/" not in ended["error"] and "Errno" not in ended["error"]
    assert 0 < ended["processed_rows"] < ROWS

    # and while no space is left, `report` says the report waits for it; nothing half-written
    _fill(media / "ballast-2")

    def waits_for_space():
        answer = service.request("GET", job["report_url"])
        assert answer.status == 409, answer.body
        return answer.json()["detail"] == REPORT_WAITS_FOR_SPACE

    wait_until(waits_for_space, timeout_s=60, what="the report says it waits for space")
    assert service.stored_files("reports") == set()
    status = service.request("GET", job["status_url"]).json()
    assert (status["error"], status["report_error"]) == (STORAGE_FULL, REPORT_WAITS_FOR_SPACE)

    # when space is freed
    for ballast in ("ballast-1", "ballast-2"):
        (media / ballast).unlink(missing_ok=True)
    # then the report comes on the upkeep's next run, with every row
    report = wait_until(
        lambda: (answer := service.request("GET", job["report_url"])).status == 200 and answer,
        timeout_s=120,
        what="the report written once space is freed",
    )
    rows = list(csv.DictReader(io.StringIO(report.body.decode())))
    assert [row["identifier"] for row in rows] == [f"F-{number}" for number in range(ROWS)]
    statuses = [row["import_status"] for row in rows]
    assert statuses.count("imported") == ended["imported_rows"]
    assert statuses.count("not_processed") == ROWS - ended["processed_rows"]
    assert service.request("GET", job["status_url"]).json()["error"] == STORAGE_FULL

    # and DELETE leaves nothing under reports/
    assert service.request("DELETE", f"/api/v1/imports/{job['uuid']}").status == 204
    assert not [path for path in (media / "reports").rglob("*") if path.is_file()]
    assert not (media / "reports" / job["uuid"]).exists()
