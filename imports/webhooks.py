"""Callback URLs checked, and bodies signed and posted to them (Standard Webhooks).

(Being written: issue 12.)
"""


def callback_url_check(url: str) -> None:
    """Raise a CallbackRefused unless the service may call `url`."""
    raise NotImplementedError
