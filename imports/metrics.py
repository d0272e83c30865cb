"""Prometheus metrics at /metrics (issue 13: filled in by its metrics work)."""

from django.http import HttpRequest, HttpResponse


def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"", content_type="text/plain; version=0.0.4")
