"""Shared fixtures: API clients with tokens, a source folder, and the pipeline run inline."""

import hashlib
import io
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from rest_framework.test import APIClient

from imports.batches import batch_run, import_split
from imports.lifecycle import import_finish
from imports.models import Batch, Import


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


@pytest.fixture(autouse=True)
def storage(tmp_path: Path, settings) -> Path:
    """Storage of its own for every test, so that tests can count stored files."""
    location = tmp_path / "media"
    default = settings.STORAGES["default"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**default, "OPTIONS": {**default["OPTIONS"], "location": str(location)}},
    }
    return location


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


def png_bytes(seed: str, size: int = 256) -> bytes:
    """Bytes that sniff as PNG and differ for every seed."""
    body = hashlib.sha256(seed.encode()).digest() * (size // 32 + 1)
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + body[:size]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def csv_bytes(*lines: str, encoding: str = "utf-8", newline: str = "\n") -> bytes:
    return (newline.join(lines) + newline).encode(encoding)


def run_inline(job: Import) -> Import:
    """Run an uploaded import's background work in this process, as the worker would."""
    import_split(str(job.pk))
    for batch_id in Batch.objects.filter(import_job=job).values_list("pk", flat=True):
        batch_run(batch_id)
    import_finish(str(job.pk))
    job.refresh_from_db()
    return job


def stored_files(folder: str = "documents") -> set[str]:
    """Every file in storage under `folder`, however deep."""
    if not default_storage.exists(folder):
        return set()
    folders, files = default_storage.listdir(folder)
    found = {f"{folder}/{name}" for name in files}
    for name in folders:
        found |= stored_files(f"{folder}/{name}")
    return found
