"""The single-open-import lock under concurrent `create` calls: exactly one 201."""

import threading

import pytest
from django.db import connection

from imports.models import Import
from tests.conftest import client_with, token_for

from .conftest import body, url

CALLERS = 8


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_yield_exactly_one_201():
    token = token_for("racer")
    barrier = threading.Barrier(CALLERS)
    answers: list[tuple[int, dict]] = []

    def call() -> None:
        try:
            client = client_with(token)
            barrier.wait()
            response = client.post(url("imports", "create"))
            answers.append((response.status_code, body(response)))
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] + [409] * (CALLERS - 1)
    assert {data["code"] for status, data in answers if status == 409} == {"another_import_open"}
    assert Import.objects.filter(status="pending").count() == 1
