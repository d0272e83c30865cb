"""Where the archive's files come from: safe resolution of a row's path, size, and reading.

A row's path is resolved against the source (a directory, or a prefix in an S3 bucket) and
must stay inside it: absolute paths, `..` climbing out and symlinks leading out are refused.
Problems are worded with the row's own `file_path`, never with where the source lives.
"""

import io
import os
import posixpath
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from .errors import SourceMisconfigured


class SourceProblem(Exception):
    """A row's file cannot be used; the message is a plain-words row comment."""

    @classmethod
    def about(cls, file_path: str, words: str) -> "SourceProblem":
        """A row comment naming the row's own file_path, never where the source lives."""
        return cls(f"file_path {file_path!r}: {words}")


class FilesystemSource:
    """Files under a directory on this machine (or a mount every worker shares)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def check(self) -> None:
        """Refuse to start an import on a source that is not a readable directory."""
        if not (self.root.is_dir() and os.access(self.root, os.R_OK | os.X_OK)):
            raise SourceMisconfigured()

    def resolve(self, file_path: str) -> Path:
        """The file a row names, proven to lie inside the source.

        A name typed on one system may be stored in the other Unicode form (macOS writes
        decomposed NFD, most others composed NFC), so when the path as written leads nowhere
        its NFC and NFD spellings are tried, each under the same checks.
        """
        for spelling in _spellings(file_path):
            if (path := _existing_inside(self._resolved_root, spelling, file_path)) is not None:
                if not path.is_file():
                    raise SourceProblem.about(file_path, "is a directory, not a file")
                return path
        raise SourceProblem.about(file_path, "no such file")

    @cached_property
    def _resolved_root(self) -> Path:
        # Once per source, which lives for one batch: not once per row.
        return self.root.resolve()

    def size(self, path: Path) -> int:
        return path.stat().st_size

    def open(self, path: Path) -> BinaryIO:
        return path.open("rb")


def _spellings(file_path: str) -> list[str]:
    """The path as written, then its NFC and NFD spellings where they differ from it."""
    normalized = [unicodedata.normalize(form, file_path) for form in ("NFC", "NFD")]
    return list(dict.fromkeys([file_path, *normalized]))


def _relative(spelling: str, file_path: str) -> str:
    """`spelling` with `/` between folders; refused when it holds NUL or is absolute anywhere.

    Manifests come from Windows too, so `C:\\x` and `\\\\server\\share` count as absolute.
    """
    if "\x00" in spelling or PureWindowsPath(spelling).is_absolute():
        raise SourceProblem.about(file_path, "path outside source")
    relative = spelling.replace("\\", "/")
    if relative.startswith("/"):
        raise SourceProblem.about(file_path, "path outside source")
    return relative


def _existing_inside(root: Path, spelling: str, file_path: str) -> Path | None:
    """Where `spelling` leads under `root`, or None if nothing is there; refuses leading out."""
    relative = PurePosixPath(_relative(spelling, file_path))
    try:
        path = (root / relative).resolve(strict=True)
    except FileNotFoundError:
        # A missing target is judged by where it would be, so a dangling link out is refused.
        if not (root / relative).resolve().is_relative_to(root):
            raise SourceProblem.about(file_path, "path outside source") from None
        return None
    except (OSError, RuntimeError):
        raise SourceProblem.about(file_path, "the file cannot be read") from None
    if not path.is_relative_to(root):
        raise SourceProblem.about(file_path, "path outside source")
    return path


@dataclass(frozen=True)
class S3Object:
    """An object a row names, as it was when its path was resolved."""

    file_path: str  # as the row wrote it: problems found later still quote it
    key: str
    name: str
    size: int
    etag: str


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
        for spelling in _spellings(file_path):
            key = self._key(spelling, file_path)
            if (found := self._head(key, file_path)) is not None:
                return found
            if self._is_folder(key):
                raise SourceProblem.about(file_path, "is a directory, not a file")
        raise SourceProblem.about(file_path, "no such file")

    def size(self, obj: S3Object) -> int:
        return obj.size

    def open(self, obj: S3Object) -> S3Body:
        """The object's body, refused if it changed since it was resolved (and size-checked)."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=obj.key, IfMatch=obj.etag)
        except ClientError as error:
            if (problem := _read_problem(obj.file_path, error)) is None:
                raise
            raise problem from error
        return S3Body(response)

    def _key(self, spelling: str, file_path: str) -> str:
        normal = posixpath.normpath(_relative(spelling, file_path))
        if normal == ".." or normal.startswith("../"):
            raise SourceProblem.about(file_path, "path outside source")
        if normal == ".":
            raise SourceProblem.about(file_path, "is a directory, not a file")
        return f"{self.prefix}/{normal}" if self.prefix else normal

    def _head(self, key: str, file_path: str) -> S3Object | None:
        try:
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
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"{key}/", MaxKeys=1)
        return listed.get("KeyCount", 0) > 0


def _status(error: ClientError) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _read_problem(file_path: str, error: ClientError) -> SourceProblem | None:
    """The row's problem for a refused read; None when the failure is the service's."""
    words = {
        403: "the file cannot be read",
        404: "no such file",
        412: "the file changed while being read",
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


Source = FilesystemSource | S3Source
SourceFile = Path | S3Object


def source_from_settings() -> Source:
    """The source IMPORT_SOURCE names: `s3://bucket/prefix`, or else a directory."""
    location = str(settings.IMPORT_SOURCE)
    if location.startswith("s3://"):
        return S3Source.from_url(location)
    return FilesystemSource(location)
