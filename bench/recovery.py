"""Seconds from a death to its batch queued again, with the service's own recovery settings.

    .venv/bin/python bench/recovery.py [--stacks embedded,postgres] [--rows 12000]

For each stack, an import of ROWS small scans in batches of 1,000 runs on bin/serve, and a
process holding a batch is SIGKILLed mid-import:
  - `process`: one process that runs batches (a solo worker of the embedded defaults, the other
    going on; a pool process of the Redis stack's prefork worker);
  - `worker`: a whole second worker (main process and pool), started beside bin/serve's.
It prints, for each, the seconds until the import's events say the work was queued again, and
until the import finished. A benchmark, not a test: it never fails on a number.
"""

import argparse
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from archive import archive_write, manifest_write
from procfs import children, role
from service import ROOT, base_env, fresh_data_dir, service_running, stack_env

BATCH_TASK = re.compile(r"Task imports\.tasks\.batch_run_task\[([0-9a-f-]+)\] (received|succeeded)")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12_000)
    parser.add_argument("--stacks", default="embedded", help="embedded, postgres, or both")
    parser.add_argument("--tmp-dir", type=Path, default=Path(tempfile.gettempdir()))
    return parser.parse_args()


def batch_held(log: str) -> bool:
    """Whether a worker holds a batch it has not finished."""
    states = dict(BATCH_TASK.findall(log))
    return "received" in states.values()


def ready(log: Path) -> str:
    """The names of the workers that said they are ready."""
    return " ".join(re.findall(r"(\S+@\S+) ready\.", log.read_text(errors="replace")))


def second_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen(
            [".venv/bin/celery", "-A", "imports", "worker", "--loglevel=INFO"]
            + (["--pool=solo"] if "CELERY_BROKER_URL" not in env else ["--concurrency=2"])
            + ["--hostname=second@%h"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def until(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not after {timeout_s} s")
        time.sleep(0.05)
    return found


def measure(stack: str, kill: str, manifest: Path, archive: Path, work: Path) -> dict:
    with stack_env(stack) as stack_vars, fresh_data_dir(work, f"recovery-{kill}") as data_dir:
        env = base_env(**stack_vars, IMPORT_SOURCE=str(archive))
        with service_running(data_dir, env) as service:
            extra = None
            if kill == "worker":
                extra = second_worker({**env, "DATA_DIR": str(data_dir)}, service.log_path)
                until(lambda: "second@" in ready(service.log_path), 60, "the second worker ready")
            try:
                options = b'{"batch_size": 1000}'
                json_type = {"Content-Type": "application/json"}
                job = service.request("POST", "/api/v1/imports/create", options, json_type)
                with manifest.open("rb") as body:
                    service.request("POST", job["upload_url"], body, {"Content-Type": "text/csv"})

                def mid_import() -> bool:
                    status = service.request("GET", job["status_url"])
                    return status["processed_rows"] > 0 and batch_held(service.log_path.read_text())

                until(mid_import, 120, "a batch held mid-import")
                if extra:
                    os.killpg(extra.pid, signal.SIGKILL)
                else:
                    workers = [pid for pid in children(service.pid) if role(pid) == "worker"]
                    pool = [child for worker in workers for child in children(worker)]
                    os.kill((pool or workers)[0], signal.SIGKILL)
                killed = time.monotonic()

                def recovered() -> dict | None:
                    status = service.request("GET", job["status_url"])
                    return status if status["events"] else None

                event = until(recovered, 300, "work queued again")["events"][0]
                queued_s = time.monotonic() - killed
                status = until(
                    lambda: (
                        (s := service.request("GET", job["status_url"]))["status"] != "active" and s
                    ),
                    300,
                    "import ended",
                )
                return {
                    "stack": stack,
                    "killed": kill,
                    "queued_again_s": round(queued_s, 1),
                    "ended_s": round(time.monotonic() - killed, 1),
                    "status": status["status"],
                    "imported": status["imported_rows"],
                    "event": event["detail"],
                }
            finally:
                if extra and extra.poll() is None:
                    os.killpg(extra.pid, signal.SIGTERM)
                    extra.wait(timeout=60)


def main() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory(prefix="bulk-import-recovery-", dir=args.tmp_dir) as tmp:
        work = Path(tmp)
        files = archive_write(work / "archive", min(args.rows, 2000), 2048)
        manifest = manifest_write(work / "manifest.csv", files, args.rows)
        print(f"{args.rows:,} rows in batches of 1,000; the service's recovery settings")
        for stack in [stack.strip() for stack in args.stacks.split(",")]:
            for kill in ("process", "worker"):
                print(measure(stack, kill, manifest, work / "archive", work), flush=True)


if __name__ == "__main__":
    main()
