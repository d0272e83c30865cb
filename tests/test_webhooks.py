"""Callback URLs checked, signed bodies posted: imports.webhooks, with no database.

Names are resolved by a table of the test's own (socket.getaddrinfo patched); the receiver is a
real HTTP server on 127.0.0.1 in a thread of its own, so that what goes over the wire is seen.
"""

import base64
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from imports.errors import (
    CallbackAddressNotAllowed,
    CallbackHostNotAllowed,
    CallbacksNotConfigured,
    CallbackUrlInvalid,
)
from imports.webhooks import (
    CallbackUnreachable,
    callback_post,
    callback_signature_headers,
    callback_url_check,
)

SECRET = "whsec_" + base64.b64encode(b"a test secret of 32 bytes, ok!!!").decode()
HOST = "hooks.example.org"
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
BODY = json.dumps({"uuid": "1", "status": "finished", "title": "Café"}).encode()


# --- a receiver --------------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1, in a thread of its own, that records every request and
    answers each with the next of `answers` (the last one for all that follow). A 3xx answer
    sends a Location on the same server; while `hold` is given and not set, it answers nothing.
    """

    answers: list[int] = field(default_factory=lambda: [204])
    hold: threading.Event | None = None
    tls: ssl.SSLContext | None = None  # served over TLS with it
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> "Receiver":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, received: Received) -> int:
        with self._lock:
            self.requests.append(received)
            return self.answers[min(len(self.requests), len(self.answers)) - 1]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if receiver.hold is not None:
                    receiver.hold.wait(10)
                status = receiver._answer(
                    Received("POST", self.path, dict(self.headers.items()), body)
                )
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.url("/elsewhere"))
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args) -> None:
                pass

        return Handler


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def configured(settings):
    """Callbacks on: HOST listed, a Standard Webhooks secret, a short timeout."""
    settings.IMPORT_CALLBACK_ALLOWED_HOSTS = [HOST]
    settings.IMPORT_CALLBACK_SECRET = SECRET
    settings.IMPORT_CALLBACK_TIMEOUT = 5
    return settings


@pytest.fixture
def dns(monkeypatch) -> dict:
    """A table of names to the addresses they resolve to ([]: the name does not resolve; a
    function: called at each lookup); a name not in it (an address) is resolved as usual. The
    names looked up in the table are listed in dns["lookups"], in order."""
    table: dict = {HOST: [PUBLIC_V4], "lookups": []}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host not in table or host == "lookups":
            return real(host, port, family, type, proto, flags)
        table["lookups"].append(host)
        addresses = table[host]() if callable(table[host]) else table[host]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


# --- the URL -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://{HOST}/hook",
        f"{HOST}/hook",
        "https:///hook",
        f"https://user:password@{HOST}/hook",
        f"https://user@{HOST}/hook",
        f"https://{HOST}:99999/hook",
        f"https://{HOST}:0/hook",
        f"https://{HOST}/a hook",
        "javascript:alert(1)",
        "",
    ],
)
def test_a_url_not_http_with_a_host_alone_is_invalid(configured, dns, url):
    with pytest.raises(CallbackUrlInvalid):
        callback_url_check(url)


@pytest.mark.parametrize(
    "hosts, secret",
    [
        ([], SECRET),
        ([HOST], ""),
        ([HOST], "not-a-standard-secret"),
        ([HOST], "whsec_" + base64.b64encode(b"too short").decode()),
        ([HOST], "whsec_not base64!"),
    ],
    ids=["no hosts", "no secret", "no whsec_", "short secret", "not base64"],
)
def test_callbacks_are_refused_unless_hosts_and_a_secret_are_set(settings, dns, hosts, secret):
    settings.IMPORT_CALLBACK_ALLOWED_HOSTS = hosts
    settings.IMPORT_CALLBACK_SECRET = secret
    with pytest.raises(CallbacksNotConfigured):
        callback_url_check(f"https://{HOST}/hook")


def test_an_unpadded_secret_of_enough_bytes_is_usable(configured, dns):
    configured.IMPORT_CALLBACK_SECRET = SECRET.rstrip("=")
    callback_url_check(f"https://{HOST}/hook")


@pytest.mark.parametrize(
    "url",
    [
        "https://other.example.org/hook",
        f"https://{HOST}.evil.example/hook",
        f"https://evil.example/#@{HOST}",
        "http://127.0.0.1/hook",
    ],
)
def test_a_host_not_listed_is_refused(configured, dns, url):
    dns.update({"other.example.org": [PUBLIC_V4], f"{HOST}.evil.example": [PUBLIC_V4]})
    with pytest.raises(CallbackHostNotAllowed):
        callback_url_check(url)


@pytest.mark.parametrize(
    "listed, url",
    [
        (HOST, "https://HOOKS.Example.ORG./hook?token=1"),
        ("Hooks.Example.Org", f"http://{HOST}:8080/hook"),
        ("bücher.example", "https://BÜCHER.example/hook"),
        ("xn--bcher-kva.example", "https://bücher.example/hook"),
    ],
)
def test_a_listed_host_is_allowed_whatever_its_case_or_spelling(configured, dns, listed, url):
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = [listed]
    dns.update({"xn--bcher-kva.example": [PUBLIC_V4]})
    callback_url_check(url)


# --- the addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fd00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
    ],
)
def test_a_name_resolving_to_an_internal_address_is_refused(configured, dns, address):
    dns[HOST] = [address]
    with pytest.raises(CallbackAddressNotAllowed) as refused:
        callback_url_check(f"https://{HOST}/hook")
    assert address not in refused.value.detail


def test_one_internal_address_among_public_ones_is_enough_to_refuse(configured, dns):
    dns[HOST] = [PUBLIC_V4, PUBLIC_V6, "10.0.0.7"]
    with pytest.raises(CallbackAddressNotAllowed):
        callback_url_check(f"https://{HOST}/hook")


def test_a_name_resolving_to_public_addresses_is_allowed(configured, dns):
    dns[HOST] = [PUBLIC_V4, PUBLIC_V6]
    callback_url_check(f"https://{HOST}/hook")


def test_an_internal_address_listed_itself_is_allowed(configured, dns):
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = [HOST, "10.0.0.7", "[fd00::7]"]
    dns[HOST] = ["10.0.0.7", "fd00::7"]
    callback_url_check(f"https://{HOST}/hook")


def test_an_ipv4_mapped_address_is_judged_as_its_ipv4_address(configured, dns):
    dns[HOST] = [f"::ffff:{PUBLIC_V4}"]
    callback_url_check(f"https://{HOST}/hook")
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = [HOST, "10.0.0.7"]
    dns[HOST] = ["::ffff:10.0.0.7"]
    callback_url_check(f"https://{HOST}/hook")


def test_a_name_that_does_not_resolve_is_refused_in_plain_words(configured, dns):
    dns[HOST] = []
    with pytest.raises(CallbackAddressNotAllowed) as refused:
        callback_url_check(f"https://{HOST}/hook")
    assert refused.value.detail == "The callback_url's host name does not resolve."


@pytest.mark.parametrize(
    "listed, url",
    [("127.0.0.1", "http://127.0.0.1:9000/hook"), ("::1", "http://[::1]:9000/hook")],
)
def test_an_address_in_the_url_is_allowed_only_if_listed(configured, dns, listed, url):
    with pytest.raises(CallbackHostNotAllowed):
        callback_url_check(url)
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = [HOST, listed]
    callback_url_check(url)


def test_an_address_spelt_as_a_number_is_still_checked_as_the_address(configured):
    # 2130706433 is 127.0.0.1: listed as it is spelt, it still resolves to an internal address.
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = ["2130706433"]
    with pytest.raises(CallbackAddressNotAllowed):
        callback_url_check("http://2130706433/hook")


# --- the signature -----------------------------------------------------------------------------


def test_the_signature_verifies_with_the_standard_webhooks_library(configured):
    headers = callback_signature_headers(BODY, "delivery-1", int(time.time()))
    assert headers["webhook-id"] == "delivery-1"
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.replace(b"finished", b"error   "), headers)
    other = "whsec_" + base64.b64encode(b"another secret, also 32 bytes!!!").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(BODY, headers)


# --- the post ----------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def test_the_body_is_posted_signed_to_a_listed_address(configured, dns, receiver):
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    status = callback_post(receiver.url("/hook?run=7"), BODY, "delivery-1")
    assert status == 204
    [request] = receiver.requests
    assert (request.method, request.path, request.body) == ("POST", "/hook?run=7", BODY)
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["host"] == f"127.0.0.1:{receiver.port}"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("BulkImport")
    assert headers["webhook-id"] == "delivery-1"
    assert Webhook(SECRET).verify(request.body, headers) == json.loads(BODY)


def test_a_path_beyond_ascii_is_posted_percent_encoded(configured, dns, receiver):
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    assert callback_post(receiver.url("/é/hook?q=ü%20x"), BODY, "delivery-1") == 204
    assert [request.path for request in receiver.requests] == ["/%C3%A9/hook?q=%C3%BC%20x"]


def test_the_post_goes_to_the_address_checked_with_the_name_as_host(configured, dns, receiver):
    # given a listed name that resolves to a listed address once, and to another one after
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = ["hooks.internal.test", "127.0.0.1"]
    answers = iter([["127.0.0.1"]])
    dns["hooks.internal.test"] = lambda: next(answers, ["192.0.2.1"])
    # when
    status = callback_post(receiver.url(host="hooks.internal.test"), BODY, "delivery-1")
    # then the name was resolved once, and the post reached the address that was checked
    assert status == 204
    assert dns["lookups"] == ["hooks.internal.test"]
    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks.internal.test:{receiver.port}"


def test_an_address_that_cannot_be_connected_to_gives_way_to_the_next(configured, dns, receiver):
    # nothing listens on 127.0.0.2 (loopback too on Linux), the receiver on 127.0.0.1
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = ["hooks.internal.test", "127.0.0.2", "127.0.0.1"]
    dns["hooks.internal.test"] = ["127.0.0.2", "127.0.0.1"]
    assert callback_post(receiver.url(host="hooks.internal.test"), BODY, "delivery-1") == 204
    assert len(receiver.requests) == 1


def test_a_listed_name_resolving_to_an_address_not_listed_is_not_posted_to(
    configured, dns, receiver
):
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = ["hooks.internal.test"]
    dns["hooks.internal.test"] = ["127.0.0.1"]
    with pytest.raises(CallbackAddressNotAllowed):
        callback_post(receiver.url(host="hooks.internal.test"), BODY, "delivery-1")
    assert receiver.requests == []


def test_a_redirect_is_answered_but_not_followed(configured, dns):
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    with Receiver(answers=[302, 204]) as receiver:
        assert callback_post(receiver.url(), BODY, "delivery-1") == 302
    assert [request.path for request in receiver.requests] == ["/hook"]


def test_nothing_listening_is_unreachable_in_plain_words(configured, dns):
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(CallbackUnreachable) as failed:
        callback_post(f"http://127.0.0.1:{port}/hook", BODY, "delivery-1")
    assert str(failed.value) == "could not connect to the receiver"


def test_a_receiver_that_does_not_answer_in_time_is_unreachable(configured, dns):
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    configured.IMPORT_CALLBACK_TIMEOUT = 0.3
    with Receiver(hold=threading.Event()) as receiver, pytest.raises(CallbackUnreachable) as failed:
        callback_post(receiver.url(), BODY, "delivery-1")
    assert str(failed.value) == "the receiver did not answer within 0.3 seconds"


# --- TLS ---------------------------------------------------------------------------------------


def certificate(folder: Path, name: str) -> Path:
    """A self-signed certificate for `name` with its key, in one PEM file."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{name}.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def tls_serving(pem: Path, server_names: list) -> ssl.SSLContext:
    """A server's TLS context with the certificate in `pem`, listing the SNI names it is sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    context.sni_callback = lambda _socket, name, _context: server_names.append(name)
    return context


@pytest.mark.parametrize("certified", ["hooks.internal.test", "other.internal.test"])
def test_tls_is_checked_against_the_host_name_at_the_address_checked(
    configured, dns, monkeypatch, tmp_path, certified
):
    # given a receiver at a listed address whose certificate, trusted, names `certified`
    configured.IMPORT_CALLBACK_ALLOWED_HOSTS = ["hooks.internal.test", "127.0.0.1"]
    dns["hooks.internal.test"] = ["127.0.0.1"]
    pem = certificate(tmp_path, certified)
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))  # OpenSSL's default trust, read at each use
    server_names: list[str] = []
    with Receiver(tls=tls_serving(pem, server_names)) as receiver:
        url = receiver.url(host="hooks.internal.test")
        # when
        if certified == "hooks.internal.test":
            status = callback_post(url, BODY, "delivery-1")
        else:
            with pytest.raises(CallbackUnreachable) as failed:
                callback_post(url, BODY, "delivery-1")
    # then the name was sent as SNI, and the certificate must be for it
    assert server_names == ["hooks.internal.test"]
    if certified == "hooks.internal.test":
        assert status == 204
        assert [request.body for request in receiver.requests] == [BODY]
    else:
        assert str(failed.value).startswith("the TLS handshake with the receiver failed")
        assert receiver.requests == []
