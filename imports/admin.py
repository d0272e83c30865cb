"""The Django admin, made for imports (issue 13: filled in by its admin work)."""
