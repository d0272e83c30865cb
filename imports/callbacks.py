"""Completion callbacks: each end of an import posted, signed, to its callback_url.

(Being written: issue 12.)
"""


def callback_deliver(import_id, status: str, delivery_id: str, attempt: int) -> bool:
    """Try once to deliver the end `status` of the import; whether to try again later."""
    raise NotImplementedError


def callback_delay(attempt: int) -> float:
    """Seconds to wait after the failed try number `attempt` (1 for the first)."""
    raise NotImplementedError
