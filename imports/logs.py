"""Structured logs (issue 13: filled in by its logs work)."""
