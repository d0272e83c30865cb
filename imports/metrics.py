"""Prometheus metrics at /metrics, read from the database at each scrape.

Every figure is counted from the database when Prometheus asks, never kept in a process: the
batches of one import are committed by any number of worker processes on any number of
machines, and whichever web process answers sees them all. Hence a collector of its own in a
registry of its own (not the process-wide one, and no multiprocess mode).

The import figures are per import (label `import`, its uuid): a counter over every import
would fall each time the upkeep deletes imports past IMPORT_RETENTION_DAYS, which Prometheus
reads as a reset. The series are as many as the imports kept, one open at a time.

A scrape makes a fixed number of queries however many imports and batches there are: each
table is read once, grouped by import, and the rest is worked out here.
"""

import hmac
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from rest_framework.exceptions import MethodNotAllowed

from .errors import MetricsNotAuthenticated
from .models import Batch, EventKind, Import, ImportEvent, ImportPhase, ImportStatus
from .selectors import imports_expire_pending

# Upper bounds of the batch-duration buckets, in seconds: a batch of small scans on local disks
# commits in a fraction of a second, one of large files on S3 in minutes.
BATCH_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

# The steps of an active import, each with a series even when none is at it.
ACTIVE_PHASES = [phase for phase in ImportPhase.values if phase]

IMPORT_FIELDS = (
    "uuid",
    "status",
    "phase",
    "dry_run",
    "total_rows",
    "processed_rows",
    "imported_rows",
    "skipped_rows",
    "failed_rows",
    "recovered_batches",
    "heartbeat_at",
)


def _batches_by_import() -> dict:
    """Per import: its batches, those committed, the oldest not yet committed, and the
    duration histogram of those committed (cumulative counts per bucket, their sum)."""
    timed = Q(duration_seconds__isnull=False)
    buckets = {
        f"le_{n}": Count("pk", filter=Q(duration_seconds__lte=bound))
        for n, bound in enumerate(BATCH_DURATION_BUCKETS)
    }
    rows = (
        Batch.objects.order_by()  # the model's ordering would split the groups
        .values("import_job_id")
        .annotate(
            batches=Count("pk"),
            committed=Count("pk", filter=Q(committed_at__isnull=False)),
            oldest_uncommitted=Min("created_at", filter=Q(committed_at__isnull=True)),
            # Batches committed before their duration was recorded (0008) have none.
            timed=Count("pk", filter=timed),
            seconds=Sum("duration_seconds", filter=timed),
            **buckets,
        )
    )
    return {row["import_job_id"]: row for row in rows}


def _events_by_import() -> Counter:
    """How many events of each kind each import has, keyed by (import, kind).

    Events are only ever added (and deleted with their import), so counts from them never fall;
    Batch.requeues does, when a resume gives a batch its tries again.
    """
    rows = ImportEvent.objects.order_by().values("import_job_id", "kind").annotate(n=Count("pk"))
    return Counter({(row["import_job_id"], row["kind"]): row["n"] for row in rows})


class ImportsCollector(Collector):
    """Yields every metric, read from the database at the time of the scrape."""

    def collect(self) -> Iterator[Metric]:
        imports_expire_pending()  # as every read of imports does, so the figures match the API's
        now = timezone.now()
        imports = list(Import.objects.order_by().values(*IMPORT_FIELDS))
        batches = _batches_by_import()
        events = _events_by_import()
        yield from _service_wide(imports)
        yield from _rows(imports)
        yield from _batches(imports, batches)
        yield from _recovery(imports, events)
        yield from _active(imports, batches, now)


def _service_wide(imports: list[dict]) -> Iterator[Metric]:
    statuses = Counter(job["status"] for job in imports)
    by_status = GaugeMetricFamily(
        "bulk_import_imports",
        "Imports kept (those past IMPORT_RETENTION_DAYS are deleted), by status.",
        labels=["status"],
    )
    for status in ImportStatus.values:
        by_status.add_metric([status], statuses[status])
    yield by_status
    phases = Counter(job["phase"] for job in imports if job["status"] == ImportStatus.ACTIVE)
    active = GaugeMetricFamily(
        "bulk_import_active_imports",
        "Active imports, by the step they are at: counting, importing, reporting or rolling_back. "
        "At most one import is open at a time.",
        labels=["phase"],
    )
    for phase in ACTIVE_PHASES:
        active.add_metric([phase], phases[phase])
    yield active


def _rows(imports: list[dict]) -> Iterator[Metric]:
    rows = CounterMetricFamily(
        "bulk_import_rows",
        "Manifest rows committed, by outcome: imported, skipped or failed; a dry run's rows that "
        "would be imported are `valid`.",
        labels=["import", "outcome"],
    )
    processed = CounterMetricFamily(
        "bulk_import_rows_processed",
        "Manifest rows committed, whatever their outcome.",
        labels=["import"],
    )
    total = GaugeMetricFamily(
        "bulk_import_manifest_rows",
        "Rows in the import's manifest, once counted.",
        labels=["import"],
    )
    for job in imports:
        uuid = str(job["uuid"])
        # A dry run's imported_rows counts the rows that would be imported (batches._counters_add).
        rows.add_metric([uuid, "valid" if job["dry_run"] else "imported"], job["imported_rows"])
        rows.add_metric([uuid, "skipped"], job["skipped_rows"])
        rows.add_metric([uuid, "failed"], job["failed_rows"])
        processed.add_metric([uuid], job["processed_rows"])
        if job["total_rows"] is not None:
            total.add_metric([uuid], job["total_rows"])
    yield from (rows, processed, total)


def _batches(imports: list[dict], batches: dict) -> Iterator[Metric]:
    made = GaugeMetricFamily(
        "bulk_import_batches",
        "Batches the import's rows were split into.",
        labels=["import"],
    )
    committed = CounterMetricFamily(
        "bulk_import_batches_committed",
        "Batches of the import committed.",
        labels=["import"],
    )
    durations = HistogramMetricFamily(
        "bulk_import_batch_duration_seconds",
        "How long each committed batch took, from the start of the attempt that committed it to "
        "its commit.",
        labels=["import"],
    )
    bounds = [floatToGoString(bound) for bound in BATCH_DURATION_BUCKETS]
    for job in imports:
        uuid = job["uuid"]
        figures = batches.get(uuid, {})
        made.add_metric([str(uuid)], figures.get("batches", 0))
        committed.add_metric([str(uuid)], figures.get("committed", 0))
        counts = [figures.get(f"le_{n}", 0) for n in range(len(bounds))]
        durations.add_metric(
            [str(uuid)],
            buckets=[*zip(bounds, counts, strict=True), ("+Inf", figures.get("timed", 0))],
            sum_value=figures.get("seconds") or 0.0,
        )
    yield from (made, committed, durations)


def _recovery(imports: list[dict], events: Counter) -> Iterator[Metric]:
    lost = CounterMetricFamily(
        "bulk_import_batches_lost",
        "Attempts at a batch of the import that were lost before they committed: the worker "
        "stopped reporting for IMPORT_BATCH_LOST_AFTER seconds or its process died. Each is "
        "queued again (bulk_import_batches_recovered_total), unless its batch was lost more than "
        "IMPORT_BATCH_MAX_REQUEUES times, which ends the import in error.",
        labels=["import"],
    )
    recovered = CounterMetricFamily(
        "bulk_import_batches_recovered",
        "Lost batches of the import that were queued again to run.",
        labels=["import"],
    )
    stalls = CounterMetricFamily(
        "bulk_import_stalls",
        "Times the whole import stopped reporting for IMPORT_BATCH_LOST_AFTER seconds with "
        "nothing running, and its step (count, batches, report or rollback) was queued again.",
        labels=["import"],
    )
    for job in imports:
        uuid = job["uuid"]
        lost.add_metric(
            [str(uuid)], events[uuid, EventKind.BATCH_LOST] + events[uuid, EventKind.GAVE_UP]
        )
        recovered.add_metric([str(uuid)], job["recovered_batches"])
        stalls.add_metric([str(uuid)], events[uuid, EventKind.IMPORT_STALLED])
    yield from (lost, recovered, stalls)


def _active(imports: list[dict], batches: dict, now: datetime) -> Iterator[Metric]:
    heartbeat = GaugeMetricFamily(
        "bulk_import_heartbeat_age_seconds",
        "Seconds since the active import's work last reported (a batch, its count, its report or "
        "its rollback beats every IMPORT_HEARTBEAT_SECONDS while it runs).",
        labels=["import", "phase"],
    )
    oldest = GaugeMetricFamily(
        "bulk_import_oldest_uncommitted_batch_age_seconds",
        "Seconds since the count made the oldest batch the importing import has not committed "
        "yet: how long the batches have been waiting or running.",
        labels=["import"],
    )
    for job in imports:
        if job["status"] != ImportStatus.ACTIVE:
            continue
        uuid = job["uuid"]
        if job["heartbeat_at"]:
            heartbeat.add_metric([str(uuid), job["phase"]], _age(job["heartbeat_at"], now))
        made = batches.get(uuid, {}).get("oldest_uncommitted")
        if job["phase"] == ImportPhase.IMPORTING and made:
            oldest.add_metric([str(uuid)], _age(made, now))
    yield from (heartbeat, oldest)


def _age(then: datetime, now: datetime) -> float:
    return max((now - then).total_seconds(), 0.0)


registry = CollectorRegistry(auto_describe=False)
registry.register(ImportsCollector())


def _authorized(request: HttpRequest) -> bool:
    """Whether the request may read the metrics: no METRICS_TOKEN set, or that token sent."""
    token = settings.METRICS_TOKEN
    if not token:
        return True
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


@csrf_exempt  # read-only, and a scraper sends no cookie; other methods get a 405, not a 403
def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        refused = MethodNotAllowed(request.method)
        body = {"code": refused.default_code, "detail": refused.detail}
        response = JsonResponse(body, status=405)
        response["Allow"] = "GET, HEAD"
        return response
    if not _authorized(request):
        refused = MetricsNotAuthenticated()
        response = JsonResponse({"code": refused.code, "detail": refused.detail}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    if request.method == "HEAD":
        return HttpResponse(content_type=content_type)
    return HttpResponse(encoder(registry), content_type=content_type)
