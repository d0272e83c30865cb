"""Authentication (`Authorization: Bearer <token>`) and permissions on every endpoint."""

import uuid

import pytest
from django.contrib.auth import get_user_model

from imports.models import Import
from tests.conftest import client_with

from .conftest import assert_error, body, streamed, url

UNKNOWN = uuid.uuid4()

# Every endpoint, with a uuid that does not exist: authentication is checked before lookup.
ENDPOINTS = [
    ("get", url("imports/")),
    ("post", url("imports", "create")),
    ("get", url("imports", UNKNOWN)),
    ("delete", url("imports", UNKNOWN)),
    ("post", url("imports", UNKNOWN, "upload")),
    ("get", url("imports", UNKNOWN, "status")),
    ("get", url("imports", UNKNOWN, "report")),
    ("post", url("imports", UNKNOWN, "cancel")),
    ("post", url("imports", UNKNOWN, "resume")),
    ("get", url("documents/")),
    ("get", url("documents", UNKNOWN)),
    ("get", url("documents", UNKNOWN, "content")),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_token_is_401(anonymous_api, method, path):
    response = getattr(anonymous_api, method)(path)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_wrong_token_is_401(db, method, path):
    response = getattr(client_with("0" * 40), method)(path)
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_other_scheme_is_not_accepted(api, db):
    """The token only counts after `Bearer`: DRF's own `Token` keyword is not the API's."""
    key = api._credentials["HTTP_AUTHORIZATION"].split()[-1]
    client = client_with(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert_error(client.get(url("imports/")), 401, "not_authenticated")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer a b", "Bearer \u00e9\u00e9\u00e9"],
    ids=["empty", "spaces", "non-ascii"],
)
def test_malformed_authorization_is_401(db, authorization):
    client = client_with(None)
    client.credentials(HTTP_AUTHORIZATION=authorization)
    assert_error(client.get(url("imports/")), 401, "authentication_failed")


def test_read_only_cannot_create(reader_api):
    response = reader_api.post(url("imports", "create"), {}, format="json")
    assert_error(response, 403, "permission_denied")
    assert not Import.objects.exists()


def test_read_only_cannot_upload(reader_api, pending):
    response = reader_api.post(
        url("imports", pending["uuid"], "upload"),
        data=b"identifier,file_path,title\n",
        content_type="text/csv",
    )
    assert_error(response, 403, "permission_denied")


def test_read_only_cannot_resume(reader_api, pending):
    assert_error(
        reader_api.post(url("imports", pending["uuid"], "resume")), 403, "permission_denied"
    )


def test_read_only_cannot_cancel(reader_api, pending):
    assert_error(
        reader_api.post(url("imports", pending["uuid"], "cancel")), 403, "permission_denied"
    )


def test_read_only_cannot_delete(reader_api, api, pending):
    api.post(url("imports", pending["uuid"], "cancel"))
    assert_error(reader_api.delete(url("imports", pending["uuid"])), 403, "permission_denied")


def test_read_only_can_read_imports(reader_api, pending):
    listed = reader_api.get(url("imports/"))
    assert listed.status_code == 200
    assert [item["uuid"] for item in listed.json()["results"]] == [pending["uuid"]]
    assert reader_api.get(url("imports", pending["uuid"])).status_code == 200
    status = reader_api.get(url("imports", pending["uuid"], "status"))
    assert status.status_code == 200
    assert status.json()["status"] == "pending"


def test_read_only_can_read_reports(reader_api, finished):
    response = reader_api.get(url("imports", finished.uuid, "report"))
    assert response.status_code == 200
    assert streamed(response).startswith(b"identifier,")


def test_read_only_can_read_documents(reader_api, finished):
    listed = reader_api.get(url("documents/"))
    assert listed.status_code == 200
    assert listed.json()["count"] == 2
    document = listed.json()["results"][0]
    assert reader_api.get(url("documents", document["uuid"])).status_code == 200
    content = reader_api.get(url("documents", document["uuid"], "content"))
    assert content.status_code == 200
    assert streamed(content).startswith(b"\x89PNG")


@pytest.mark.parametrize("path", [url("imports/"), url("documents/")], ids=["imports", "documents"])
def test_user_without_permissions_is_403(no_perm_api, path):
    assert_error(no_perm_api.get(path), 403, "permission_denied")


def test_inactive_user_is_401(api, db):
    get_user_model().objects.filter(username="runner").update(is_active=False)
    assert_error(api.get(url("imports/")), 401, "authentication_failed")


@pytest.mark.parametrize("path", ["/api/v1/schema/", "/api/v1/schema/docs/"])
def test_schema_and_docs_are_public(anonymous_api, db, path):
    response = anonymous_api.get(path)
    assert response.status_code == 200
    assert response.content


def test_schema_lists_the_endpoints(anonymous_api, db):
    response = anonymous_api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = body(response)["paths"]
    for path in (
        "/api/v1/imports/create",
        "/api/v1/imports/{uuid}/upload",
        "/api/v1/imports/{uuid}/status",
        "/api/v1/imports/{uuid}/report",
        "/api/v1/imports/{uuid}/cancel",
        "/api/v1/imports/{uuid}/resume",
        "/api/v1/imports/{uuid}",
        "/api/v1/imports/",
        "/api/v1/documents/",
        "/api/v1/documents/{uuid}",
        "/api/v1/documents/{uuid}/content",
    ):
        assert path in paths


def test_unknown_path_is_json_404(api):
    assert_error(api.get("/api/v1/nowhere"), 404, "not_found")
    assert_error(api.get(url("imports", "not-a-uuid", "status")), 404, "not_found")


def test_a_host_not_served_is_a_json_400(api):
    response = api.get(url("imports/"), HTTP_HOST="elsewhere.example")
    assert_error(response, 400, "bad_request")
