"""The logs of a real service with LOG_FORMAT=json: every line one JSON object, and an import's
events each carrying its uuid."""

import json
import os
import re
from contextlib import ExitStack

from ..conftest import png_bytes
from .conftest import _stack_env, service_running

# Lines printed outside Python's logging, so in neither format, each recognised here:
# - Celery's worker says it stops from its signal handler with print() (logging there could
#   deadlock), after an empty line;
SHUTDOWN = re.compile(r"worker: (Warm|Cold) shutdown \(MainProcess\)")
# - Celery warns of a worker running as root with Python's warnings, before Django has set
#   logging up: in CI's container only (production runs workers as a user of their own).
AS_ROOT = re.compile(
    r"^\S+platforms\.py:\d+: SecurityWarning: You're running the worker with superuser "
    r"privileges.*?^  _warn_or_raise_security_error\(.*?\n",
    re.MULTILINE | re.DOTALL,
)


def logged_lines(log: str) -> list[str]:
    """The lines of serve.log that Python's logging (or bin/serve) wrote."""
    if os.geteuid() == 0:
        log = AS_ROOT.sub("", log)
    return [line for line in log.splitlines() if line and not SHUTDOWN.fullmatch(line)]


def test_every_line_is_json_and_an_imports_events_carry_its_uuid(tmp_path):
    with ExitStack() as stack:
        data_dir = tmp_path / "service"
        stack_env = _stack_env(stack)
        with service_running(data_dir, stack_env, {"LOG_FORMAT": "json"}) as service:
            # given a manifest with a row that imports and one whose file is missing
            (service.source / "a.png").write_bytes(png_bytes("a"))
            created = service.request(
                "POST",
                "/api/v1/imports/create",
                b'{"batch_size": 1}',
                {"Content-Type": "application/json"},
            )
            assert created.status == 201, created.body
            job = created.json()
            manifest = b"identifier,file_path,title\nA,a.png,A\nB,missing.png,B\n"
            # when it runs to its end, and the service stops
            upload = service.request(
                "POST", job["upload_url"], manifest, {"Content-Type": "text/csv"}
            )
            assert upload.status == 202, upload.body
            status = service.wait_ended(job["status_url"])
            assert (status["imported_rows"], status["failed_rows"]) == (1, 1), status
        log = service.log()

    # then every line, from the web server, the workers, beat and bin/serve, is one object
    lines = []
    for line in logged_lines(log):
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not JSON: {line!r}\nin:\n{log}") from None
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)
    # (beat's "Starting..." may come after the stop: it need not have started by then)
    loggers = {line["logger"] for line in lines}
    assert {"bin/serve", "imports.web", "celery.app.trace", "imports.batches"} <= loggers
    # and the import's events carry its uuid and figures
    events = [line for line in lines if line.get("import") == job["uuid"]]
    said = [line["event"] for line in events]
    assert said[:3] == ["import created", "manifest accepted", "manifest counted"]
    # (two workers: the first batch's line may come after the second's, even after the end's)
    assert sorted(said[3:]) == ["batch committed", "batch committed", "import ended"]
    committed = [line for line in events if line["event"] == "batch committed"]
    assert sorted(line["batch"] for line in committed) == [1, 2]
    assert sum(line["failed_rows"] for line in committed) == 1
    # Celery names a worker name@host: bin/serve's solo workers worker1@, worker2@; on Redis, one
    # prefork worker under its default name.
    assert all(re.fullmatch(r"[^@\s]+@\S+", line["worker"]) for line in committed)
    (ended,) = [line for line in events if line["event"] == "import ended"]
    assert (ended["status"], ended["imported_rows"], ended["failed_rows"]) == ("finished", 1, 1)
    # and no line names a path on the server
    assert str(service.data_dir) not in log
