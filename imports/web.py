"""The web server: waitress serving the API, `python -m imports.web` (bin/serve runs it).

Why waitress: its event loop reads each request whole, headers and body (a body over
`inbuf_overflow` spills to a temporary file), before a worker thread sees it. A client sending
a header line a second holds a socket, not one of the threads, so dozens of slow clients do not
keep the others waiting. It de-chunks `Transfer-Encoding: chunked` bodies and sets
CONTENT_LENGTH (the upload relies on it), and never hands on a request whose body was cut short.

What it adds to waitress: its own refusals (a malformed request line, `Content-Length: 12x`,
headers or body over the limits) answer the API's JSON `{"code", "detail"}` instead of
waitress's text page; a client still sending its headers after WEB_HEADER_TIMEOUT seconds is
closed; one access line per request; SIGTERM and SIGINT stop it cleanly: the listener closes
at once, requests in flight get WEB_STOP_GRACE seconds to finish, idle connections are closed.

Variables (docs/configuration.md): PORT, WEB_HOST, WEB_THREADS, WEB_CONNECTION_LIMIT,
WEB_CHANNEL_TIMEOUT, WEB_HEADER_TIMEOUT, WEB_STOP_GRACE, WEB_TRUSTED_PROXY.
"""

import json
import logging
import os
import resource
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass

from waitress import utilities, wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

log = logging.getLogger("imports.web")

MAX_HEADER_BYTES = 64 * 1024
POLL_TIMEOUT_S = 0.5  # how soon the loop notices a stop signal


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 8
    connection_limit: int = 1000
    channel_timeout_s: int = 60  # an open connection silent this long is closed
    header_timeout_s: int = 30  # a request's headers must all arrive within this
    stop_grace_s: float = 20.0
    trusted_proxy: str = ""  # the proxy's address: its X-Forwarded-For/-Proto are believed

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> "Config":
        defaults = cls()
        return cls(
            host=env.get("WEB_HOST", defaults.host),
            port=int(env.get("PORT", defaults.port)),
            threads=int(env.get("WEB_THREADS", defaults.threads)),
            connection_limit=int(env.get("WEB_CONNECTION_LIMIT", defaults.connection_limit)),
            channel_timeout_s=int(env.get("WEB_CHANNEL_TIMEOUT", defaults.channel_timeout_s)),
            header_timeout_s=int(env.get("WEB_HEADER_TIMEOUT", defaults.header_timeout_s)),
            stop_grace_s=float(env.get("WEB_STOP_GRACE", defaults.stop_grace_s)),
            trusted_proxy=env.get("WEB_TRUSTED_PROXY", defaults.trusted_proxy),
        )


# waitress's refusals, in the API's words. Its own messages may quote the request back and
# name waitress; none of that reaches the client.
BAD_REQUEST_DETAILS = {
    "Content-Length is invalid": (
        "content_length_invalid",
        "The Content-Length header must be one whole number of bytes.",
    ),
    "Chunk not properly terminated": (
        "chunked_body_invalid",
        "The chunked body is malformed: a chunk does not end where its size says.",
    ),
    "Invalid chunk size": (
        "chunked_body_invalid",
        "The chunked body is malformed: a chunk size is not a hexadecimal number.",
    ),
    "Invalid chunk extension": (
        "chunked_body_invalid",
        "The chunked body is malformed: a chunk extension is not valid.",
    ),
}


def refusal(error: utilities.Error, max_body_bytes: int) -> tuple[int, str, str]:
    """The status, code and detail of the JSON answer for one of waitress's errors."""
    if isinstance(error, utilities.RequestHeaderFieldsTooLarge):
        return (
            431,
            "headers_too_large",
            f"The request's headers are larger than {MAX_HEADER_BYTES // 1024} KiB.",
        )
    if isinstance(error, utilities.RequestEntityTooLarge):
        return (
            413,
            "request_too_large",
            f"The request body is larger than {max_body_bytes} bytes, the most this server "
            "accepts.",
        )
    if isinstance(error, utilities.ServerNotImplemented):
        return (
            501,
            "transfer_encoding_not_supported",
            "The request's Transfer-Encoding is not supported: send the body with a "
            "Content-Length, or chunked.",
        )
    if isinstance(error, utilities.BadRequest):
        code, detail = BAD_REQUEST_DETAILS.get(
            error.body,
            (
                "request_malformed",
                "The request is not valid HTTP/1.1: its request line or a header is malformed.",
            ),
        )
        return 400, code, detail
    return 500, "server_error", "The server failed; the error was logged."


class JsonErrorTask(ErrorTask):
    """waitress's answer to a request it refused, as JSON; it closes the connection after."""

    def execute(self) -> None:
        status, code, detail = refusal(self.request.error, self.channel.adj.max_request_body_size)
        body = json.dumps({"code": code, "detail": detail}).encode()
        self.status = f"{status} {self.request.error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)
        log.info('%s "%s" %d %s', self.channel.addr[0], request_line(self.request), status, code)


class TimedParser(HTTPRequestParser):
    """A request being read, and when its first byte came."""

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.started = time.monotonic()


class Channel(HTTPChannel):
    error_task_class = JsonErrorTask
    parser_class = TimedParser

    def busy(self) -> bool:
        """A request dispatched or being answered, or a body being received."""
        receiving_body = self.request is not None and self.request.headers_finished
        return bool(self.requests or self.total_outbufs_len or receiving_body)


class Server(TcpWSGIServer):
    channel_class = Channel
    header_timeout_s = 30

    def maintenance(self, now: float) -> None:
        """Close idle connections (waitress's channel_timeout) and, beyond waitress, those
        whose request headers are still arriving after header_timeout_s: a client sending a
        header line every few seconds is never idle, and would keep its socket forever."""
        super().maintenance(now)
        cutoff = time.monotonic() - self.header_timeout_s
        for channel in list(self.active_channels.values()):
            request = channel.request
            if request is not None and not request.headers_finished and request.started < cutoff:
                channel.will_close = True

    def channels(self) -> list[Channel]:
        return list(self.active_channels.values())


def request_line(request: HTTPRequestParser) -> str:
    """What of the request line was read; a refused request may lack any part of it."""
    query = getattr(request, "query", "")
    path = getattr(request, "path", "") + (f"?{query}" if query else "")
    return f"{getattr(request, 'command', None) or '-'} {path or '-'} HTTP/{request.version}"


def with_access_log(application):
    """One line per request: client, request line, status, seconds to the response's start.
    Logged when the response starts, so that file downloads keep waitress's file wrapper."""

    def logged(environ, start_response):
        began = time.monotonic()

        def start(status, headers, exc_info=None):
            query = f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else ""
            log.info(
                '%s "%s %s%s %s" %s %.3fs',
                environ.get("REMOTE_ADDR", "-"),
                environ["REQUEST_METHOD"],
                environ.get("PATH_INFO", ""),
                query,
                environ.get("SERVER_PROTOCOL", ""),
                status.split(" ", 1)[0],
                time.monotonic() - began,
            )
            return start_response(status, headers, exc_info)

        return application(environ, start)

    return logged


def adjustments(config: Config, max_body_bytes: int) -> Adjustments:
    options = {
        "host": config.host,
        "port": config.port,
        "threads": config.threads,
        "connection_limit": config.connection_limit,
        "channel_timeout": config.channel_timeout_s,
        "cleanup_interval": 5,  # how often maintenance() looks for connections to close
        "max_request_header_size": MAX_HEADER_BYTES,
        "max_request_body_size": max_body_bytes,
        # poll(), not select(): select() fails on descriptors numbered 1024 and above.
        "asyncore_use_poll": True,
        "ident": "bulk-import",
    }
    if config.trusted_proxy:
        options |= {
            "trusted_proxy": config.trusted_proxy,
            "trusted_proxy_headers": "x-forwarded-for x-forwarded-proto x-forwarded-host",
            "clear_untrusted_proxy_headers": True,
        }
    return Adjustments(**options)


def allow_open_files(wanted: int) -> None:
    """Raise this process's limit on open files (each connection is one) up to `wanted`, as
    far as the hard limit allows: 1024, a common default, is below the connection limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, ceiling), hard))


def make_server(config: Config) -> Server:
    from .wsgi import application  # sets Django up: what follows needs its settings and models

    allow_open_files(config.connection_limit + 64)
    from django.conf import settings

    from .api.uploads import MULTIPART_ROOM_BYTES

    # The upload view itself answers 413 manifest_too_large for a manifest over the limit.
    max_body = settings.IMPORT_MAX_MANIFEST_BYTES + MULTIPART_ROOM_BYTES
    server = Server(with_access_log(application), adj=adjustments(config, max_body))
    server.header_timeout_s = config.header_timeout_s
    return server


class StopRequested:
    """Set by SIGTERM or SIGINT; the loop looks at it every POLL_TIMEOUT_S."""

    def __init__(self) -> None:
        self.signal = 0

    def __call__(self, signum: int, frame) -> None:
        self.signal = signum


def drain(server: Server, grace_s: float) -> None:
    """Stop listening, let requests in flight finish within grace_s, close everything."""
    wasyncore.dispatcher.close(server)  # the listening socket alone; the loop runs on
    deadline = time.monotonic() + grace_s
    while True:
        busy = [channel for channel in server.channels() if channel.busy()]
        for channel in server.channels():
            if not channel.busy():
                channel.will_close = True
        if not busy or time.monotonic() >= deadline:
            break
        wasyncore.loop(timeout=0.1, map=server._map, use_poll=True, count=1)
    if busy:
        log.warning("stopping with %d request(s) unfinished after %ss", len(busy), grace_s)
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
    wasyncore.close_all(server._map)


def serve(config: Config) -> None:
    server = make_server(config)
    stop = StopRequested()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "web server on http://%s:%s, %d threads",
        server.effective_host,
        server.effective_port,
        config.threads,
    )
    while not stop.signal:
        wasyncore.loop(timeout=POLL_TIMEOUT_S, map=server._map, use_poll=True, count=1)
    log.info("web server stopping (%s)", signal.Signals(stop.signal).name)
    drain(server, config.stop_grace_s)
    log.info("web server stopped")


if __name__ == "__main__":
    serve(Config.from_environment())
