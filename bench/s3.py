"""An S3 source with latency: moto's server behind latency_proxy.py, the archive uploaded to it."""

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

from service import PYTHON, ROOT, _free_port, process_stop

BUCKET = "bench-source"
PREFIX = "archive"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_S3_REGION_NAME": "us-east-1",
}


def _started(stack: ExitStack, args: list[str], log: Path) -> subprocess.Popen:
    out = stack.enter_context(log.open("w"))
    process = subprocess.Popen(
        args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    stack.callback(process_stop, process, 10)
    return process


def _wait_listening(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def s3_source(archive: Path, paths: list[str], delay_ms: int, logs: Path) -> Iterator[dict]:
    """Upload `paths` of the archive to moto; yield the service's variables to read them
    through the delaying proxy. Both servers are stopped, by their pids, at the end."""
    import boto3

    with ExitStack() as stack:
        moto_port, proxy_port = _free_port(), _free_port()
        moto = ROOT / ".venv" / "bin" / "moto_server"
        _started(stack, [str(moto), "-H", "127.0.0.1", "-p", str(moto_port)], logs / "moto.log")
        proxy = [
            str(PYTHON),
            str(ROOT / "bench" / "latency_proxy.py"),
            str(proxy_port),
            str(moto_port),
            str(delay_ms),
        ]
        _started(stack, proxy, logs / "proxy.log")
        _wait_listening(f"http://127.0.0.1:{moto_port}/")
        _wait_listening(f"http://127.0.0.1:{proxy_port}/")
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{moto_port}",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_S3_REGION_NAME"],
        )
        client.create_bucket(Bucket=BUCKET)

        def upload(path: str) -> None:
            client.upload_file(str(archive / path), BUCKET, f"{PREFIX}/{path}")

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(upload, paths))
        yield {
            **CREDENTIALS,
            "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy_port}",
            "IMPORT_SOURCE": f"s3://{BUCKET}/{PREFIX}",
        }
