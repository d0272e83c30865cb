"""A real service for end-to-end tests: bin/serve (the waitress web server + a Celery worker
process) on a temporary DATA_DIR, driven over HTTP like curl would.

On the production stack (DATABASE_URL, CELERY_BROKER_URL, STORAGE_BUCKET set) each service gets
its own PostgreSQL database, created and dropped here, its own Celery queue on the shared Redis,
so that no message left over from another run reaches its worker, and its own key prefix in the
bucket, emptied afterwards.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import environ
import psycopg
import pytest
import redis
from django.conf import settings
from psycopg import sql

from ..waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
MAX_FILE_BYTES = 4096
# bin/serve's STOP_TIMEOUT for the services of the tests: the seconds a warm stop may take
# (a Celery worker on the filesystem broker takes about 8 s to stop even when idle).
STOP_TIMEOUT_S = 15
# What bin/serve promises: every process ended within STOP_TIMEOUT + 2 seconds; 2 more for the
# test's own polling on a busy machine.
STOP_BOUND_S = STOP_TIMEOUT_S + 2 + 2
# Set for the service alone; with the stack's, what another process needs to act on it.
SERVICE_VARIABLES = ("DATA_DIR", "DJANGO_SETTINGS_MODULE", "IMPORT_MAX_FILE_BYTES")
STACK_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_DEFAULT_QUEUE",
    "STORAGE_BUCKET",
    "STORAGE_PREFIX",
    "IMPORT_SOURCE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_S3_REGION_NAME",
    "AWS_S3_ENDPOINT_URL",
    "AWS_S3_ADDRESSING_STYLE",
)


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
    pid: int = 0  # bin/serve's: the web server and the Celery worker are its children
    # What another process (a command, a second worker) needs to act on this service: its
    # DATA_DIR, settings and limits, and the stack variables it runs with.
    env: dict = field(default_factory=dict)

    def log(self) -> str:
        """What the web server and the worker printed so far."""
        return (self.data_dir / "serve.log").read_text(errors="replace")

    def stored_files(self, folder: str = "documents") -> set[str]:
        """Every file in the service's storage under `folder`, however deep."""
        if prefix := self.env.get("STORAGE_PREFIX"):
            return _s3_names(prefix, folder)
        root = self.data_dir / "media"
        return {
            str(path.relative_to(root)) for path in (root / folder).rglob("*") if path.is_file()
        }

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


def _s3_client():
    return boto3.client(
        "s3",
        endpoint_url=settings.AWS_S3_ENDPOINT_URL,
        region_name=settings.AWS_S3_REGION_NAME,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
        aws_session_token=settings.AWS_SESSION_TOKEN,
    )


def _s3_keys(prefix: str) -> Iterator[str]:
    pages = _s3_client().get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket=settings.STORAGE_BUCKET, Prefix=f"{prefix}/"):
        yield from (item["Key"] for item in page.get("Contents", []))


def _s3_names(prefix: str, folder: str) -> set[str]:
    """Storage names (keys without the storage's prefix) under `folder`."""
    return {key.removeprefix(f"{prefix}/") for key in _s3_keys(f"{prefix}/{folder}")}


@contextmanager
def _s3_prefix(name: str) -> Iterator[str]:
    """A key prefix of its own in the bucket, emptied at the end."""
    prefix = "/".join(filter(None, [settings.STORAGE_PREFIX, "e2e", name]))
    try:
        yield prefix
    finally:
        client = _s3_client()
        keys = list(_s3_keys(prefix))
        for start in range(0, len(keys), 1000):
            objects = [{"Key": key} for key in keys[start : start + 1000]]
            client.delete_objects(Bucket=settings.STORAGE_BUCKET, Delete={"Objects": objects})


@contextmanager
def _postgres_database(database_url: str, suffix: str) -> Iterator[str]:
    """A new database beside DATABASE_URL's, dropped at the end; yields its URL."""
    config = environ.Env.db_url_config(database_url)
    name = f"{config['NAME']}_{suffix}"[:63]
    connect = {
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
        "dbname": config["NAME"],
    }
    with psycopg.connect(**connect, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(database_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(**connect, autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


def _redis_queue_delete(broker_url: str, queue: str) -> None:
    """Remove the keys named after the queue: its messages and its bindings."""
    with redis.Redis.from_url(broker_url) as client:
        if keys := list(client.scan_iter(match=f"*{queue}*")):
            client.delete(*keys)


def _stack_env(stack: ExitStack) -> dict[str, str]:
    """The variables that give one service its own database, queue and storage on the stack.

    Empty on the embedded defaults, where DATA_DIR alone keeps services apart.
    """
    run = uuid.uuid4().hex[:12]
    env = {}
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        env["DATABASE_URL"] = stack.enter_context(
            _postgres_database(os.environ["DATABASE_URL"], f"e2e_{run}")
        )
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        env["CELERY_TASK_DEFAULT_QUEUE"] = queue = f"bulk-import-e2e-{run}"
        if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
            stack.callback(_redis_queue_delete, settings.CELERY_BROKER_URL, queue)
    if settings.STORAGE_BUCKET:
        env["STORAGE_PREFIX"] = stack.enter_context(_s3_prefix(run))
    return env


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    with ExitStack() as stack:
        yield from _service_running(tmp_path_factory.mktemp("service"), _stack_env(stack))


def _service_running(
    data_dir: Path, stack_env: dict[str, str], extra_env: dict[str, str] | None = None
) -> Iterator[Service]:
    """bin/serve on `data_dir`, with `stack_env` and `extra_env` (bin/serve's own variables);
    stopped at the end unless the test stopped it."""
    port = _free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "PORT": str(port),
        "DJANGO_SETTINGS_MODULE": "imports.settings",
        "IMPORT_MAX_FILE_BYTES": str(MAX_FILE_BYTES),
        "WORKER_CONCURRENCY": "2",
        "STOP_TIMEOUT": str(STOP_TIMEOUT_S),
        **stack_env,
        **(extra_env or {}),
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
    service = Service(
        f"http://127.0.0.1:{port}",
        token,
        data_dir,
        data_dir / "source",
        pid=process.pid,
        env={
            **{name: os.environ[name] for name in STACK_VARIABLES if name in os.environ},
            **{name: env[name] for name in SERVICE_VARIABLES},
            **stack_env,
        },
    )

    def up() -> bool:
        assert process.poll() is None, service.log()
        try:
            return service.request("GET", "/api/v1/schema/").status == 200
        except OSError:
            return False

    try:
        wait_until(up, timeout_s=60, what="service up")
        yield service
    finally:
        _stop(process)
        log.close()
    no_server_path_logged(
        service.log(), service.data_dir, service.data_dir.resolve(), env.get("IMPORT_SOURCE", "")
    )


def no_server_path_logged(log: str, *paths: str | Path) -> None:
    """Nothing a service printed names its DATA_DIR (the source folder, storage and database
    under it) or the source it imports from: checked for every service of every e2e module once
    it has stopped, whatever its test did (a test that failed is not checked: its own failure
    says more)."""
    for path in sorted({str(path) for path in paths} - {""}):
        named = [line for line in log.splitlines() if path in line]
        assert not named, f"serve.log names {path}:\n" + "\n".join(named[:20])


service_running = contextmanager(_service_running)


def _stop(process: subprocess.Popen) -> None:
    """A warm shutdown, as Ctrl-C gives; killed, and the test failed, if it takes too long."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
