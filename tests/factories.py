"""Factory functions: imports in the states tests start from, built by the services themselves."""

import io
from typing import BinaryIO

from imports.lifecycle import Upload, import_create, import_upload
from imports.models import Import


def upload(job: Import, manifest: BinaryIO | bytes, *, sha256: str = "") -> Import:
    """Upload `manifest` to a pending import, as the API does once it has read the body."""
    if isinstance(manifest, bytes):
        manifest = io.BytesIO(manifest)
    return import_upload(job, lambda: Upload(manifest, sha256))


def import_uploaded(manifest: bytes, **options) -> Import:
    """A new import, created with `options`, that has `manifest`: active and counting."""
    return upload(import_create(**options), manifest)
