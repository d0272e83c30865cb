"""/metrics: the figures of imports in different states, read back from the exposition, the
token that guards it, and a scrape's cost, which does not grow with the number of imports."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from imports import batches, recovery
from imports.batches import batch_run
from imports.lifecycle import import_resume
from imports.models import Batch, Import, ImportStatus

from .factories import csv_bytes, import_cancelled, import_run, import_staged, scans_in

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title"

Samples = dict[tuple[str, frozenset], float]


def scrape(**headers) -> Samples:
    """Every sample of a GET /metrics, keyed by (name, labels)."""
    response = Client().get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = text_string_to_metric_families(response.content.decode())
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }


def of(samples: Samples, name: str, job: Import | None = None, **labels: str) -> float | None:
    """The sample's value (None when there is none), for `job`'s series if given."""
    if job is not None:
        labels["import"] = str(job.pk)
    return samples.get((name, frozenset(labels.items())))


def bucket_counts(samples: Samples, job: Import) -> dict[str, float]:
    """The import's batch-duration histogram, as upper bound -> cumulative count."""
    return {
        labels["le"]: value
        for (name, key), value in samples.items()
        if name == "bulk_import_batch_duration_seconds_bucket"
        and (labels := dict(key))["import"] == str(job.pk)
    }


def test_rows_by_outcome_for_an_import_and_a_dry_run(source):
    # given an import of two rows, then one with a row already there, a new one and a missing
    # file, then a dry run of a new row and a missing file
    scans_in(source, "a.png", "b.png", "c.png", "d.png")
    first = import_run(csv_bytes(HEADER, "A,a.png,A", "B,b.png,B"))
    second = import_run(
        csv_bytes(HEADER, "A,a.png,A", "C,c.png,C", "X,missing.png,X"), batch_size=2
    )
    dry = import_run(csv_bytes(HEADER, "D,d.png,D", "Y,missing.png,Y"), dry_run=True)
    # when Prometheus scrapes
    samples = scrape()
    # then each import's rows are there by outcome, a dry run's would-be imports as `valid`
    expected = {
        first: {"imported": 2, "skipped": 0, "failed": 0},
        second: {"imported": 1, "skipped": 1, "failed": 1},
        dry: {"valid": 1, "skipped": 0, "failed": 1},
    }
    for job, outcomes in expected.items():
        found = {
            dict(key)["outcome"]: value
            for (name, key), value in samples.items()
            if name == "bulk_import_rows_total" and dict(key)["import"] == str(job.pk)
        }
        assert found == outcomes
        assert of(samples, "bulk_import_rows_processed_total", job) == sum(outcomes.values())
        assert of(samples, "bulk_import_manifest_rows", job) == sum(outcomes.values())
    assert of(samples, "bulk_import_batches", second) == 2
    assert of(samples, "bulk_import_batches_committed_total", second) == 2


def test_imports_by_status_and_the_active_one_by_phase_every_one_present(source):
    # given an import finished, one cancelled and one importing
    scans_in(source, "a.png", "b.png")
    import_run(csv_bytes(HEADER, "A,a.png,A"))
    import_cancelled(csv_bytes(HEADER, "B,b.png,B"))
    importing = import_staged(csv_bytes(HEADER, "B,b.png,B"))
    # when Prometheus scrapes
    samples = scrape()
    # then each status has its figure, those with no import too
    by_status = {
        status: of(samples, "bulk_import_imports", status=status) for status in ImportStatus.values
    }
    assert by_status == {
        "pending": 0,
        "active": 1,
        "finished": 1,
        "error": 0,
        "cancelled": 1,
        "rolled_back": 0,
    }
    by_phase = {
        phase: of(samples, "bulk_import_active_imports", phase=phase)
        for phase in ("counting", "importing", "reporting", "rolling_back")
    }
    assert by_phase == {"counting": 0, "importing": 1, "reporting": 0, "rolling_back": 0}
    # and the importing one has no rows yet, and no manifest rows until counted
    assert of(samples, "bulk_import_rows_processed_total", importing) == 0
    assert of(samples, "bulk_import_manifest_rows", importing) == 1


def test_the_batch_durations_of_committed_batches_fill_the_histograms_buckets(uploaded):
    # given three batches: two committed in 0.03 s and 45 s, one not yet committed
    first, second, third = Batch.objects.filter(import_job=uploaded).order_by("number")
    batch_run(first.pk)
    batch_run(second.pk)
    Batch.objects.filter(pk=first.pk).update(duration_seconds=0.03)
    Batch.objects.filter(pk=second.pk).update(duration_seconds=45)
    # when Prometheus scrapes
    samples = scrape()
    # then each bucket counts the committed batches at most that long, and the sum is theirs
    buckets = bucket_counts(samples, uploaded)
    assert buckets == {
        "0.05": 1,
        "0.1": 1,
        "0.25": 1,
        "0.5": 1,
        "1.0": 1,
        "2.5": 1,
        "5.0": 1,
        "10.0": 1,
        "30.0": 1,
        "60.0": 2,
        "120.0": 2,
        "300.0": 2,
        "600.0": 2,
        "+Inf": 2,
    }
    assert of(samples, "bulk_import_batch_duration_seconds_count", uploaded) == 2
    assert of(samples, "bulk_import_batch_duration_seconds_sum", uploaded) == pytest.approx(45.03)
    assert of(samples, "bulk_import_batches", uploaded) == 3
    assert of(samples, "bulk_import_batches_committed_total", uploaded) == 2
    # and a batch committed before durations were recorded is committed, but not in it
    batch_run(third.pk)
    Batch.objects.filter(pk=third.pk).update(duration_seconds=None)
    samples = scrape()
    assert of(samples, "bulk_import_batch_duration_seconds_count", uploaded) == 2
    assert of(samples, "bulk_import_batches_committed_total", uploaded) == 3


def test_lost_and_recovered_batches_and_stalls_and_none_falls_after_a_resume(
    uploaded, queued, settings
):
    # given a batch lost twice with one loss allowed: queued again once, then given up on
    settings.IMPORT_BATCH_MAX_REQUEUES = 1
    first = Batch.objects.filter(import_job=uploaded).order_by("number").first()
    lost_for = timedelta(seconds=settings.IMPORT_BATCH_LOST_AFTER + 1)
    now = timezone.now()
    for _ in range(2):
        now += lost_for
        batches._attempt_start(Batch.objects.get(pk=first.pk), "celery@worker-1")
        Batch.objects.filter(pk=first.pk).update(heartbeat_at=now - lost_for)
        Import.objects.filter(pk=uploaded.pk).update(heartbeat_at=now)
        recovery.imports_recover(now)
    assert Import.objects.get(pk=uploaded.pk).status == ImportStatus.ERROR
    samples = scrape()
    assert of(samples, "bulk_import_batches_lost_total", uploaded) == 2
    assert of(samples, "bulk_import_batches_recovered_total", uploaded) == 1
    assert of(samples, "bulk_import_stalls_total", uploaded) == 0
    # when it is resumed (the batch gets its tries again) and then stops reporting as a whole
    import_resume(uploaded)
    now += lost_for
    Import.objects.filter(pk=uploaded.pk).update(heartbeat_at=now - lost_for)
    recovery.imports_recover(now)
    # then the losses are still counted, and the stall is
    samples = scrape()
    assert of(samples, "bulk_import_batches_lost_total", uploaded) == 2
    assert of(samples, "bulk_import_batches_recovered_total", uploaded) == 1
    assert of(samples, "bulk_import_stalls_total", uploaded) == 1


def test_the_active_imports_heartbeat_age_and_its_oldest_uncommitted_batch_age(source, uploaded):
    # given an importing import that beat 100 s ago, one batch committed, the others made
    # 300 s and 200 s ago, and an import that ended in error before it with a batch left
    first, second, third = Batch.objects.filter(import_job=uploaded).order_by("number")
    batch_run(first.pk)
    now = timezone.now()
    ended = Import.objects.create(
        status=ImportStatus.ERROR, batch_size=1, total_rows=1, heartbeat_at=now
    )
    Batch.objects.create(
        import_job=ended, number=1, first_row=1, last_row=1, created_at=now - timedelta(hours=1)
    )
    Batch.objects.filter(pk=first.pk).update(created_at=now - timedelta(seconds=900))
    Batch.objects.filter(pk=second.pk).update(created_at=now - timedelta(seconds=300))
    Batch.objects.filter(pk=third.pk).update(created_at=now - timedelta(seconds=200))
    Import.objects.filter(pk=uploaded.pk).update(heartbeat_at=now - timedelta(seconds=100))
    # when Prometheus scrapes
    samples = scrape()
    # then both ages are the active import's, and no other import has either
    heartbeat = of(samples, "bulk_import_heartbeat_age_seconds", uploaded, phase="importing")
    oldest = of(samples, "bulk_import_oldest_uncommitted_batch_age_seconds", uploaded)
    assert heartbeat == pytest.approx(100, abs=5)
    assert oldest == pytest.approx(300, abs=5)
    names = [name for name, _ in samples]
    assert names.count("bulk_import_heartbeat_age_seconds") == 1
    assert names.count("bulk_import_oldest_uncommitted_batch_age_seconds") == 1
    # and once every batch is committed, there is no oldest uncommitted batch
    for batch in (second, third):
        batch_run(batch.pk)
    samples = scrape()
    assert of(samples, "bulk_import_oldest_uncommitted_batch_age_seconds", uploaded) is None


def test_without_a_token_set_the_metrics_are_open():
    assert Client().get("/metrics").status_code == 200


def test_with_a_token_set_the_metrics_need_it(settings):
    settings.METRICS_TOKEN = "metrics-secret"
    for headers in ({}, {"Authorization": "Bearer another"}, {"Authorization": "metrics-secret"}):
        refused = Client().get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused["WWW-Authenticate"].startswith("Bearer")
        assert refused.json()["code"] == "not_authenticated"
        assert "METRICS_TOKEN" in refused.json()["detail"]
        assert "metrics-secret" not in refused.content.decode()
    assert "bulk_import_imports" in str(scrape(Authorization="Bearer metrics-secret"))


def test_only_get_and_head_are_answered():
    head = Client().head("/metrics")
    assert (head.status_code, head.content) == (200, b"")
    refused = Client().post("/metrics")
    assert refused.status_code == 405
    assert refused.json()["code"] == "method_not_allowed"
    assert refused["Allow"] == "GET, HEAD"


def test_the_queries_of_a_scrape_do_not_grow_with_the_imports(source):
    scans_in(source, "a.png")

    def queries_of_a_scrape() -> int:
        with CaptureQueriesContext(connection) as queries:
            scrape()
        return len(queries)

    import_run(csv_bytes(HEADER, "A,a.png,A"))
    with_one = queries_of_a_scrape()
    for _ in range(4):
        import_run(csv_bytes(HEADER, "A,a.png,A", "X,missing.png,X"), batch_size=1)
    assert queries_of_a_scrape() == with_one <= 4
