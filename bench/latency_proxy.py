"""An HTTP proxy that waits before forwarding each request: S3 with a network's latency.

    python bench/latency_proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS

Listens on 127.0.0.1:LISTEN_PORT and forwards every request, after DELAY_MS, to
127.0.0.1:UPSTREAM_PORT (moto's server), keeping one upstream connection per thread.
"""

import http.client
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Headers that belong to one connection, or that this server writes itself.
SKIPPED = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


class LatencyProxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs: +40 ms
    upstream_port = 0
    delay_s = 0.0
    local = threading.local()

    def forward(self) -> None:
        time.sleep(self.delay_s)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in SKIPPED}
        if length:
            headers["Content-Length"] = str(length)
        status, reply_headers, data = self._upstream(headers, body)
        self.send_response(status)
        for name, value in reply_headers:
            if name.lower() not in SKIPPED:
                self.send_header(name, value)
        size = dict((k.lower(), v) for k, v in reply_headers).get("content-length", "0")
        self.send_header("Content-Length", size if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _upstream(self, headers: dict, body: bytes | None):
        for retry in (False, True):
            if retry or getattr(self.local, "connection", None) is None:
                self.local.connection = http.client.HTTPConnection("127.0.0.1", self.upstream_port)
            try:
                self.local.connection.request(self.command, self.path, body, headers)
                reply = self.local.connection.getresponse()
                return reply.status, reply.getheaders(), reply.read()
            except (http.client.HTTPException, OSError):
                self.local.connection.close()
                if retry:
                    raise
        raise AssertionError("unreachable")

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


if __name__ == "__main__":
    listen_port, LatencyProxy.upstream_port = int(sys.argv[1]), int(sys.argv[2])
    LatencyProxy.delay_s = int(sys.argv[3]) / 1000
    server = ThreadingHTTPServer(("127.0.0.1", listen_port), LatencyProxy)
    server.daemon_threads = True
    server.serve_forever()
