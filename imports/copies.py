"""Copies of rows' files in storage: each made while its bytes are hashed and sniffed, in one
pass; each attempt at a batch in a folder of its own; the sweep of attempts that never committed.

Where the source and the storage are the same S3 service, S3 makes the copy itself
(Source.server_side_copy).
"""

import os
from typing import BinaryIO

from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage, storages
from django.utils.text import get_valid_filename

from .errors import SourceUnreadable
from .facts import CHUNK_BYTES, FileFacts, HashingReader, file_facts
from .models import Batch
from .sources.base import Source, SourceFile


def file_store(raw: BinaryIO, name: str) -> tuple[str, FileFacts]:
    """Store a file under `name` (overwriting a copy of an earlier try) and return its facts."""
    reader = HashingReader(raw)
    storage = storages["default"]  # default_storage's own: each look through it costs a lookup
    if _plain_local(storage):
        _local_write(reader, storage.path(name), storage.file_permissions_mode)
        return name, reader.facts()
    stored_name = storage.save(name, File(reader, name=name))
    return stored_name, reader.facts()


def _plain_local(storage) -> bool:
    """A local storage that leaves its folders' modes to the umask, as it does by default."""
    return isinstance(storage, FileSystemStorage) and storage.directory_permissions_mode is None


# As FileSystemStorage's own with allow_overwrite, and never through a symlink put in its place.
LOCAL_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


def _local_write(reader: HashingReader, path: str, mode: int | None) -> None:
    """Write `reader`'s bytes at `path` in a local storage, as storage.save would.

    storage.save checks and derives the name again, makes its folder and locks the file, for
    every file: most of a batch's time for small files (docs/performance.md). The names are
    ours (stored_name), unique per attempt, so the folder is made once, by the first copy.
    """
    try:
        descriptor = os.open(path, LOCAL_WRITE_FLAGS, 0o666)
    except FileNotFoundError:  # the attempt's first copy: its folder is not there yet
        os.makedirs(os.path.dirname(path), exist_ok=True)
        descriptor = os.open(path, LOCAL_WRITE_FLAGS, 0o666)
    if mode is not None:
        os.fchmod(descriptor, mode)
    with open(descriptor, "wb") as out:
        while chunk := reader.read(CHUNK_BYTES):
            out.write(chunk)


def file_read(source: Source, located: SourceFile) -> FileFacts:
    """Hash and sniff a row's file without storing it."""
    with source.open(located) as raw:
        return file_facts(raw)


def file_copy(source: Source, located: SourceFile, name: str) -> tuple[str, FileFacts]:
    """Store a row's file under `name`, reading its bytes once, and return the stored name.

    Raises SourceProblem when the file changed since it was resolved, SourceUnreadable when
    it cannot be read.
    """
    if copied := source.server_side_copy(located, name, default_storage):
        return copied
    with source.open(located) as raw:
        try:
            return file_store(raw, name)
        except SourceUnreadable:
            default_storage.delete(name)  # what was written before the read failed
            raise


def attempt_folder(batch: Batch, attempt: int | None = None) -> str:
    """Where one attempt at a batch stores its copies: two attempts never share a file."""
    return f"{batch.import_job_id}/{batch.number:06d}-{attempt or batch.attempts}"


def stored_name(folder: str, row_number: int, file_name: str) -> str:
    """A name unique per (folder, row); each attempt at a batch has a folder of its own."""
    safe = get_valid_filename(file_name)[-100:] or "file"
    return f"documents/{folder}/{row_number:08d}-{safe}"


def attempts_sweep(import_id) -> None:
    """Remove what attempts that never committed left in storage (a worker killed mid-batch)."""
    for folder in attempt_folders_uncommitted(import_id):
        folder_delete(folder)


def attempts_stray_sweep(import_id) -> None:
    """Remove the copies of attempts at committed batches that did not commit: nothing can use
    them any more, even while the import runs on."""
    for folder in attempt_folders_uncommitted(import_id, committed_batches_only=True):
        folder_delete(folder)


def attempt_folders_uncommitted(import_id, *, committed_batches_only: bool = False) -> list[str]:
    """The storage folders of every attempt at the import's batches that did not commit."""
    retried = Batch.objects.filter(import_job_id=import_id).exclude(attempts=0)
    retried = retried.exclude(attempts=1, committed_attempt=1)
    if committed_batches_only:
        retried = retried.filter(committed_at__isnull=False)
    return [
        f"documents/{attempt_folder(batch, attempt)}"
        for batch in retried.iterator()
        for attempt in range(1, batch.attempts + 1)
        if attempt != batch.committed_attempt
    ]


def folder_delete(folder: str) -> None:
    """Remove every file of a storage folder (not its subfolders)."""
    files_delete(folder_files(folder))


def folder_files(folder: str) -> list[str]:
    """The names of a storage folder's files (not its subfolders'); none for a missing one."""
    # Not exists(folder): S3 has no folders, and says False for every prefix.
    try:
        names = default_storage.listdir(folder)[1]
    except FileNotFoundError:  # a local folder never made; S3 lists a missing one as empty
        return []
    return [f"{folder}/{name}" for name in names]


def files_delete(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)
