"""The service under measurement: bin/serve on a fresh DATA_DIR, driven over HTTP like curl.

A stack is the environment that picks the database and the broker: the embedded defaults (no
variable set), or PostgreSQL + Redis, where each service gets a database of its own (created
here, dropped after) and a Celery queue of its own (its keys deleted after).
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from procfs import MemorySampler, children, cpu_seconds, descendants, role

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
# Inherited variables that would change what is measured; each run sets its own.
STACK_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_DEFAULT_QUEUE",
    "STORAGE_BUCKET",
    "STORAGE_PREFIX",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_S3_REGION_NAME",
    "AWS_S3_ENDPOINT_URL",
    "AWS_S3_ADDRESSING_STYLE",
    "DATA_DIR",
    "PORT",
    "WORKER_CONCURRENCY",
)
ENDED = ("finished", "error", "cancelled")
WORKER_READY = re.compile(r"\S+@\S+ ready\.")
TASK_DONE = re.compile(r"Task imports\.tasks\.(\w+)\[[^\]]+\] succeeded in ([0-9.]+)s")


def base_env(**settings: str) -> dict[str, str]:
    """os.environ without the stack's and the service's own settings, plus `settings`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in STACK_VARIABLES and not name.startswith("IMPORT_")
    }
    return {**env, "DJANGO_SETTINGS_MODULE": "imports.settings", **settings}


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(PYTHON), "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


@contextmanager
def fresh_data_dir(parent: Path, name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=parent) as folder:
        yield Path(folder)


@contextmanager
def postgres_database(database_url: str) -> Iterator[str]:
    """A new database beside DATABASE_URL's, dropped at the end; yields its URL."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    admin_url = parts.geturl()
    name = f"{parts.path.lstrip('/') or 'bulk_import'}_bench_{uuid.uuid4().hex[:8]}"[:63]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                sql.Identifier(name)
            )
        )
    try:
        yield parts._replace(path=f"/{name}").geturl()
    finally:
        _database_drop(admin_url, name)


def _database_drop(admin_url: str, name: str, tries: int = 30) -> None:
    """Drop a database, waiting out an autovacuum worker on it.

    WITH (FORCE) cannot end an autovacuum worker's session unless one is superuser (PostgreSQL
    15 answers "must be a member of the role whose process is being terminated"); it ends soon.
    """
    import psycopg
    from psycopg import errors, sql

    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    for attempt in range(tries):
        try:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(drop)
            return
        except (errors.InsufficientPrivilege, errors.ObjectInUse):
            if attempt == tries - 1:
                raise
            time.sleep(1)


@contextmanager
def redis_queue(broker_url: str) -> Iterator[str]:
    """A Celery queue name of this run's own; its keys are deleted at the end."""
    import redis

    queue = f"bulk-import-bench-{uuid.uuid4().hex[:8]}"
    try:
        yield queue
    finally:
        with redis.Redis.from_url(broker_url) as client:
            if keys := list(client.scan_iter(match=f"*{queue}*")):
                client.delete(*keys)


@contextmanager
def stack_env(stack: str) -> Iterator[dict[str, str]]:
    """The variables of `stack`: `embedded` (none) or `postgres` (a fresh database and queue)."""
    if stack == "embedded":
        yield {}
        return
    broker_url = os.environ["CELERY_BROKER_URL"]
    with (
        postgres_database(os.environ["DATABASE_URL"]) as database_url,
        redis_queue(broker_url) as queue,
    ):
        yield {
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
        }


@dataclass
class Service:
    base_url: str
    token: str
    pid: int  # bin/serve's; the web server and the Celery worker are its children
    log_path: Path

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> dict:
        url = path if path.startswith("http") else self.base_url + path
        headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=600) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{method} {url}: {error.code} {error.read()[:500]!r}") from error

    def import_run(
        self, manifest: Path, options: dict, *, timeout_s: float, poll_s: float = 0.2
    ) -> dict:
        """Create an import, upload `manifest`, poll until it ends; times and peak memory."""
        idle = MemorySampler(self.pid)
        idle.sample()
        cpu_before = cpu_seconds(self.pid)
        sampler = MemorySampler(self.pid).start()
        try:
            created_at = time.monotonic()
            job = self.request(
                "POST",
                "/api/v1/imports/create",
                json.dumps(options).encode(),
                {"Content-Type": "application/json"},
            )
            upload_at = time.monotonic()
            with manifest.open("rb") as body:
                headers = {
                    "Content-Type": "text/csv",
                    "Content-Length": str(manifest.stat().st_size),
                }
                self.request("POST", job["upload_url"], body, headers)
            uploaded_at = time.monotonic()
            status, phases = self._wait_ended(job["status_url"], upload_at, timeout_s, poll_s)
            ended_at = time.monotonic()
        finally:
            peaks = sampler.stop()
        cpu_after = cpu_seconds(self.pid)
        return {
            "status": status["status"],
            "error": status.get("error", ""),
            "rows": status["processed_rows"],
            "failed_rows": status["failed_rows"],
            "create_to_finished_s": ended_at - created_at,
            "upload_s": uploaded_at - upload_at,
            "upload_to_finished_s": ended_at - upload_at,
            "server_started_to_finished_s": _between(status["started_at"], status["finished_at"]),
            "server_rows_per_s": status.get("rows_per_second"),
            "phase_seen_at_s": phases,
            "cpu_s": {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after},
            "idle_rss_mib": dict(idle.peaks.rss),
            "idle_pss_mib": idle.peaks.pss_total,
            "peak_rss_mib": dict(peaks.rss),
            "peak_pss_mib": peaks.pss_total,
            "hwm_sum_mib": peaks.hwm_total,
            "memory_samples": peaks.samples,
            # [seconds after the upload began, PSS, workers' RSS, web's RSS], about every second
            "memory_series": [
                [round(at - upload_at, 1), round(pss, 1), round(worker, 1), round(web, 1)]
                for at, pss, worker, web in peaks.series
            ],
        }

    def _wait_ended(
        self, status_url: str, upload_at: float, timeout_s: float, poll_s: float
    ) -> tuple[dict, dict[str, float]]:
        """The final status, and when (seconds after the upload began) each phase was seen."""
        phases: dict[str, float] = {}
        while True:
            status = self.request("GET", status_url)
            phases.setdefault(status["phase"] or status["status"], time.monotonic() - upload_at)
            if status["status"] in ENDED:
                return status, phases
            if time.monotonic() > upload_at + timeout_s:
                status["status"] = f"timed out ({status['status']})"
                return status, phases
            time.sleep(poll_s)


def task_seconds(log: str) -> dict[str, dict]:
    """Per Celery task name: how many ran, and their total and longest seconds (worker's log)."""
    tasks: dict[str, dict] = {}
    for name, seconds in TASK_DONE.findall(log):
        task = tasks.setdefault(name, {"count": 0, "total_s": 0.0, "max_s": 0.0})
        task["count"] += 1
        task["total_s"] += float(seconds)
        task["max_s"] = max(task["max_s"], float(seconds))
    return tasks


def _between(start: str | None, end: str | None) -> float | None:
    if not (start and end):
        return None
    iso = datetime.fromisoformat
    return (iso(end.replace("Z", "+00:00")) - iso(start.replace("Z", "+00:00"))).total_seconds()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def service_running(data_dir: Path, env: dict[str, str]) -> Iterator[Service]:
    """bin/serve on `data_dir` with `env`, migrated and with a token; stopped by its pid."""
    port = _free_port()
    env = {**env, "DATA_DIR": str(data_dir), "PORT": str(port)}
    manage(env, "migrate", "--noinput")
    token = manage(env, "create_import_token", "bench").strip().splitlines()[-1].split()[-1]
    log_path = data_dir / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["bin/serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            service = Service(f"http://127.0.0.1:{port}", token, process.pid, log_path)
            _wait_up(service, process)
            yield service
        finally:
            process_stop(process)


def _wait_up(service: Service, process: subprocess.Popen, timeout_s: float = 60) -> None:
    """Until the web answers and every worker says it is ready, then a second to settle."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bin/serve exited:\n{service.log_path.read_text()[-3000:]}")
        ready = len(WORKER_READY.findall(service.log_path.read_text(errors="replace")))
        workers = sum(role(pid) == "worker" for pid in children(process.pid))
        if _answers(service.base_url + "/api/v1/schema/") and workers and ready >= workers:
            time.sleep(1)
            return
        time.sleep(0.2)
    raise RuntimeError(f"bin/serve not up after {timeout_s}s")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


def process_stop(process: subprocess.Popen, timeout_s: float = 40) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL to it and every process below it if it lingers.

    bin/serve ends its children within STOP_TIMEOUT + 2 seconds (32 by default) on its own;
    each child runs in a process group of its own, so killing bin/serve's group alone could
    leave them behind: they are found by their parent and killed by pid.
    """
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        print(f"  pid {process.pid} did not stop in {timeout_s}s: killed", file=sys.stderr)
        below = descendants(process.pid)
        os.killpg(process.pid, signal.SIGKILL)  # its own session: only what it started
        for pid in below:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
