"""A real service for end-to-end tests: bin/serve (gunicorn + a Celery worker process) on a
temporary DATA_DIR, driven over HTTP like curl would."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_FILE_BYTES = 4096


def wait_until(check: Callable[[], object], *, timeout_s: float = 60.0, what: str = "") -> object:
    """Poll `check` until it returns something truthy; fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what or 'condition'} not true after {timeout_s}s"
        time.sleep(0.1)
    return result


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Service:
    base_url: str
    token: str
    data_dir: Path
    source: Path

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Response:
        url = path if path.startswith("http") else self.base_url + path
        all_headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        request = urllib.request.Request(url, data=body, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return Response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read())

    def upload_multipart(self, url: str, manifest: bytes) -> Response:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.csv"\r\n'
                f"Content-Type: text/csv\r\n\r\n"
            ).encode()
            + manifest
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return self.request(
            "POST", url, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )

    def wait_ended(self, status_url: str, timeout_s: float = 60.0) -> dict:
        def ended():
            body = self.request("GET", status_url).json()
            return body if body["status"] not in ("pending", "active") else None

        return wait_until(ended, timeout_s=timeout_s, what="import ended")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("service")
    port = _free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "PORT": str(port),
        "DJANGO_SETTINGS_MODULE": "imports.settings",
        "IMPORT_MAX_FILE_BYTES": str(MAX_FILE_BYTES),
        "WORKER_CONCURRENCY": "2",
    }
    _manage(env, "migrate", "--noinput")
    token = _manage(env, "create_import_token", "e2e").strip().splitlines()[-1].split()[-1]
    log = (data_dir / "serve.log").open("w")
    process = subprocess.Popen(
        ["bin/serve"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    service = Service(f"http://127.0.0.1:{port}", token, data_dir, data_dir / "source")

    def up() -> bool:
        assert process.poll() is None, (data_dir / "serve.log").read_text()
        try:
            return service.request("GET", "/api/v1/schema/").status == 200
        except OSError:
            return False

    wait_until(up, timeout_s=60, what="service up")
    yield service
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    finally:
        log.close()
