"""moto's S3 server for tests: a real S3 HTTP endpoint on 127.0.0.1, and a client of it."""

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto.server import ThreadedMotoServer


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto's server on a free port (on 127.0.0.1: it binds to 0.0.0.0 unless told)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._server.server_port}"
    finally:
        server.stop()


def s3_client(endpoint: str, key_id: str, secret: str, region: str):
    """A client of the test's own, for arranging buckets and looking into them."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=region,
    )
