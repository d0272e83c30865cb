"""Waiting in tests: polling with a deadline (never a bare sleep), and threads run at once."""

import threading
import time
from collections.abc import Callable

from django.db import connection


def wait_until(
    check: Callable[[], object], *, timeout_s: float = 60.0, what: str = "", every_s: float = 0.1
) -> object:
    """Poll `check` until it returns something truthy; fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what or 'condition'} not true after {timeout_s}s"
        time.sleep(every_s)
    return result


def on_threads(target: Callable[[], None], count: int) -> list[BaseException]:
    """Run `target` on `count` threads, each with its own database connection (closed after);
    what they raised."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as error:  # for the caller to assert on
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures
