"""Rollback against the real service: over HTTP, by its workers, and recovered by the service
itself when its worker is SIGKILLed halfway."""

import json
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

from tests.conftest import png_bytes

from .conftest import Service, _stack_env, service_running, wait_until
from .test_recovery import kill_worker, stopped
from .test_server import RECOVERY

HEADER = "identifier,file_path,title"
ROLLED_BACK_WITHIN_S = 120


def manifest(service: Service, prefix: str, identifiers: list[str]) -> bytes:
    """A scan per identifier, its bytes differing per prefix, and the manifest naming them."""
    lines = [HEADER]
    for identifier in identifiers:
        path = Path(prefix) / f"{identifier}.png"
        (service.source / path).parent.mkdir(parents=True, exist_ok=True)
        (service.source / path).write_bytes(png_bytes(f"{prefix} {identifier}", size=512))
        lines.append(f"{identifier},{path},{identifier} from {prefix}")
    return ("\n".join(lines) + "\n").encode()


def imported(service: Service, data: bytes, **options) -> dict:
    """Create, upload and wait for an import to finish; its status."""
    job = service.request(
        "POST",
        "/api/v1/imports/create",
        json.dumps({"batch_size": 2, **options}).encode(),
        {"Content-Type": "application/json"},
    ).json()
    upload = service.request("POST", job["upload_url"], data, {"Content-Type": "text/csv"})
    assert upload.status == 202, upload.body
    status = service.wait_ended(job["status_url"], timeout_s=120)
    assert status["status"] == "finished" and status["failed_rows"] == 0, status
    return status


def rollback_started(service: Service, status: dict) -> dict:
    response = service.request("POST", f"/api/v1/imports/{status['uuid']}/rollback")
    assert response.status == 202, response.body
    return response.json()


def documents(service: Service, query: str = "") -> dict[str, str]:
    """Every document (or those the query selects), identifier -> sha256, all pages."""
    found, page = {}, f"/api/v1/documents/?{query}"
    while page:
        body = service.request("GET", page).json()
        found |= {document["identifier"]: document["sha256"] for document in body["results"]}
        page = body["next"]
    return found


def rollback_report(service: Service, status: dict) -> list[list[str]]:
    response = service.request("GET", status["rollback"]["report_url"])
    assert response.status == 200, response.body
    return [line.split(",") for line in response.body.decode().splitlines()]


def test_rolling_back_the_second_of_two_imports(service):
    # given a first import, a second that updates one of its documents and creates others, and a
    # third that changes one the second created
    first = imported(service, manifest(service, "first", ["A0", "A1", "A2"]))
    second = imported(
        service, manifest(service, "second", ["A0", "B0", "B1", "B2"]), on_conflict="update"
    )
    imported(service, manifest(service, "third", ["B0"]), on_conflict="update")
    before = documents(service)
    first_files = service.stored_files(f"documents/{first['uuid']}")
    assert len(first_files) == 2  # A0's first file went when the second updated it
    assert len(service.stored_files(f"documents/{second['uuid']}")) == 3  # A0, B1, B2
    # when the second is rolled back
    started = rollback_started(service, second)
    assert (started["status"], started["phase"]) == ("active", "rolling_back")
    ended = service.wait_ended(started["status_url"], timeout_s=ROLLED_BACK_WITHIN_S)
    # then what it created and nobody changed since is gone, from the database and storage
    assert ended["status"] == "rolled_back", ended
    assert ended["rollback"]["documents_deleted"] == 2
    assert ended["rollback"]["documents_kept"] == 2
    after = documents(service)
    assert set(after) == {"A0", "A1", "A2", "B0"}
    assert after == {identifier: before[identifier] for identifier in after}
    stored = service.stored_files(f"documents/{second['uuid']}")
    assert len(stored) == 1 and "A0" in next(iter(stored)), stored
    # and the first's documents and files are untouched
    assert set(documents(service, f"import={first['uuid']}")) == {"A1", "A2"}
    assert service.stored_files(f"documents/{first['uuid']}") == first_files
    # and the report lists each row, the kept ones with why
    report = rollback_report(service, ended)
    assert report[0] == ["row", "identifier", "document_uuid", "action", "kept_because"]
    assert [(row[1], row[3], row[4]) for row in report[1:]] == [
        ("A0", "kept", "only_updated"),
        ("B0", "kept", "changed_since"),
        ("B1", "deleted", ""),
        ("B2", "deleted", ""),
    ]
    # and it is not rolled back twice
    again = service.request("POST", f"/api/v1/imports/{second['uuid']}/rollback")
    assert again.status == 409 and again.json()["code"] == "import_already_rolled_back"


ROWS = 2000


def test_a_worker_killed_during_a_rollback_leaves_it_to_finish_once(tmp_path):
    data_dir = tmp_path / "service"
    data_dir.mkdir()
    with ExitStack() as stack:
        stack_env = _stack_env(stack)
        with service_running(data_dir, stack_env, RECOVERY) as service:
            # given an import of ROWS documents in many small batches, being rolled back
            identifiers = [f"R{n}" for n in range(ROWS)]
            status = imported(service, manifest(service, "many", identifiers), batch_size=50)
            assert status["imported_rows"] == ROWS
            started = rollback_started(service, status)
            status_path = urlsplit(started["status_url"]).path

            def halfway():
                body = service.request("GET", status_path).json()
                return body["rollback"]["rows_done"] > 0

            wait_until(halfway, timeout_s=60, what="the rollback under way", every_s=0.02)
            # when its worker (main process and pool) is SIGKILLed
            kill_worker(service)
            stopped(service)
        # and the service runs again on the same data, with no call but status reads
        with service_running(data_dir, stack_env, RECOVERY) as service:
            body = service.request("GET", status_path).json()
            assert body["status"] == "active", "rolled back before the kill: nothing tested"
            assert body["rollback"]["rows_done"] < ROWS
            ended = service.wait_ended(status_path, timeout_s=ROLLED_BACK_WITHIN_S)
            # then the rollback finished, every document deleted exactly once
            assert ended["status"] == "rolled_back", ended
            rollback = ended["rollback"]
            assert (rollback["rows_done"], rollback["documents_deleted"]) == (ROWS, ROWS)
            assert rollback["documents_kept"] == 0
            report = rollback_report(service, ended)[1:]
            assert sorted(int(row[0]) for row in report) == list(range(1, ROWS + 1))
            assert {row[3] for row in report} == {"deleted"}
            assert documents(service) == {}
            assert service.stored_files(f"documents/{status['uuid']}") == set()
