"""Shared fixtures: API clients with tokens, a source folder, an import staged in batches, and
storage of each test's own.

Also the stack markers: a test marked `needs_postgres`, `needs_redis` or `needs_s3` runs only
when DATABASE_URL, CELERY_BROKER_URL or STORAGE_BUCKET point at that service (`.ci/run`'s second
run sets all three), and is skipped with the reason otherwise.
"""

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils.functional import empty
from rest_framework.test import APIClient

from imports import tasks
from imports.models import Import

from .factories import csv_bytes, import_staged, scans_in
from .factories import png_bytes as png_bytes  # tests/e2e import it from here


def token_for(username: str, *, read_only: bool = False) -> str:
    out = io.StringIO()
    args = [username, "--read-only"] if read_only else [username]
    call_command("create_import_token", *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1].split()[-1]


def client_with(token: str | None) -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


STACK_MARKERS = {
    "needs_postgres": (
        lambda: django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql",
        "needs PostgreSQL: set DATABASE_URL=postgres://... (.ci/run does)",
    ),
    "needs_redis": (
        lambda: django_settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")),
        "needs Redis: set CELERY_BROKER_URL=redis://... (.ci/run does)",
    ),
    "needs_s3": (
        lambda: bool(django_settings.STORAGE_BUCKET),
        "needs S3 storage: set STORAGE_BUCKET and AWS_* (.ci/run does, with moto's server)",
    ),
}


def pytest_configure(config) -> None:
    for name, (_, reason) in STACK_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: skipped unless configured; {reason}")


def pytest_report_header(config) -> str:
    """Which stack this run is on, first thing in the output."""
    database = django_settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = django_settings.CELERY_BROKER_URL.split("://", 1)[0]
    bucket = django_settings.STORAGE_BUCKET
    storage = f"S3 bucket {bucket}" if bucket else "local files"
    return f"stack: database {database}, broker {broker}, storage {storage}"


def pytest_collection_modifyitems(config, items) -> None:
    """Skip, with the reason, every test marked for a service this run is not configured for."""
    for name, (configured, reason) in STACK_MARKERS.items():
        if configured():
            continue
        for item in items:
            if item.get_closest_marker(name):
                item.add_marker(pytest.mark.skip(reason=reason))


def storage_is_s3(storage_settings: dict) -> bool:
    return storage_settings["BACKEND"] == "storages.backends.s3.S3Storage"


@pytest.fixture(autouse=True)
def storage(tmp_path: Path, settings) -> Iterator[Path | str]:
    """Storage of its own for every test, so that tests can count stored files.

    On local storage a folder under the test's tmp_path (returned as a Path); on S3 a key prefix
    of its own in the bucket (returned as a string), emptied afterwards.
    """
    default = settings.STORAGES["default"]
    if storage_is_s3(default):
        base = default["OPTIONS"].get("location", "")
        location = "/".join(filter(None, [base, "tests", uuid.uuid4().hex]))
    else:
        location = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**default, "OPTIONS": {**default["OPTIONS"], "location": str(location)}},
    }
    yield location
    still_ours = settings.STORAGES["default"]["OPTIONS"].get("location") == str(location)
    # Only a storage the test used has a connection, and objects, to clean up.
    if storage_is_s3(default) and still_ours and default_storage._wrapped is not empty:
        s3_prefix_delete(default_storage, location)


def s3_prefix_delete(s3_storage, prefix: str) -> None:
    """Delete every object under `prefix/` in the storage's bucket."""
    bucket = s3_storage.bucket
    for page in bucket.meta.client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket.name, Prefix=f"{prefix}/"
    ):
        if keys := [{"Key": item["Key"]} for item in page.get("Contents", [])]:
            bucket.meta.client.delete_objects(Bucket=bucket.name, Delete={"Objects": keys})


@pytest.fixture
def api(db) -> APIClient:
    """A client whose user may run imports."""
    return client_with(token_for("runner"))


@pytest.fixture
def reader_api(db) -> APIClient:
    """A client whose user may only read imports and documents."""
    return client_with(token_for("reader", read_only=True))


@pytest.fixture
def anonymous_api() -> APIClient:
    return client_with(None)


@pytest.fixture
def source(tmp_path: Path, settings) -> Path:
    """An empty source folder that manifest paths resolve against."""
    root = tmp_path / "source"
    root.mkdir()
    settings.IMPORT_SOURCE = str(root)
    return root


@pytest.fixture
def uploaded(source: Path) -> Import:
    """An uploaded import of six rows (D0..D5, files 0.png..5.png) in three batches of two,
    split and not yet run."""
    scans_in(source, *(f"{n}.png" for n in range(6)))
    lines = (f"D{n},{n}.png,T{n}" for n in range(6))
    return import_staged(csv_bytes("identifier,file_path,title", *lines), batch_size=2)


def stored_files(folder: str = "documents") -> set[str]:
    """Every file in storage under `folder`, however deep."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:  # local storage; S3 lists a missing folder as empty
        return set()
    found = {f"{folder}/{name}" for name in files}
    for name in folders:
        found |= stored_files(f"{folder}/{name}")
    return found


Queued = list[tuple[str, tuple]]


@pytest.fixture
def queued(monkeypatch) -> Queued:
    """Every task queued, as (short name, arguments), instead of being sent to a broker."""
    sent: Queued = []
    for name, task in {
        "split": tasks.import_split_task,
        "batch": tasks.batch_run_task,
        "finish": tasks.import_finish_task,
        "report": tasks.import_report_task,
        "rollback": tasks.batch_rollback_task,
        "rollback_finish": tasks.rollback_finish_task,
        "callback": tasks.callback_deliver_task,
    }.items():
        monkeypatch.setattr(task, "delay", lambda *args, name=name: sent.append((name, args)))
    return sent
