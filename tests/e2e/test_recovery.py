"""Self-healing with real processes: the worker, or the whole service, SIGKILLed mid-import.

Once bin/serve runs again on the same DATA_DIR (and database, queue and bucket), the import
finishes with no API call: Celery beat's recovery task finds the batches that stopped beating
and queues them again, and every row ends exactly once.
"""

import os
import re
import signal
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .conftest import Service, _service_running, _stack_env, service_running, wait_until
from .processes import children, command_line, group_members, stat_fields
from .test_server import RECOVERY
from .test_workers import ROWS, archive, assert_every_row_once, started

# From the restart: the service's start, the loss noticed (LOST_AFTER + RECOVER_EVERY), and the
# rest of the import, with room for a busy machine.
FINISHED_WITHIN_S = 120


def workers(service: Service) -> list[int]:
    """bin/serve's workers: each one's main process."""
    return [pid for pid in children(service.pid) if " worker " in command_line(pid)]


def worker_groups(service: Service) -> list[int]:
    """The process groups of bin/serve's workers: each worker's main process and its pool."""
    return [os.getpgid(pid) for pid in workers(service)]


def task_processes(service: Service) -> list[int]:
    """The processes that run tasks, once every worker is ready: a prefork worker's pool
    processes, or the solo workers themselves (the embedded defaults' layout, bin/serve)."""
    mains = workers(service)
    wait_until(
        lambda: len(re.findall(r"\S+@\S+ ready\.", service.log())) == len(mains),
        timeout_s=60,
        what="every worker ready",
    )
    return [pool for main in mains for pool in children(main)] or mains


BATCH_TASK = re.compile(r"Task imports\.tasks\.batch_run_task\[([0-9a-f-]+)\] (received|succeeded)")


def batches_in_flight(log: str) -> set[str]:
    """The batch tasks the worker has taken (a message it holds) and not yet run to the end."""
    taken, done = set(), set()
    for task_id, what in BATCH_TASK.findall(log):
        (taken if what == "received" else done).add(task_id)
    return taken - done


def mid_import(service: Service, job: dict) -> None:
    """Wait until some batches have committed and the worker holds another."""

    def some_committed_one_held():
        status = service.request("GET", job["status_url"]).json()
        return 0 < status["processed_rows"] < ROWS and batches_in_flight(service.log())

    wait_until(some_committed_one_held, timeout_s=60, what="a batch held mid-import")


def wchan(pid: int) -> str:
    """Where in the kernel the process waits."""
    return Path(f"/proc/{pid}/wchan").read_text()


def kill_worker(service: Service) -> None:
    """Every worker, main process and pool: what an OOM kill of a worker's main process, a
    lost machine or an evicted container does."""
    for group in worker_groups(service):
        os.killpg(group, signal.SIGKILL)


def kill_everything(service: Service) -> None:
    """What a machine that loses power does to the service: every process dies at once."""
    groups = [os.getpgid(pid) for pid in children(service.pid)]
    os.kill(service.pid, signal.SIGKILL)
    for group in groups:
        os.killpg(group, signal.SIGKILL)
    wait_until(
        lambda: not any(group_members(group) for group in groups),
        timeout_s=10,
        what="every process of the service gone",
    )


def stopped(service: Service) -> None:
    """Wait until bin/serve has ended (it stops the rest once its worker dies)."""

    def ended() -> bool:
        try:
            os.kill(service.pid, 0)
        except ProcessLookupError:
            return True
        return stat_fields(service.pid)[0] == "Z"  # a child of the test: ended, not reaped

    wait_until(ended, timeout_s=60, what="bin/serve stopped")


@pytest.mark.parametrize("kill", [kill_worker, kill_everything], ids=["worker", "everything"])
def test_a_service_killed_mid_import_finishes_it_once_it_runs_again_with_no_call(tmp_path, kill):
    data_dir = tmp_path / "service"
    data_dir.mkdir()
    with ExitStack() as stack:
        stack_env = _stack_env(stack)
        # given an import of many small batches, some of them committed
        with service_running(data_dir, stack_env, RECOVERY) as service:
            job = started(service, archive(service, "healed"), batch_size=300)
            mid_import(service, job)
            # when the worker (main and pool), or every process, is SIGKILLed
            kill(service)
            killed_at = time.time()
            stopped(service)
        # and bin/serve starts again on the same data (on another port), with no API call but
        # status reads
        status_path = urlsplit(job["status_url"]).path
        with service_running(data_dir, stack_env, RECOVERY) as service:
            status = service.request("GET", status_path).json()
            assert status["status"] == "active" and status["processed_rows"] < ROWS, status
            status = service.wait_ended(status_path, timeout_s=FINISHED_WITHIN_S)
            # then it finished, every row exactly once, no stray copy left in storage
            assert_every_row_once(service, status, "healed")
            # and it says what recovery did: batches that stopped beating queued again, or (when
            # the worker died between two batches, holding only messages) the whole import
            events = status["events"]
            assert events, "nothing was recovered"
            lost = [event for event in events if event["kind"] == "batch_lost"]
            assert status["recovered_batches"] == len(lost), events
            assert {event["kind"] for event in events} <= {"batch_lost", "import_stalled"}
            requeued_after_s = datetime.fromisoformat(events[0]["at"]).timestamp() - killed_at
            print(
                f"\n{kill.__name__}: work queued again {requeued_after_s:.1f} s after the kill "
                f"(restart included): {[event['detail'] for event in events]}",
                file=sys.stderr,
            )


@pytest.fixture
def healing_service(tmp_path):
    """A service of its own (a test kills some of its processes), recovering within seconds."""
    with ExitStack() as stack:
        yield from _service_running(tmp_path / "service", _stack_env(stack), RECOVERY)


def test_a_process_that_runs_tasks_killed_while_idle_stalls_nothing(healing_service):
    service = healing_service
    # given an idle service
    # when one of the processes that run tasks is killed while it waits for work; of a pool's,
    # the one reading the pool's queue, which holds the queue's lock as it waits (the stall of
    # billiard's blocking pool on the filesystem broker)
    waiting = sorted(task_processes(service), key=lambda pid: "pipe_read" not in wchan(pid))
    os.kill(waiting[0], signal.SIGKILL)
    # then an import still runs to its end
    job = started(service, archive(service, "after-idle-kill"), batch_size=500)
    status = service.wait_ended(job["status_url"], timeout_s=FINISHED_WITHIN_S)
    assert_every_row_once(service, status, "after-idle-kill")


def test_a_process_that_runs_tasks_killed_mid_batch_leaves_the_import_to_finish(healing_service):
    service = healing_service
    # given an import whose batches are being worked on
    job = started(service, archive(service, "kill-one"), batch_size=300)
    mid_import(service, job)
    # when one of the processes that run tasks is killed, as the kernel's OOM killer would
    os.kill(task_processes(service)[0], signal.SIGKILL)
    # then the import finishes, with no call and no restart, every row exactly once
    status = service.wait_ended(job["status_url"], timeout_s=FINISHED_WITHIN_S)
    assert_every_row_once(service, status, "kill-one")
