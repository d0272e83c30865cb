"""Helpers for the API tests: URLs, error checks, and imports brought to a given state."""

import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from imports.models import Import
from tests.conftest import client_with
from tests.factories import csv_bytes, png_bytes, run_inline

API = "/api/v1/"

# The manifest most tests upload: two rows that import, one whose file is missing.
MANIFEST_LINES = (
    "identifier,file_path,title,description,author,created_date,language,confidentiality,shelf",
    "doc-1,scans/a.png,First,A scan,Ann,2020-01-02,en,public,A1",
    "doc-2,scans/missing.png,Second,,,,,,B2",
    "doc-3,scans/b.png,Third,,,,fr,internal,C3",
)


def url(*parts: object) -> str:
    """`url("imports", uuid, "status")` -> "/api/v1/imports/<uuid>/status"."""
    return API + "/".join(str(part) for part in parts)


def body(response) -> dict:
    return json.loads(response.content)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response has this status and a JSON error body with `code` and `detail`."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    data = body(response)
    assert isinstance(data, dict)
    assert isinstance(data.get("code"), str) and data["code"]
    assert isinstance(data.get("detail"), str) and data["detail"]
    if code is not None:
        assert data["code"] == code, data
    return data


def create(api, **options) -> dict:
    response = api.post(url("imports", "create"), options, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def upload(api, uuid, data: bytes, content_type: str = "text/csv"):
    return api.post(url("imports", uuid, "upload"), data=data, content_type=content_type)


def job_of(uuid) -> Import:
    return Import.objects.get(pk=uuid)


def status_of(uuid) -> str:
    return job_of(uuid).status


def streamed(response) -> bytes:
    """The whole body of a (possibly streaming) response.

    Iterating `streaming_content` to its end closes the response (and its file) the way the
    test client wants; calling `response.close()` again would fire `request_finished` and close
    the test's database connection.
    """
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


@pytest.fixture
def scans(source: Path) -> dict[str, bytes]:
    """Two PNG files in the source, under scans/: the files MANIFEST_LINES names."""
    folder = source / "scans"
    folder.mkdir()
    files = {"a.png": png_bytes("a"), "b.png": png_bytes("b")}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


@pytest.fixture
def pending(api) -> dict:
    """A pending import, as the create endpoint returns it."""
    return create(api)


@pytest.fixture
def active(api, pending, scans) -> dict:
    """An import whose manifest (MANIFEST_LINES) is uploaded: active, phase counting."""
    response = upload(api, pending["uuid"], csv_bytes(*MANIFEST_LINES))
    assert response.status_code == 202, response.content
    return response.json()


@pytest.fixture
def finished(active) -> Import:
    """The MANIFEST_LINES import run to its end: 2 imported, 1 failed."""
    job = run_inline(job_of(active["uuid"]))
    assert job.status == "finished"
    return job


@pytest.fixture
def no_perm_api(db):
    """A client whose user has a valid token but no permission at all."""
    user = get_user_model().objects.create(username="nobody")
    return client_with(Token.objects.create(user=user).key)
