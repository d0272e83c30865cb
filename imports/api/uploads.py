"""The manifest of an upload request: a raw or multipart body, read whole and checked.

The body is spooled to a temporary file in chunks, never held in memory. A body that ends before
its Content-Length (a dropped connection, a killed client) or that differs from the digest the
client sent is refused before anything is stored. Chunked bodies arrive de-chunked, with their
length, from the web server (imports/web.py).
"""

import base64
import binascii
import hashlib
import re
import tempfile
from collections.abc import Iterable
from typing import BinaryIO

from django.conf import settings
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.http import parse_header_parameters
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.request import Request

from ..errors import (
    DigestInvalid,
    ManifestDigestMismatch,
    ManifestEmpty,
    ManifestIncomplete,
    ManifestInvalid,
    ManifestTooLarge,
)
from ..lifecycle import Upload

CHUNK_BYTES = 1024 * 1024
# `curl -T m.csv` sends no Content-Type; a body without one is taken as the CSV it must be.
RAW_MEDIA_TYPES = ("text/csv", "")
MULTIPART = "multipart/form-data"
# Boundaries and part headers around the manifest in a multipart body.
MULTIPART_ROOM_BYTES = 64 * 1024
# RFC 9530 algorithm names, with hashlib's.
DIGEST_ALGORITHMS = {"sha-256": "sha256", "sha-512": "sha512"}
# Without a Content-Encoding, the content and the representation are the same bytes.
DIGEST_HEADERS = ("Content-Digest", "Repr-Digest")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def too_large() -> ManifestTooLarge:
    return ManifestTooLarge(settings.IMPORT_MAX_MANIFEST_BYTES)


class CompleteBody:
    """A request body read through once: counted, hashed if asked, refused if cut short."""

    def __init__(self, stream, length: int, algorithms: Iterable[str] = ()) -> None:
        self.stream = stream
        self.length = length
        self.received = 0
        self.hashes = {name: hashlib.new(DIGEST_ALGORITHMS[name]) for name in algorithms}

    def read(self, size: int = -1) -> bytes:
        left = self.length - self.received
        wanted = left if size is None or size < 0 else min(size, left)
        data = self.stream.read(wanted) if wanted else b""
        self.received += len(data)
        for digest in self.hashes.values():
            digest.update(data)
        if wanted and not data:
            raise ManifestIncomplete(
                f"The upload ended after {self.received} of the {self.length} bytes its "
                "Content-Length announced: the connection was cut. Nothing was stored; upload "
                "the manifest again."
            )
        return data

    def read_to_end(self) -> None:
        """Read what a parser left (a multipart epilogue), so completeness and digests hold."""
        while self.read(CHUNK_BYTES):
            pass

    def digests(self) -> dict[str, bytes]:
        return {name: digest.digest() for name, digest in self.hashes.items()}


def digest_header_parse(value: str) -> dict[str, bytes]:
    """An RFC 9530 digest field (`sha-256=:base64:, ...`) as {algorithm: digest}.

    Algorithms this service does not check are left out; a field naming none it checks, or
    that cannot be read, is refused: the client asked for a check that would not happen.
    """
    digests = {}
    for member in value.split(","):
        name, equals, rest = member.strip().partition("=")
        encoded = rest.split(";", 1)[0].strip()
        if not (equals and len(encoded) >= 2 and encoded[0] == encoded[-1] == ":"):
            raise DigestInvalid(
                "A digest header cannot be read: write it as sha-256=:<base64 of the digest>:."
            )
        try:
            decoded = base64.b64decode(encoded[1:-1], validate=True)
        except binascii.Error:
            raise DigestInvalid("A digest header holds a value that is not base64.") from None
        if name.strip().lower() in DIGEST_ALGORITHMS:
            digests[name.strip().lower()] = decoded
    if not digests:
        raise DigestInvalid(
            "A digest header names no algorithm this service checks: send sha-256 or sha-512."
        )
    return digests


def _digests_expected(request: Request) -> dict[str, dict[str, bytes]]:
    return {
        header: digest_header_parse(request.headers[header])
        for header in DIGEST_HEADERS
        if header in request.headers
    }


def _sha256_expected(request: Request) -> str:
    value = request.query_params.get("sha256", "")
    value = value.strip().removeprefix("sha256:")
    if value and not SHA256_HEX.fullmatch(value):
        raise DigestInvalid("The sha256 parameter must be 64 hexadecimal digits.")
    return value.lower()


def _media_type(request: Request) -> str:
    media_type = parse_header_parameters(request.META.get("CONTENT_TYPE", ""))[0]
    if media_type not in (*RAW_MEDIA_TYPES, MULTIPART):
        raise UnsupportedMediaType(media_type)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(
            media_type,
            detail=f"Content-Encoding {encoding!r} is not supported: send the manifest as it is.",
        )
    return media_type


def _declared_length(request: Request, media_type: str) -> int:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length < 0:
        raise ManifestInvalid("The Content-Length header is not a number of bytes.")
    room = MULTIPART_ROOM_BYTES if media_type == MULTIPART else 0
    if length > settings.IMPORT_MAX_MANIFEST_BYTES + room:
        raise too_large()  # before reading a body that may be large
    return length


def _spooled(body: CompleteBody) -> BinaryIO:
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
    try:
        while chunk := body.read(CHUNK_BYTES):
            spooled.write(chunk)
    except BaseException:
        spooled.close()
        raise
    spooled.seek(0)
    return spooled


def _multipart_file(request: Request, body: CompleteBody) -> BinaryIO:
    """The multipart field `file`, stored by Django's upload handlers (on disk beyond 1 MiB)."""
    try:
        _fields, files = MultiPartParser(
            request.META, body, request.upload_handlers, request.encoding
        ).parse()
    except MultiPartParserError:
        raise ManifestInvalid("The multipart body is not well-formed.") from None
    upload = files.get("file")
    if upload is None:
        raise ManifestEmpty("No manifest: send it as a text/csv body or a multipart field 'file'.")
    if upload.size > settings.IMPORT_MAX_MANIFEST_BYTES:
        raise too_large()
    return upload


def _digests_check(expected: dict[str, dict[str, bytes]], received: dict[str, bytes]) -> None:
    for header, digests in expected.items():
        for algorithm, digest in digests.items():
            if received[algorithm] != digest:
                raise ManifestDigestMismatch(
                    f"The body differs from its {header} ({algorithm}): it changed in transit. "
                    "Nothing was stored; upload the manifest again."
                )


def manifest_upload(request: Request) -> Upload:
    """The manifest a request carries, read whole, or the error that refuses the request."""
    media_type = _media_type(request)
    length = _declared_length(request, media_type)
    expected = _digests_expected(request)
    sha256 = _sha256_expected(request)
    algorithms = {algorithm for digests in expected.values() for algorithm in digests}
    body = CompleteBody(request, length, algorithms)
    manifest = _multipart_file(request, body) if media_type == MULTIPART else _spooled(body)
    try:
        body.read_to_end()
        _digests_check(expected, body.digests())
    except BaseException:
        manifest.close()
        raise
    return Upload(manifest, sha256)
