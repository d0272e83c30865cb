"""Factory functions: imports in the states tests start from, built by the services themselves,
and the source files their manifests name."""

import hashlib
import io
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from imports.batches import batch_run
from imports.lifecycle import (
    Upload,
    import_cancel,
    import_create,
    import_fail,
    import_finish,
    import_upload,
)
from imports.models import Batch, Import
from imports.staging import import_split


def png_bytes(seed: str, size: int = 256) -> bytes:
    """Bytes that sniff as PNG and differ for every seed."""
    body = hashlib.sha256(seed.encode()).digest() * (size // 32 + 1)
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + body[:size]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def csv_bytes(*lines: str, encoding: str = "utf-8", newline: str = "\n") -> bytes:
    return (newline.join(lines) + newline).encode(encoding)


def upload(job: Import, manifest: BinaryIO | bytes, *, sha256: str = "") -> Import:
    """Upload `manifest` to a pending import, as the API does once it has read the body."""
    if isinstance(manifest, bytes):
        manifest = io.BytesIO(manifest)
    return import_upload(job, lambda: Upload(manifest, sha256))


def import_uploaded(manifest: bytes, **options) -> Import:
    """A new import, created with `options`, that has `manifest`: active and counting."""
    return upload(import_create(**options), manifest)


def import_staged(manifest: bytes, **options) -> Import:
    """An uploaded import whose rows and batches are staged, none of them run yet."""
    job = import_uploaded(manifest, **options)
    import_split(str(job.pk))
    return job


def run_inline(job: Import) -> Import:
    """Run an uploaded import's background work in this process, as the worker would."""
    import_split(str(job.pk))
    for batch_id in Batch.objects.filter(import_job=job).values_list("pk", flat=True):
        batch_run(batch_id)
    import_finish(str(job.pk))
    job.refresh_from_db()
    return job


def import_run(manifest: bytes, **options) -> Import:
    """A new import, created with `options`, given `manifest` and run inline to its end."""
    return run_inline(import_uploaded(manifest, **options))


def import_cancelled(manifest: bytes, **options) -> Import:
    """An uploaded import cancelled before any of its work ran; its report queued, not written."""
    return import_cancel(import_uploaded(manifest, **options))


def import_failed(manifest: bytes, reason: str, **options) -> Import:
    """An uploaded import that ended in error for `reason`; its report is queued, not written."""
    job = import_uploaded(manifest, **options)
    import_fail(str(job.pk), reason)
    return Import.objects.get(pk=job.pk)


def scans_in(source: Path, *paths: str) -> dict[str, bytes]:
    """A PNG at each of `paths` under `source` (folders made as needed), each differing by its
    file name's stem ("box/a.png" holds png_bytes("a")); returns each path's bytes."""
    files = {path: png_bytes(PurePosixPath(path).stem) for path in paths}
    for path, data in files.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_bytes(data)
    return files
