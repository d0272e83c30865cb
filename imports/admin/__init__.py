"""The Django admin, made for imports: imports (with the start page and their progress) and
documents, each in a module of its own. Importing them registers them."""

from .documents import DocumentAdmin
from .imports import ImportAdmin

__all__ = ["DocumentAdmin", "ImportAdmin"]
