"""The archive in an S3 bucket: keys resolved as safely as paths on disk, read once, and copied
server-side into S3 storage.

Where the source and the storage are the same S3 service, S3 makes the copy itself: the bytes
are hashed on their way through this process and the copy is made only if the object is
still the one hashed. Imported only where S3 is in use: boto3 costs a process about 15 MB.
"""

import io
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.storage import Storage
from django.core.files.utils import validate_file_name
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from ..errors import SourceMisconfigured, SourceProblem, SourceUnavailable
from ..facts import FileFacts, file_facts
from ..problems import CHANGED_WHILE_READ, IS_DIRECTORY, NO_SUCH_FILE, OUTSIDE_SOURCE, UNREADABLE
from .base import relative_path, spellings


@dataclass(frozen=True)
class S3Object:
    """An object a row names, as it was when its path was resolved."""

    file_path: str  # as the row wrote it: problems found later still quote it
    key: str
    name: str
    size: int
    etag: str


@contextmanager
def _network_errors_as_unavailable() -> Iterator[None]:
    """botocore's own errors (timeouts, resets, an endpoint gone) are the service's, not a row's.

    Some of them are OSErrors too, which must not pass for an unreadable file.
    """
    try:
        yield
    except BotoCoreError as error:
        raise SourceUnavailable() from error


class S3Body(io.RawIOBase):
    """The bytes of one object, streamed once from the start; close it to free the connection."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__()
        self._body = response["Body"]
        self.etag: str = response["ETag"]
        self._started = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._started = True
        with _network_errors_as_unavailable():
            data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # Storages rewind before they read: before the first byte that rewind changes nothing.
        if self._started or (offset, whence) != (0, io.SEEK_SET):
            raise io.UnsupportedOperation("an S3 object's body is read once, from the start")
        return 0

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


BUCKET_MISSING = "The import source bucket does not exist; ask the administrator."
BUCKET_FORBIDDEN = "This service may not read the import source bucket; ask the administrator."
BUCKET_UNREACHABLE = "The import source bucket cannot be reached; ask the administrator."


class S3Source:
    """Objects under a prefix of an S3 bucket; keys are resolved as safely as paths on disk."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_url(cls, url: str) -> "S3Source":
        """`s3://bucket/prefix`, the prefix optional; `#` and `?` are part of the prefix."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return cls(bucket, prefix)

    @cached_property
    def client(self) -> Any:
        # A session of its own: boto3's default session is not safe to share between threads.
        return boto3.session.Session().client("s3", **_client_options())

    def check(self) -> None:
        """Refuse to start an import on a bucket that is missing, forbidden or unreachable.

        The messages name neither the endpoint nor the credentials; the chained cause, for
        the server's log, keeps the details.
        """
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            detail = {404: BUCKET_MISSING, 403: BUCKET_FORBIDDEN}.get(_status(error))
            raise SourceMisconfigured(detail or BUCKET_UNREACHABLE) from error
        except (BotoCoreError, ValueError) as error:
            raise SourceMisconfigured(BUCKET_UNREACHABLE) from error

    def resolve(self, file_path: str) -> S3Object:
        """The object a row names, proven to lie under the prefix, in any Unicode spelling.

        Keys are normalised purely (S3 has no folders to resolve), so `a/../b` is `b` and
        anything climbing above the prefix is refused before a request is made.
        """
        for spelling in spellings(file_path):
            key = self._key(spelling, file_path)
            if (found := self._head(key, file_path)) is not None:
                return found
            if self._is_folder(key):
                raise SourceProblem.about(file_path, IS_DIRECTORY)
        raise SourceProblem.about(file_path, NO_SUCH_FILE)

    def size(self, obj: S3Object) -> int:
        return obj.size

    def open(self, obj: S3Object) -> S3Body:
        """The object's body, refused if it changed since it was resolved (and size-checked)."""
        try:
            with _network_errors_as_unavailable():
                response = self.client.get_object(Bucket=self.bucket, Key=obj.key, IfMatch=obj.etag)
        except ClientError as error:
            if (problem := _read_problem(obj.file_path, error)) is None:
                raise
            raise problem from error
        return S3Body(response)

    def _key(self, spelling: str, file_path: str) -> str:
        normal = posixpath.normpath(relative_path(spelling, file_path))
        if normal == ".." or normal.startswith("../"):
            raise SourceProblem.about(file_path, OUTSIDE_SOURCE)
        if normal == ".":
            raise SourceProblem.about(file_path, IS_DIRECTORY)
        return f"{self.prefix}/{normal}" if self.prefix else normal

    def _head(self, key: str, file_path: str) -> S3Object | None:
        try:
            with _network_errors_as_unavailable():
                head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            # A missing key is a 404 whatever the error code says (and HEAD has no body).
            if _status(error) == 404:
                return None
            if (problem := _read_problem(file_path, error)) is None:
                raise
            raise problem from error
        return S3Object(
            file_path, key, posixpath.basename(key), head["ContentLength"], head["ETag"]
        )

    def _is_folder(self, key: str) -> bool:
        with _network_errors_as_unavailable():
            listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"{key}/", MaxKeys=1)
        return listed.get("KeyCount", 0) > 0

    def server_side_copy(
        self, obj: S3Object, name: str, storage: Storage
    ) -> tuple[str, FileFacts] | None:
        """Have S3 copy a row's object into storage, if both are on the same S3 service.

        The object is hashed as one GET streams it, then S3 copies exactly the version hashed.
        None when the storage is elsewhere: the caller then copies through this process.
        Raises SourceProblem when the object changed since it was hashed.
        """
        if not self._copies_into(storage):
            return None
        with self.open(obj) as body:
            facts = file_facts(body)
            etag = body.etag
        stored, key = _s3_storage_name(storage, name)
        # The object the storage would have written: its content type, ACL and parameters.
        extra = {**storage._get_write_parameters(key), "MetadataDirective": "REPLACE"}
        try:
            with _network_errors_as_unavailable():
                storage.connection.meta.client.copy(
                    {"Bucket": self.bucket, "Key": obj.key},
                    storage.bucket_name,
                    key,
                    ExtraArgs={**extra, "CopySourceIfMatch": etag},
                    Config=S3_COPY,
                )
        except ClientError as error:
            if _status(error) != 412:
                raise
            raise SourceProblem.about(obj.file_path, CHANGED_WHILE_READ) from error
        return stored, facts

    def _copies_into(self, storage: Storage) -> bool:
        """Whether S3 can copy from here into the storage: the same service, no gzip."""
        if not isinstance(storage, S3Storage) or storage.gzip:
            return False  # gzip is applied while uploading, which a server-side copy cannot do
        return self.client.meta.endpoint_url == storage.connection.meta.client.meta.endpoint_url


def _status(error: ClientError) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _read_problem(file_path: str, error: ClientError) -> SourceProblem | None:
    """The row's problem for a refused read; None when the failure is the service's."""
    words = {
        403: UNREADABLE,
        404: NO_SUCH_FILE,
        412: CHANGED_WHILE_READ,
    }.get(_status(error))
    return SourceProblem.about(file_path, words) if words else None


def _client_options() -> dict[str, Any]:
    """The S3 client's settings: the same AWS_* settings the S3 storage reads."""
    return {
        "endpoint_url": _setting("AWS_S3_ENDPOINT_URL"),
        "aws_access_key_id": _setting("AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": _setting("AWS_SECRET_ACCESS_KEY"),
        "aws_session_token": _setting("AWS_SESSION_TOKEN"),
        "region_name": _setting("AWS_S3_REGION_NAME"),
        "config": Config(
            # An unreachable bucket is told at upload within seconds, not after minutes.
            connect_timeout=5,
            retries={"mode": "standard", "max_attempts": 3},
            s3={"addressing_style": _setting("AWS_S3_ADDRESSING_STYLE") or "auto"},
        ),
    }


def _setting(name: str) -> str | None:
    # Unset and empty (an environment variable left blank) both mean "boto3's default".
    return getattr(settings, name, None) or None


# One CopyObject request up to S3's 5 GiB limit; beyond it S3 copies parts, still server-side.
S3_COPY = TransferConfig(multipart_threshold=5 * 1024**3, multipart_chunksize=512 * 1024**2)


def _s3_storage_name(storage: S3Storage, name: str) -> tuple[str, str]:
    """The name `storage.save(name, ...)` would return, and the key it would write to."""
    validate_file_name(name, allow_relative_path=True)
    stored = clean_name(storage.get_available_name(name))
    return stored, storage._normalize_name(stored)
