"""/metrics against the real service: an import whose batches two worker processes commit, and
the figures the web process reads back from the database, guarded by METRICS_TOKEN."""

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from ..factories import png_bytes
from .conftest import ROOT, Service, _service_running, _stack_env

METRICS_TOKEN = "e2e-metrics-token"
GOOD_ROWS = 120
BATCH_SIZE = 3


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    with ExitStack() as stack:
        yield from _service_running(
            tmp_path_factory.mktemp("service"),
            _stack_env(stack),
            {"METRICS_TOKEN": METRICS_TOKEN},
        )


def scans(service: Service, folder: str, count: int) -> list[str]:
    """`count` small scans in the source under `folder`, as manifest rows (identifier, title,
    file_path)."""
    rows = []
    for n in range(count):
        path = service.source / folder / f"{n:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(f"{folder} {n}", size=300))
        rows.append(f"{folder}-{n},Scan {n},{folder}/{n:04d}.png")
    return rows


def import_ended(service: Service, rows: list[str], batch_size: int) -> dict:
    """Run an import of `rows` through the API to its end; its status body."""
    options = json.dumps({"batch_size": batch_size}).encode()
    job = service.request(
        "POST", "/api/v1/imports/create", options, {"Content-Type": "application/json"}
    ).json()
    manifest = ("\n".join(["identifier,title,file_path", *rows]) + "\n").encode()
    upload = service.request("POST", job["upload_url"], manifest, {"Content-Type": "text/csv"})
    assert upload.status == 202, upload.body
    return service.wait_ended(job["status_url"], timeout_s=180)


def scrape(service: Service) -> dict[tuple[str, frozenset], float]:
    answer = service.request(
        "GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert answer.status == 200, answer.body
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.body.decode())
        for sample in family.samples
    }


def batch_workers(service: Service, uuid: str) -> dict[str, int]:
    """How many of the import's batches each worker committed, read from the service's
    database as a shell on its machine would (Batch.worker names the Celery worker)."""
    code = (
        "import json; from django.db.models import Count; from imports.models import Batch; "
        f"rows = Batch.objects.filter(import_job_id='{uuid}', committed_at__isnull=False)"
        ".order_by().values('worker').annotate(n=Count('pk')); "
        "print(json.dumps({row['worker']: row['n'] for row in rows}))"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=service.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_metrics_need_their_token(service):
    for authorization in ("", f"Bearer {service.token}", "Bearer wrong"):
        refused = service.request("GET", "/metrics", headers={"Authorization": authorization})
        assert refused.status == 401
        assert refused.json()["code"] == "not_authenticated"


def test_the_rows_and_batches_of_an_import_two_workers_ran_are_in_the_metrics(service):
    # given documents already there, identical to two rows of the import
    repeated = scans(service, "repeated", 2)
    import_ended(service, repeated, batch_size=2)
    # when an import of many small batches, with those two rows and three missing files, runs
    # on the service's two worker processes
    missing = [f"missing-{n},Missing,nowhere/{n}.png" for n in range(3)]
    rows = [*scans(service, "many", GOOD_ROWS), *repeated, *missing]
    status = import_ended(service, rows, batch_size=BATCH_SIZE)
    assert status["status"] == "finished", status
    assert (status["imported_rows"], status["skipped_rows"], status["failed_rows"]) == (
        GOOD_ROWS,
        2,
        3,
    )
    # then the metrics the web process reads show the report's counts by outcome
    samples = scrape(service)

    def of(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset({"import": status["uuid"], **labels}.items())))

    for outcome in ("imported", "skipped", "failed"):
        assert of("bulk_import_rows_total", outcome=outcome) == status[f"{outcome}_rows"]
    assert of("bulk_import_rows_processed_total") == len(rows)
    # and every batch once in the duration histogram
    batches = math.ceil(len(rows) / BATCH_SIZE)
    assert of("bulk_import_batches") == batches
    assert of("bulk_import_batches_committed_total") == batches
    assert of("bulk_import_batch_duration_seconds_count") == batches
    assert of("bulk_import_batch_duration_seconds_bucket", le="+Inf") == batches
    assert of("bulk_import_batch_duration_seconds_sum") > 0
    assert samples["bulk_import_imports", frozenset({"status": "finished"}.items())] == 2
    # and the batches were committed by more than one worker process
    workers = batch_workers(service, status["uuid"])
    assert sum(workers.values()) == batches
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        assert len(workers) == 2, workers  # bin/serve's two solo workers, each named
    else:
        # On Redis one worker runs two pool processes under one name: they look alike here.
        assert len(workers) == 1, workers
