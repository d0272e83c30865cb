"""Errors the services raise. They know nothing of HTTP: imports/api/errors.py maps them.

Every `detail` is a plain sentence for the operator and never holds a server path or secret.
The source's errors come last: a row's file that cannot be used fails that row, a source that
fails as a whole is waited for, and neither is ever an HTTP answer.
"""

import errno

from .problems import about_file

STORAGE_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class BulkImportError(Exception):
    code = "bulk_import_error"
    default_detail = "The request could not be carried out."

    def __init__(self, detail: str | None = None, **extra: object) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)


class ImportConflict(BulkImportError):
    """The import is not in a state that allows this."""

    code = "import_conflict"


class AnotherImportOpen(ImportConflict):
    code = "another_import_open"
    default_detail = "Another import is pending or active; finish or cancel it first."


class ImportNotPending(ImportConflict):
    code = "import_not_pending"
    default_detail = "This import is not pending: a manifest can be uploaded only once."


class ImportStillOpen(ImportConflict):
    code = "import_still_open"
    default_detail = "This import is still pending or active."


class ImportAlreadyEnded(ImportConflict):
    code = "import_already_ended"
    default_detail = "This import has already ended."


class ImportNotResumable(ImportConflict):
    code = "import_not_resumable"
    default_detail = (
        "Only an import that ended in error, or an active one whose batches stopped reporting, "
        "can be resumed."
    )


class ImportAlreadyRolledBack(ImportConflict):
    code = "import_already_rolled_back"
    default_detail = "This import has already been rolled back."


class RollbackNotStarted(ImportConflict):
    code = "rollback_not_started"
    default_detail = "This import has not been rolled back: it has no rollback report."


class RollbackNotCancellable(ImportConflict):
    code = "rollback_not_cancellable"
    default_detail = (
        "This import is being rolled back; a rollback cannot be stopped halfway. It ends by "
        "itself."
    )


class NoWorkerRunning(ImportConflict):
    """Nothing would run the import: said before one is opened, so nothing waits for ever."""

    code = "no_worker_running"
    default_detail = (
        "No worker is running, so nothing would import the rows: start the service "
        "(make serve) or a Celery worker, then try again."
    )


class ReportNotReady(ImportConflict):
    code = "report_not_ready"
    default_detail = "The report is being written; try again in a moment."


class SourceMisconfigured(BulkImportError):
    """The configured source cannot be read at all: the server's setup, not the import's state."""

    code = "source_misconfigured"
    default_detail = "The import source is not a readable directory; ask the administrator."


class ReportMissing(BulkImportError):
    code = "report_missing"
    default_detail = "This import has no report: it never received a manifest."


class ManifestInvalid(BulkImportError):
    code = "manifest_invalid"
    default_detail = "The manifest cannot be read as CSV."


class ManifestEmpty(ManifestInvalid):
    code = "manifest_empty"
    default_detail = "The manifest is empty."


class ManifestUndecodable(ManifestInvalid):
    code = "manifest_undecodable"


class ManifestHeaderInvalid(ManifestInvalid):
    code = "manifest_header_invalid"


class ManifestHeaderTooLong(ManifestInvalid):
    """The header has more columns, or takes more of the file, than a header may."""

    code = "manifest_header_too_long"


class ManifestMalformed(ManifestInvalid):
    code = "manifest_malformed"


class ManifestIncomplete(ManifestInvalid):
    code = "manifest_incomplete"
    default_detail = (
        "The upload ended before the length it announced: the connection was cut. Nothing was "
        "stored; upload the manifest again."
    )


class ManifestDigestMismatch(ManifestInvalid):
    code = "manifest_digest_mismatch"


class DigestInvalid(ManifestInvalid):
    """A digest the client sent cannot be read, or names no algorithm this service checks."""

    code = "digest_invalid"


class ManifestTooLarge(BulkImportError):
    code = "manifest_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The manifest is larger than the {limit} bytes allowed.")


class SourceNotAllowed(BulkImportError):
    """A source other than the service's own was asked for (the command's --source)."""

    code = "source_not_allowed"


class CallbackRefused(BulkImportError):
    """A callback_url the service will not call; its detail says why, in plain words."""

    code = "callback_refused"


class CallbacksNotConfigured(CallbackRefused):
    code = "callbacks_not_configured"
    default_detail = (
        "This service sends no callbacks: IMPORT_CALLBACK_ALLOWED_HOSTS and "
        "IMPORT_CALLBACK_SECRET are not both set."
    )


class CallbackUrlInvalid(CallbackRefused):
    code = "callback_url_invalid"
    default_detail = "The callback_url must be an http or https URL with a host name."


class CallbackHostNotAllowed(CallbackRefused):
    code = "callback_host_not_allowed"
    default_detail = "The callback_url's host is not in IMPORT_CALLBACK_ALLOWED_HOSTS."


class CallbackAddressNotAllowed(CallbackRefused):
    """The host resolves to a loopback, private, link-local or otherwise internal address that
    is not itself listed, or does not resolve at all."""

    code = "callback_address_not_allowed"


class SourceProblem(Exception):
    """A row's file cannot be used; the message is a plain-words row comment."""

    @classmethod
    def about(cls, file_path: str, words: str) -> "SourceProblem":
        """A row comment naming the row's own file_path, never where the source lives."""
        return cls(about_file(file_path, words))


class SourceUnreadable(Exception):
    """Reading a row's file failed (permissions, an I/O error): that row fails, not the import.

    It carries no words: the row's comment must quote the row's own file_path, which only the
    row knows, never the resolved path.
    """


class SourceUnavailable(Exception):
    """The source itself failed (a timeout or a dropped connection to S3), not a row's file.

    Its task is retried with growing delays; if the source stays away, the import ends in error,
    to be resumed.
    """


class BatchLostTooOften(Exception):
    """A batch was lost more times than IMPORT_BATCH_MAX_REQUEUES: its import ends in error.

    Its message is the import's `error`, naming the batch's rows.
    """

    def __init__(self, number: int, first_row: int, last_row: int, losses: int) -> None:
        self.batch = (number, first_row, last_row, losses)
        super().__init__(
            f"batch {number} (rows {first_row} to {last_row}) was lost {losses} times: each "
            "time the worker running it stopped (out of memory, a crash, a kill) before it "
            "committed. A row in it may cause that: import those rows in a manifest of their "
            "own to find which."
        )

    def __reduce__(self):
        # Celery pickles a task's exception before its on_failure sees it; without this the
        # exception comes back as a wrapper, and its words are lost.
        return (type(self), self.batch)


def storage_full(exc: BaseException) -> bool:
    """Whether `exc` says the storage has no space left (a full disk, or a quota reached)."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_FULL_ERRNOS


class MetricsNotAuthenticated(BulkImportError):
    """/metrics was asked without the token METRICS_TOKEN is set to, or with another one."""

    code = "not_authenticated"
    default_detail = (
        "The metrics need a token: send the one set in METRICS_TOKEN as "
        "'Authorization: Bearer <token>'."
    )
