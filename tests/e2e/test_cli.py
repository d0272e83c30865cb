"""The operators' commands (import_manifest, import_watch) run as an operator runs them, against
the real service: the same lock, the same workers, the same report as the API."""

import csv
import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

from imports.errors import AnotherImportOpen, NoWorkerRunning

from ..factories import png_bytes
from ..waiting import wait_until
from .conftest import ROOT, STACK_VARIABLES, Service

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
COMMAND_TIMEOUT_S = 60


def command_env(service: Service) -> dict[str, str]:
    """What a shell on the service's machine has: its DATA_DIR, settings and stack."""
    return {**os.environ, **service.env, "PUBLIC_URL": service.base_url}


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    # Decoded here, not in text mode, whose universal newlines would hide a bar's "\r".
    done.stdout, done.stderr = done.stdout.decode(), done.stderr.decode()
    return done


def manifest_of(service: Service, folder: str, rows: int, *, missing: int = 0) -> Path:
    """A manifest of `rows` small scans put in the source under `folder`, and `missing` rows
    whose file is not there."""
    lines = ["identifier,title,file_path"]
    for n in range(1, rows + 1):
        path = service.source / folder / f"{n:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(f"{folder} {n}", size=300))
        lines.append(f"{folder}-{n},Scan {n},{folder}/{n:04d}.png")
    lines += [f"{folder}-missing-{n},Missing,{folder}/none-{n}.png" for n in range(missing)]
    manifest = service.data_dir / f"{folder}.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def report_of(path: Path) -> list[dict]:
    with path.open(newline="") as report:
        return list(csv.DictReader(report))


def test_a_failing_row_exits_1_with_the_report_written(service, tmp_path):
    # given a manifest whose last row names a file that is not in the source
    manifest = manifest_of(service, "failing", 3, missing=1)
    report = tmp_path / "report.csv"

    # when it is imported with the command, the source named as it is configured
    done = manage(
        command_env(service),
        "import_manifest",
        str(manifest),
        "--source",
        f"{service.source}/",
        "--report",
        str(report),
        "--every",
        "0.2",
    )

    # then it exits 1, and the report says which row failed and why
    assert done.returncode == 1, done.stderr
    rows = report_of(report)
    assert [row["import_status"] for row in rows] == ["imported"] * 3 + ["failed"]
    assert "no such file" in rows[-1]["import_comment"]
    # and its output, not a TTY here, is plain lines with the counts and no redrawn bar
    assert "\r" not in done.stdout
    assert re.search(
        r"^\d\d:\d\d:\d\d finished 4/4 rows \(100\.0%\): 3 imported, 0 skipped, 1 failed",
        done.stdout,
        re.MULTILINE,
    ), done.stdout
    assert "Finished: 1 row(s) failed" in done.stdout
    assert str(service.data_dir) not in done.stdout.replace(str(manifest), "")


def test_a_source_other_than_the_configured_one_is_refused(service):
    manifest = manifest_of(service, "elsewhere", 1)

    done = manage(command_env(service), "import_manifest", str(manifest), "--source", "/")

    assert done.returncode == 3
    assert "Refused (source_not_allowed)" in done.stderr
    assert "IMPORT_SOURCE" in done.stderr
    assert str(service.source) not in done.stderr


def test_a_dry_run_exits_0_and_stores_nothing(service):
    manifest = manifest_of(service, "dry", 3)

    done = manage(command_env(service), "import_manifest", str(manifest), "--dry-run")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 valid, 0 skipped, 0 failed" in done.stdout
    for n in range(1, 4):
        found = service.request("GET", f"/api/v1/documents/?identifier=dry-{n}").json()
        assert found["count"] == 0


def test_another_open_import_is_refused_with_the_apis_message(service):
    # given an import opened over the API
    manifest = manifest_of(service, "second", 1)
    other = service.request("POST", "/api/v1/imports/create").json()
    try:
        # when the command starts another
        done = manage(command_env(service), "import_manifest", str(manifest))

        # then it is refused before it started, as the API would refuse it
        assert done.returncode == 3
        assert f"Refused (another_import_open): {AnotherImportOpen.default_detail}" in done.stderr
        assert done.stdout == ""
    finally:
        service.request("POST", f"/api/v1/imports/{other['uuid']}/cancel")


def import_under_way(service: Service, folder: str, *options: str) -> tuple[subprocess.Popen, str]:
    """import_manifest of 1,500 rows in small batches, once some are processed; its status URL."""
    manifest = manifest_of(service, folder, 1500)
    running = subprocess.Popen(
        [sys.executable, "manage.py", "import_manifest", str(manifest), "--batch-size", "10"]
        + ["--every", "0.5", *options],
        cwd=ROOT,
        env=command_env(service),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        uuid = re.fullmatch(rf"Importing ({UUID})\n", running.stdout.readline())[1]
        status_url = f"/api/v1/imports/{uuid}/status"
        wait_until(
            lambda: service.request("GET", status_url).json()["processed_rows"] > 0,
            timeout_s=30,
            what="rows processed",
        )
    except BaseException:
        running.kill()
        raise
    return running, status_url


def test_ctrl_c_cancels_the_import_and_writes_its_report(service, tmp_path):
    # given an import followed by the command, under way
    report = tmp_path / "report.csv"
    running, status_url = import_under_way(service, "interrupted", "--report", str(report))

    # when the operator presses Ctrl-C
    try:
        running.send_signal(signal.SIGINT)
        out, err = running.communicate(timeout=COMMAND_TIMEOUT_S)
    finally:
        running.kill()

    # then the import is cancelled cleanly, said so, and its report written with what is left
    assert running.returncode == 2, out + err
    assert "Ctrl-C: the import is cancelled" in out
    status = service.request("GET", status_url).json()
    assert status["status"] == "cancelled"
    assert status["processed_rows"] < 1500
    rows = report_of(report)
    assert len(rows) == 1500
    assert sum(row["import_status"] == "not_processed" for row in rows) == (
        1500 - status["processed_rows"]
    )


def test_a_second_ctrl_c_leaves_at_once_and_the_cancel_goes_on(service, tmp_path):
    # given an import under way, whose command was asked once to stop
    report = tmp_path / "report.csv"
    running, status_url = import_under_way(service, "left", "--report", str(report))
    try:
        running.send_signal(signal.SIGINT)
        while "the import is cancelled" not in running.stdout.readline():
            pass

        # when Ctrl-C is pressed again
        running.send_signal(signal.SIGINT)
        out, err = running.communicate(timeout=COMMAND_TIMEOUT_S)
    finally:
        running.kill()

    # then the command leaves at once, saying how to follow the import, which is cancelled
    assert running.returncode == 130, out + err
    assert "Left at once" in err
    assert "python manage.py import_watch" in err
    assert service.wait_ended(status_url)["status"] == "cancelled"


def test_detach_prints_the_uuid_and_status_url_and_returns(service):
    manifest = manifest_of(service, "detached", 2)

    done = manage(command_env(service), "import_manifest", str(manifest), "--detach")

    assert done.returncode == 0, done.stderr
    uuid = re.search(rf"^Started import ({UUID})$", done.stdout, re.MULTILINE)[1]
    status_url = f"{service.base_url}/api/v1/imports/{uuid}/status"
    assert f"Status: {status_url}\n" in done.stdout
    assert service.wait_ended(status_url)["status"] == "finished"


def test_import_watch_follows_an_import_started_over_the_api(service, tmp_path):
    # given an import started over the API
    manifest = manifest_of(service, "watched", 2, missing=1)
    job = service.request("POST", "/api/v1/imports/create").json()
    upload = service.request(
        "POST", job["upload_url"], manifest.read_bytes(), {"Content-Type": "text/csv"}
    )
    assert upload.status == 202, upload.body
    report = tmp_path / "report.csv"

    # when the operator watches it
    done = manage(command_env(service), "import_watch", job["uuid"], "--report", str(report))

    # then the command follows it to its end, and says how it ended by its exit code
    assert done.returncode == 1, done.stderr
    assert "3/3 rows (100.0%): 2 imported, 0 skipped, 1 failed" in done.stdout
    assert [row["import_status"] for row in report_of(report)] == [
        "imported",
        "imported",
        "failed",
    ]


def test_import_watch_of_no_such_import_is_refused(service):
    done = manage(command_env(service), "import_watch", "00000000-0000-0000-0000-000000000000")

    assert done.returncode == 3
    assert "Refused (not_found)" in done.stderr


def test_no_worker_running_is_refused_before_an_import_opens(tmp_path):
    # given a DATA_DIR on the embedded defaults where no service runs
    env = {name: value for name, value in os.environ.items() if name not in STACK_VARIABLES}
    env |= {"DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "imports.settings"}
    assert manage(env, "migrate", "--noinput").returncode == 0
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("identifier,title,file_path\nA-1,A,a.png\n")

    # when the command is run there
    done = manage(env, "import_manifest", str(manifest))

    # then it is refused at once, saying why, rather than showing a bar stuck at 0
    assert done.returncode == 3
    assert f"Refused (no_worker_running): {NoWorkerRunning.default_detail}" in done.stderr


def test_import_rollback_deletes_what_the_import_created_then_refuses_again(service):
    # given an import of three new documents, made with the command
    manifest = manifest_of(service, "undone", 3)
    imported = manage(command_env(service), "import_manifest", str(manifest))
    assert imported.returncode == 0, imported.stderr
    uuid = re.search(rf"^Importing ({UUID})$", imported.stdout, re.MULTILINE)[1]

    # when it is rolled back with the command
    done = manage(command_env(service), "import_rollback", uuid, "--every", "0.2")

    # then it follows the rollback to its end, and the documents are gone
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"rolled back 3/3 rows \(100\.0%\): 3 deleted, 0 kept", done.stdout)
    for n in range(1, 4):
        found = service.request("GET", f"/api/v1/documents/?identifier=undone-{n}").json()
        assert found["count"] == 0
    # and a second rollback is refused, as the API refuses it
    again = manage(command_env(service), "import_rollback", uuid)
    assert again.returncode == 3
    assert "Refused (import_already_rolled_back)" in again.stderr


def test_on_a_terminal_the_progress_is_a_live_bar(service):
    # given an import that ran, and a terminal 100 columns wide
    manifest = manifest_of(service, "terminal", 2)
    imported = manage(command_env(service), "import_manifest", str(manifest))
    assert imported.returncode == 0, imported.stderr
    uuid = re.search(rf"^Importing ({UUID})$", imported.stdout, re.MULTILINE)[1]
    screen, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))

    # when it is watched there
    with open(terminal, "wb") as stdout:
        watch = subprocess.Popen(
            [sys.executable, "manage.py", "import_watch", uuid],
            cwd=ROOT,
            env=command_env(service),
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
    shown = b""
    while chunk := _read(screen):
        shown += chunk
    assert watch.wait(timeout=COMMAND_TIMEOUT_S) == 0
    os.close(screen)

    # then the bar, drawn over itself, has the import's figures, and the end is said below it
    # (the terminal ends lines with "\r\n"; the bar redraws itself after a bare "\r")
    lines = [line.rsplit("\r", 1)[-1] for line in shown.decode().split("\r\n")]
    bar, end = lines[-3:-1]
    assert re.fullmatch(
        r"finished: 100\.0%\|█+\| 2/2 rows, 2 imported, 0 skipped, 0 failed, [\d.]+ rows/s", bar
    ), bar
    assert len(bar) <= 100
    assert end == "Finished: every row imported or skipped."


def _read(screen: int) -> bytes:
    """What the terminal showed next; b"" once the command closed it (EIO on Linux)."""
    try:
        return os.read(screen, 4096)
    except OSError:
        return b""
