"""The rollback endpoints: POST imports/{uuid}/rollback and GET imports/{uuid}/rollback-report."""

import uuid

import pytest

from imports.models import Document
from imports.rollbacks import batch_rollback, batches_to_roll_back
from tests.factories import csv_bytes, import_run, scans_in

from .conftest import assert_error, body, create, job_of, streamed, url

pytestmark = pytest.mark.django_db

REPORT_HEADER = "row,identifier,document_uuid,action,kept_because"


def rollback(api, uuid):
    return api.post(url("imports", uuid, "rollback"))


def rollback_report(api, uuid):
    return api.get(url("imports", uuid, "rollback-report"), HTTP_ACCEPT="text/csv")


def rollback_work_run(uuid) -> None:
    """Run the batches the rollback queued, as the workers would."""
    for batch_id in batches_to_roll_back(uuid):
        batch_rollback(batch_id)


def test_rollback_answers_202_and_the_status_says_its_progress(api, finished):
    uuids = {d.identifier: str(d.uuid) for d in Document.objects.all()}
    response = rollback(api, finished.uuid)
    assert response.status_code == 202, response.content
    started = body(response)
    assert (started["status"], started["phase"]) == ("active", "rolling_back")
    assert started["rollback"]["state"] == "rolling_back"
    assert (started["rollback"]["rows_done"], started["rollback"]["rows_total"]) == (0, 2)
    assert started["rollback"]["report_url"].endswith(f"/imports/{finished.uuid}/rollback-report")
    # the report so far is its header
    assert streamed(rollback_report(api, finished.uuid)).decode().splitlines() == [REPORT_HEADER]
    rollback_work_run(finished.uuid)
    ended = api.get(url("imports", finished.uuid, "status")).json()
    assert (ended["status"], ended["phase"]) == ("rolled_back", "")
    assert ended["rollback"] | {"started_at": None, "finished_at": None, "report_url": None} == {
        "state": "rolled_back",
        "started_at": None,
        "finished_at": None,
        "rows_done": 2,
        "rows_total": 2,
        "progress": 100.0,
        "documents_deleted": 2,
        "documents_kept": 0,
        "report_url": None,
    }
    assert api.get(url("documents/")).json()["count"] == 0
    response = rollback_report(api, finished.uuid)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="import-{finished.uuid}-rollback.csv"' in response["Content-Disposition"]
    assert streamed(response).decode().splitlines() == [
        REPORT_HEADER,
        f"1,doc-1,{uuids['doc-1']},deleted,",
        f"3,doc-3,{uuids['doc-3']},deleted,",
    ]
    # and the import's own report is still there
    assert api.get(url("imports", finished.uuid, "report")).status_code == 200


def test_a_dry_run_is_rolled_back_at_once_with_200(api, source):
    scans_in(source, "a.png")
    dry = import_run(csv_bytes("identifier,file_path,title", "A,a.png,A"), dry_run=True)
    response = rollback(api, dry.uuid)
    assert response.status_code == 200, response.content
    assert body(response)["status"] == "rolled_back"
    assert body(response)["rollback"]["documents_deleted"] == 0


def test_an_import_rolled_back_already_is_409(api, finished):
    rollback(api, finished.uuid)
    rollback_work_run(finished.uuid)
    assert_error(rollback(api, finished.uuid), 409, "import_already_rolled_back")


def test_an_active_import_is_409(api, active):
    assert_error(rollback(api, active["uuid"]), 409, "import_still_open")


def test_a_pending_import_is_409(api, pending):
    assert_error(rollback(api, pending["uuid"]), 409, "import_still_open")


def test_while_another_import_is_open_it_is_409(api, finished):
    create(api)
    assert_error(rollback(api, finished.uuid), 409, "another_import_open")
    assert job_of(finished.uuid).status == "finished"


def test_while_rolling_back_no_import_starts_and_cancel_is_409(api, finished):
    rollback(api, finished.uuid)
    response = api.post(url("imports", "create"), {}, format="json")
    assert_error(response, 409, "another_import_open")
    assert_error(api.post(url("imports", finished.uuid, "cancel")), 409, "rollback_not_cancellable")
    assert_error(api.post(url("imports", finished.uuid, "resume")), 409, "import_not_resumable")
    assert_error(rollback(api, finished.uuid), 409, "import_still_open")


def test_unknown_import_is_404(api):
    assert_error(rollback(api, uuid.uuid4()), 404)
    assert_error(rollback_report(api, uuid.uuid4()), 404)


def test_the_rollback_report_of_an_import_never_rolled_back_is_409_in_json(api, finished):
    response = rollback_report(api, finished.uuid)
    assert_error(response, 409, "rollback_not_started")
    assert response["Content-Type"] == "application/json"


def test_a_reader_may_not_roll_back(reader_api, finished):
    assert_error(rollback(reader_api, finished.uuid), 403)
    assert job_of(finished.uuid).status == "finished"


def test_anonymous_is_401(anonymous_api, finished):
    assert_error(rollback(anonymous_api, finished.uuid), 401)
    assert_error(rollback_report(anonymous_api, finished.uuid), 401)
