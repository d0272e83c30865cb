"""Callback URLs checked, and bodies signed and posted to them (Standard Webhooks).

A callback_url is a request the service makes on an API client's word, from inside the network
it runs in, so it is held to a policy (callback_target): http or https, a host listed in
IMPORT_CALLBACK_ALLOWED_HOSTS, and a name that resolves only to public addresses, unless an
address is itself listed (a receiver on the same host or network is then a deliberate choice).

The post connects to the very address that was checked, never resolving the name a second
time: a name whose DNS answer changes between the check and the connection (DNS rebinding)
cannot lead it to an internal address. The Host header, TLS's SNI and the certificate check
still use the host name. No redirect is followed: its target would not have been checked.

The body is signed as Standard Webhooks specifies (webhook-id, webhook-timestamp and
webhook-signature headers: an HMAC-SHA256 over id, timestamp and body), with its own library,
so that a receiver can verify it with any of the Standard Webhooks libraries.
"""

import base64
import binascii
import ipaddress
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from standardwebhooks import Webhook

from .errors import (
    CallbackAddressNotAllowed,
    CallbackHostNotAllowed,
    CallbacksNotConfigured,
    CallbackUrlInvalid,
)

USER_AGENT = "BulkImport-Callbacks/1.0"
SECRET_PREFIX = "whsec_"
SECRET_MIN_BYTES = 16
DEFAULT_PORTS = {"http": 80, "https": 443}
# The shared address space of carrier-grade NAT: neither private nor global, and internal.
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackUnreachable(Exception):
    """A try that got no answer from the receiver; its message is plain words to record."""


@dataclass(frozen=True)
class CallbackTarget:
    """A checked callback_url: where to connect and what to ask for there."""

    scheme: str
    host: str  # lower case, IDNA-encoded; an IPv6 literal without brackets
    port: int
    host_header: str  # host[:port] as the URL gave it
    target: str  # path and query, as sent on the request line
    addresses: tuple[str, ...]  # every address the host resolved to, each one checked


def callback_url_check(url: str) -> None:
    """Raise a CallbackRefused unless the service may call `url`."""
    callback_target(url)


def callback_target(url: str) -> CallbackTarget:
    """The checked target of `url`, or a CallbackRefused saying why the service will not call it.

    In order: an http(s) URL with a host name and no user or password (CallbackUrlInvalid);
    callbacks configured (CallbacksNotConfigured); its host listed (CallbackHostNotAllowed);
    every address the host resolves to public or itself listed (CallbackAddressNotAllowed).
    """
    scheme, host, port, host_header, target = _url_parts(url)
    allowed = _configured_hosts()
    if _host_key(host) not in allowed:
        raise CallbackHostNotAllowed()
    addresses = _resolved(host, port)
    listed = {_address_key(entry) for entry in allowed} - {None}
    for address in addresses:
        if not (_address_public(address) or _address_key(address) in listed):
            raise CallbackAddressNotAllowed(
                "The callback_url's host resolves to a loopback, private, link-local or "
                "otherwise internal address that is not listed in IMPORT_CALLBACK_ALLOWED_HOSTS."
            )
    return CallbackTarget(scheme, host, port, host_header, target, tuple(map(str, addresses)))


def callback_post(url: str, body: bytes, delivery_id: str) -> int:
    """Check `url` again, post the signed `body` to the address checked, and return the HTTP
    status the receiver answered; a CallbackRefused if the URL is now refused, a
    CallbackUnreachable if no answer came.

    The addresses are tried in the order resolved while one cannot be connected to (a host with
    an IPv6 address this machine cannot reach); an answer, or a timeout once connected, ends it.
    """
    checked = callback_target(url)
    headers = {
        "Host": checked.host_header,
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json",
        **callback_signature_headers(body, delivery_id, int(time.time())),
    }
    failure = CallbackUnreachable("could not connect to the receiver")
    for address in checked.addresses:
        try:
            return _post_to(checked, address, body, headers)
        except urllib3.exceptions.NewConnectionError:
            failure = CallbackUnreachable("could not connect to the receiver")
        except urllib3.exceptions.ConnectTimeoutError:
            failure = CallbackUnreachable(
                f"could not connect to the receiver within {_seconds()} seconds"
            )
    raise failure


def callback_signature_headers(body: bytes, delivery_id: str, timestamp: int) -> dict[str, str]:
    """The Standard Webhooks headers that sign `body` as the delivery `delivery_id`."""
    signature = Webhook(settings.IMPORT_CALLBACK_SECRET).sign(
        delivery_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode("utf-8")
    )
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def _post_to(checked: CallbackTarget, address: str, body: bytes, headers: dict) -> int:
    timeout = urllib3.Timeout(
        connect=settings.IMPORT_CALLBACK_TIMEOUT, read=settings.IMPORT_CALLBACK_TIMEOUT
    )
    if checked.scheme == "https":
        # SNI and the certificate check are against the host name, not the address connected to.
        pool = urllib3.HTTPSConnectionPool(
            address,
            checked.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            server_hostname=checked.host,
            assert_hostname=checked.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            address, checked.port, timeout=timeout, retries=False, maxsize=1
        )
    with pool:
        try:
            response = pool.urlopen(
                "POST",
                checked.target,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
        except urllib3.exceptions.ConnectTimeoutError:  # NewConnectionError too: the next address
            raise
        except urllib3.exceptions.ReadTimeoutError:
            raise CallbackUnreachable(
                f"the receiver did not answer within {_seconds()} seconds"
            ) from None
        except urllib3.exceptions.SSLError:
            raise CallbackUnreachable(
                "the TLS handshake with the receiver failed, or its certificate is not valid "
                "for the callback_url's host"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError):
            raise CallbackUnreachable(
                "the connection to the receiver broke before it answered"
            ) from None
        # Only the status counts: the receiver's body is never read, however large.
        response.close()
        return response.status


def _seconds() -> str:
    return f"{settings.IMPORT_CALLBACK_TIMEOUT:g}"


def _url_parts(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, Host header, request target) of an http(s) URL, or
    CallbackUrlInvalid."""
    if not isinstance(url, str) or any(char <= " " or char == "\x7f" for char in url):
        raise CallbackUrlInvalid()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise CallbackUrlInvalid() from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc or port == 0:
        raise CallbackUrlInvalid()
    try:
        host = _host_key(parts.hostname)
    except UnicodeError:
        raise CallbackUrlInvalid() from None
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port is None else f"{shown}:{port}"
    # An IRI's path may hold any character: urllib3 sends the others as %XX.
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port or DEFAULT_PORTS[scheme], host_header, target


def _host_key(host: str) -> str:
    """A host as compared with the list: lower case, IDNA-encoded, no trailing dot; an address
    in its one canonical form."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if (address := _address_key(host)) is not None:
        return str(address)
    return host.encode("idna").decode("ascii")


def _configured_hosts() -> set[str]:
    """The allowed hosts as compared, or CallbacksNotConfigured unless both settings are set and
    the secret is a Standard Webhooks one."""
    entries = [entry for entry in settings.IMPORT_CALLBACK_ALLOWED_HOSTS if entry.strip()]
    if not entries or not _secret_usable(settings.IMPORT_CALLBACK_SECRET):
        raise CallbacksNotConfigured()
    hosts = set()
    for entry in entries:
        try:
            hosts.add(_host_key(entry))
        except UnicodeError:  # a misspelt entry allows nothing; the others still count
            continue
    return hosts


def _secret_usable(secret: str) -> bool:
    """`whsec_` then base64 of at least SECRET_MIN_BYTES bytes."""
    if not secret.startswith(SECRET_PREFIX):
        return False
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(key) >= SECRET_MIN_BYTES


def _resolved(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, or CallbackAddressNotAllowed if it resolves to none."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        answers = []
    addresses = []
    for family, _, _, _, sockaddr in answers:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise CallbackAddressNotAllowed("The callback_url's host name does not resolve.")
    return addresses


def _address_key(value: object) -> IPAddress | None:
    """An address in the one form compared (an IPv4-mapped IPv6 address as its IPv4 one), or
    None for a value that is not an address."""
    if isinstance(value, str):
        try:
            value = ipaddress.ip_address(value.strip().strip("[]"))
        except ValueError:
            return None
    if isinstance(value, ipaddress.IPv6Address) and value.ipv4_mapped is not None:
        return value.ipv4_mapped
    return value


def _address_public(address: IPAddress) -> bool:
    """Whether an address is one on the internet at large: not loopback, private, link-local,
    multicast, reserved, unspecified or shared, nor an IPv6 address embedding one of those
    (IPv4-mapped, 6to4, Teredo)."""
    address = _address_key(address)
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.sixtofour, address.teredo[1] if address.teredo else None]
        if any(inner is not None and not _address_public(inner) for inner in embedded):
            return False
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in SHARED_ADDRESS_SPACE
        or not address.is_global
    )
